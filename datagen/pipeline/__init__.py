"""The build pipeline: plan sequences from a recipe, render them on Dask workers
(one GL context per worker process), stream them into a Zarr store.

    from datagen.pipeline import BuildConfig, build, load_config
    summary = build(load_config("pipelines/dataset.toml"), "storage/racing.zarr")
"""

from datagen.pipeline.build import build
from datagen.pipeline.plan import BuildConfig, SequenceTask, Splits, load_config, plan

__all__ = ["BuildConfig", "SequenceTask", "Splits", "build", "load_config", "plan"]
