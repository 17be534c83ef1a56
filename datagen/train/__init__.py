"""Training: a PyTorch Dataset over a store, a recurrent temporal CNN, its trainer,
classical baselines (bicubic, TAAU) and evaluation. Never imports the renderer.

Modules: ``data`` (WindowDataset), ``model`` (TemporalUpscaler, warp), ``metrics``
(tonemap, PSNR/SSIM/tPSNR, loss), ``baselines`` (bicubic, Taau), ``trainer``
(TrainConfig, train), ``stages`` (single/temporal/finetune, lineage), ``losses``
(perceptual, adversarial), ``evaluate`` (evaluate), ``export`` (ONNX, torch.export),
``checkpoint``, ``bench`` (the training figures of ``datagen bench``).
"""

from datagen.train.data import WindowDataset
from datagen.train.model import ModelConfig, TemporalUpscaler, warp
from datagen.train.trainer import TrainConfig, train

__all__ = ["ModelConfig", "TemporalUpscaler", "TrainConfig", "WindowDataset", "train", "warp"]
