"""The build pipeline: plan sequences from a recipe, render them on Dask workers
(one GL context per worker process), stream them into a Zarr store.

    from datagen.pipeline.build import build
    from datagen.pipeline.plan import load_config
    summary = build(load_config("pipelines/dataset.toml"), "storage/racing.zarr")

The functions ``build`` and ``plan`` are not re-exported here: their names are those
of their modules, ``datagen.pipeline.build`` and ``datagen.pipeline.plan``.
"""

from datagen.pipeline.plan import BuildConfig, SequenceResult, SequenceTask, Splits, load_config

__all__ = ["BuildConfig", "SequenceResult", "SequenceTask", "Splits", "load_config"]
