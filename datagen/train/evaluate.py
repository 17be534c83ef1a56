"""``datagen eval``: the model against bicubic and TAAU on whole held-out sequences.

Every complete sequence of the split is run frame by frame at full resolution:
the model recurrently (history dropped at camera cuts), TAAU with its own
history, bicubic per frame. Each output and the HR reference are tonemapped with
the frame's stored exposure (``metrics.tonemap``: exposure, then Reinhard), and
PSNR, SSIM and tPSNR are averaged over frames, overall and per scene.

Result (SPEC §3), written to RUN_DIR/eval_SPLIT.json:
``{"model": M, "bicubic": M, "taau": M, ...}``, M = ``{"psnr", "ssim", "tpsnr",
"per_scene": {scene: {"psnr", "ssim", "tpsnr"}}}``, plus the tonemap, exposure
source, checkpoint, step, store, split and counts.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator

import numpy as np
import torch

from datagen.errors import ConfigError, StoreError
from datagen.store.reader import Store, open_store
from datagen.train.baselines import Taau, bicubic
from datagen.train.checkpoint import load_checkpoint, run_dir_of
from datagen.train.data import ITEM_ARRAYS, check_window, to_tensors
from datagen.train.metrics import TONEMAP, MetricTally, tonemap
from datagen.train.model import ModelConfig, TemporalUpscaler

METHODS = ("model", "bicubic", "taau")


def load_model(run_or_ckpt: str | os.PathLike, device: torch.device | str = "cpu"):
    """(TemporalUpscaler in eval mode, checkpoint dict, checkpoint path)."""
    ckpt, path = load_checkpoint(run_or_ckpt)
    mc = ckpt["model_config"]
    model = TemporalUpscaler(ModelConfig(scale=mc["scale"], channels=tuple(mc["channels"]),
                                         rectify=mc.get("rectify", False)))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt, path


def frames(store: Store, split: str, seq: int) -> Iterator[dict[str, torch.Tensor]]:
    """One frame at a time as (1, C, H, W) tensors, read a shard's worth of frames at a time."""
    block = store.layout.frames_per_shard
    for start in range(0, store.frames, block):
        data = store.read_window(split, seq, start, min(block, store.frames - start), ITEM_ARRAYS)
        check_window(data, f"{store.path}: {split} sequence {seq}", start)
        window = to_tensors(data)
        for t in range(len(data["exposure"])):
            yield {name: value[t:t + 1] for name, value in window.items()}


@torch.no_grad()
def evaluate(run_or_ckpt: str | os.PathLike, store_path: str | os.PathLike, split: str = "test",
             device: str = "auto", progress: Callable[[int], None] = lambda n: None) -> dict:
    """Evaluate; write RUN_DIR/eval_SPLIT.json; return what it holds (module docstring)."""
    from datagen.train.trainer import autocast, resolve_device

    dev = resolve_device(device)
    model, ckpt, ckpt_path = load_model(run_or_ckpt, dev)
    store = open_store(store_path)
    if split not in store.splits:
        raise StoreError(f"{store_path}: no split {split!r}; valid: {', '.join(store.splits)}")
    sequences = store.sequences(split, complete_only=True)
    if not sequences:
        raise StoreError(f"{store_path}: split {split!r} has no complete sequence to evaluate; "
                         "choose another --split or build the store")
    if abs(store.scale - model.config.scale) > 1e-6:
        raise ConfigError(f"{store_path}: scale {store.scale:g}, the model was trained at scale "
                          f"{model.config.scale:g}; evaluate on a store of the same scale")
    hr = (store.hr_size[1], store.hr_size[0])
    tallies = {m: MetricTally() for m in METHODS}
    for info in sequences:
        taau = Taau(store.ratio)
        prev_out = torch.zeros((1, 3, *hr), device=dev)
        prev_depth = torch.zeros((1, 1, *hr), device=dev)
        previous: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for t, f in enumerate(frames(store, split, info.index)):
            f = {k: v.to(dev) for k, v in f.items()}
            cut = t == 0 or bool(f["camera_cut"][0])
            history = torch.full((1,), 0.0 if cut else 1.0, device=dev)
            with autocast(dev):
                out, prev_depth = model.step(f["color_lr"], f["depth_lr"], f["motion_lr"], f["jitter"],
                                             f["exposure"], prev_out, prev_depth, history)
            prev_out, prev_depth = out.float(), prev_depth.float()
            outputs = {"model": prev_out, "bicubic": bicubic(f["color_lr"], hr),
                       "taau": taau.step(f["color_lr"], f["motion_lr"], f["jitter"], hr, camera_cut=cut)}
            ref = tonemap(f["color_hr"], f["exposure"])
            for name, value in outputs.items():
                tm = tonemap(value, f["exposure"])
                tallies[name].add_frame(info.scene or "unknown", tm, ref, None if cut else previous[name])
                previous[name] = (tm, ref)
            progress(1)
    result = {name: tally.summary() for name, tally in tallies.items()}
    result.update({
        "tonemap": TONEMAP, "tonemap_formula": "exposure * c / (1 + exposure * c)",
        "exposure": "per frame, from the store's exposure array",
        "metrics": {"psnr": "dB, peak 1, mean over frames", "ssim": "Gaussian 11x11 sigma 1.5, mean",
                    "tpsnr": "PSNR of frame differences vs the reference's, mean over frame pairs"},
        "split": split, "store": str(store_path), "checkpoint": str(ckpt_path), "step": ckpt["step"],
        "sequences": len(sequences), "frames": len(sequences) * store.frames, "device": str(dev),
        "model_config": dataclasses.asdict(model.config),
    })
    out = run_dir_of(ckpt_path) / f"eval_{split}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    result["path"] = str(out)
    return result


def format_table(result: dict) -> str:
    """The eval table: one row per method, overall and per scene."""
    def cell(v):
        return f"{v:8.3f}" if isinstance(v, float) and np.isfinite(v) else f"{'-':>8}"

    scenes = sorted(result["model"]["per_scene"])
    lines = [f"{'scene':<14}{'method':<9}{'PSNR dB':>8}{'SSIM':>8}{'tPSNR dB':>9}"]
    for scene in ["all", *scenes]:
        for m in METHODS:
            row = result[m] if scene == "all" else result[m]["per_scene"][scene]
            lines.append(f"{scene:<14}{m:<9}{cell(row['psnr'])}{cell(row['ssim'])} {cell(row['tpsnr'])}")
    lines.append(f"tonemap {result['tonemap']} ({result['tonemap_formula']}), exposure {result['exposure']}; "
                 f"{result['sequences']} sequence(s), {result['frames']} frames of split {result['split']}")
    return "\n".join(lines)
