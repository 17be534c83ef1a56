"""The training figures of ``datagen bench`` (SPEC §8).

- ``model_inference``: ms per HR frame of one recurrent step of the default model
  (32-64-128) at 1920x1080 (960x540 with --quick), batch 1, bf16 autocast on
  CUDA, fp32 on CPU; against the §8 target of 2 ms (H100, bf16), ratio =
  measured / target (<= 1 meets it).
- ``train_step``: the real trainer (``trainer.train``) for a few steps on a small
  synthetic store (smooth random frames written with the store writer): seconds
  per step, samples/s and the fraction of step time spent waiting for data,
  against the §8 target of 5%, ratio = measured / target (<= 1 meets it). The
  first step (warm-up, worker start) is left out.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from datagen import conventions as cv
from datagen.store import location
from datagen.store.measure import synthetic_frames
from datagen.store.writer import create_store, write_sequence
from datagen.train.model import ModelConfig, TemporalUpscaler
from datagen.train.trainer import TrainConfig, autocast, autocast_dtype, memory_format, resolve_device, train

TARGETS = {"inference_ms_1080p": 2.0, "data_wait_frac": 0.05}


@torch.no_grad()
def bench_inference(hr_size: tuple[int, int] = (1080, 1920), repeats: int = 3) -> dict:
    """ms per HR frame of ``TemporalUpscaler.step`` at HR (H, W), batch 1."""
    device = resolve_device("auto")
    model = TemporalUpscaler(ModelConfig(scale=2.0)).to(device, memory_format=memory_format(device)).eval()
    H, W = hr_size
    h, w = H // 2, W // 2
    x = {"color_lr": torch.rand(1, 3, h, w), "depth_lr": 1 + 50 * torch.rand(1, 1, h, w),
         "motion_lr": torch.randn(1, 2, h, w), "jitter": torch.tensor([[0.25, -0.1]]),
         "exposure": torch.ones(1),
         "prev_out": torch.rand(1, 3, H, W), "prev_depth": torch.rand(1, 1, H, W), "history": torch.ones(1)}
    x = {k: v.to(device) for k, v in x.items()}

    def once() -> None:
        with autocast(device):
            model.step(*x.values())
        if device.type == "cuda":
            torch.cuda.synchronize()

    once()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    ms = 1000 * float(np.median(times))
    return {
        "figure": "model_inference",
        "what": f"one recurrent step of the default model (32-64-128 U-Net at HR/2), {W}x{H} HR, batch 1, "
                f"{autocast_dtype(device) or torch.float32} on {device}, median of {repeats}",
        "ms_per_frame": ms, "hr_size": [W, H], "device": str(device),
        "threads": torch.get_num_threads(),
        "reference": {"what": "target, 1080p on an H100 in bf16", "ms_per_frame":
                      TARGETS["inference_ms_1080p"]},
        "ratio": ms / TARGETS["inference_ms_1080p"],
    }


def bench_train_step(tmp: str | Path, quick: bool, store_root: str | None = None) -> dict:
    """The trainer on a synthetic store: step time, samples/s, data-wait fraction.
    The store is written under ``store_root`` (e.g. an s3:// prefix) if given, else in ``tmp``."""
    hr, scale, frames = (256, 144), 2.0, 8
    store = location.parse(store_root or tmp) / "bench-train.zarr"
    create_store(store, {"synthetic": True}, {"train": 2}, frames, hr, scale,
                 cv.conventions_block(scale, 8, 0.1, 100.0))
    for i in range(2):
        write_sequence(store, "train", i, synthetic_frames(hr, scale, frames, seed=i),
                       {"scene": "synthetic", "seed": i})
    steps = 4 if quick else 10
    config = TrainConfig(store=str(store), out=str(Path(tmp) / "bench-run"), steps=steps, batch=2, window=4,
                         crop=64 if quick else 128, warmup=1, num_workers=2, ckpt_every=10 ** 6)
    result = train(config)
    records = [json.loads(line) for line in (Path(config.out) / "metrics.jsonl").read_text().splitlines()][1:]
    step_s = float(np.mean([config.batch / r["samples_per_s"] for r in records]))
    wait = float(np.mean([r["data_wait_frac"] for r in records]))
    return {
        "figure": "train_step" if store_root is None else "train_step_s3",
        "store": str(store),
        "what": f"datagen.train.trainer on a synthetic store ({hr[0]}x{hr[1]} HR, scale {scale:g}): batch "
                f"{config.batch} windows of {config.window} frames, {config.crop} px HR crops, default "
                f"model, {config.num_workers} loader workers, {result['device']}, mean of steps 2..{steps}",
        "seconds_per_step": step_s, "samples_per_s": config.batch / step_s, "data_wait_frac": wait,
        "device": result["device"],
        "reference": {"what": "target for the data wait on an H100", "data_wait_frac":
                      TARGETS["data_wait_frac"]},
        "ratio": wait / TARGETS["data_wait_frac"],
    }


def bench_training(quick: bool) -> list[dict]:
    """Every training figure."""
    hr = (540, 960) if quick else (1080, 1920)
    figures = [bench_inference(hr, repeats=1 if quick else 3)]
    with tempfile.TemporaryDirectory(prefix="datagen-bench-train-") as tmp:
        figures.append(bench_train_step(tmp, quick))
        figures.append(train_step_s3(tmp, quick, figures[-1]))
    return figures


def train_step_s3(tmp: str, quick: bool, local: dict) -> dict:
    """``train_step`` with the store on S3 (``measure_s3.s3_prefix``): the data wait of
    a training step reading from object storage, against the same on local disk
    (``ratio`` = s3 / local seconds per step)."""
    from datagen.store.measure_s3 import S3Unavailable, s3_prefix

    try:
        with s3_prefix() as url:
            figure = bench_train_step(tmp, quick, store_root=url)
            location.remove_tree(location.parse(url) / "bench-train.zarr")
    except S3Unavailable as exc:
        return {"figure": "train_step_s3", "skipped": str(exc)}
    figure["reference"] = {"what": "the same steps reading from local disk",
                           "seconds_per_step": local["seconds_per_step"],
                           "data_wait_frac": local["data_wait_frac"]}
    figure["ratio"] = figure["seconds_per_step"] / local["seconds_per_step"]
    return figure
