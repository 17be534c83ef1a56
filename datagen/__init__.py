"""datagen: training data for neural temporal supersampling."""

__version__ = "0.1.0"
