"""Export one recurrent step of a trained model for deployment: ONNX and torch.export.

The exported graph is ``TemporalUpscaler.step`` (``model.StepModule``) at a fixed
batch of 1 and a fixed HR size (default the store's, any size the model accepts):

    inputs  color_lr (1,3,h,w), depth_lr (1,1,h,w), motion_lr (1,2,h,w), jitter (1,2),
            exposure (1,), prev_out (1,3,H,W), prev_depth (1,1,H,W), history (1,)
    outputs out (1,3,H,W) linear HDR, depth (1,1,H,W) -> feed back as prev_depth

Files: DIR/model.onnx (torch.onnx.export, the dynamo exporter; needs onnxscript),
DIR/model.pt2 (torch.export.save; load with torch.export.load(path).module()),
and DIR/export.json (shapes, input names, checkpoint, model config).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from pathlib import Path

import torch

from datagen import conventions as cv
from datagen.train.model import StepModule

log = logging.getLogger(__name__)

INPUT_NAMES = ("color_lr", "depth_lr", "motion_lr", "jitter", "exposure", "prev_out", "prev_depth",
               "history")
OUTPUT_NAMES = ("out", "depth")


def example_inputs(hr_size: tuple[int, int], scale: float, seed: int = 0,
                   lr_size: tuple[int, int] | None = None) -> tuple[torch.Tensor, ...]:
    """Plausible inputs of one step at HR (H, W), for tracing and checking; LR (h, w) is
    ``lr_size`` if given, else HR / ``scale`` rounded as the renderer rounds."""
    g = torch.Generator().manual_seed(seed)
    H, W = hr_size
    if lr_size is None:
        w, h = cv.lr_size((W, H), scale)  # the step takes W / w, H / h as its ratio
    else:
        h, w = lr_size
    return (torch.rand(1, 3, h, w, generator=g) * 2, 1 + 50 * torch.rand(1, 1, h, w, generator=g),
            torch.randn(1, 2, h, w, generator=g), torch.rand(1, 2, generator=g) - 0.5,
            torch.ones(1), torch.rand(1, 3, H, W, generator=g) * 2, torch.rand(1, 1, H, W, generator=g),
            torch.ones(1))


def export_onnx(model, path: str | os.PathLike, hr_size: tuple[int, int],
                lr_size: tuple[int, int] | None = None) -> None:
    """One step of ``model`` at HR (H, W) (and LR (h, w), default HR / scale) to an fp32
    ONNX file at ``path`` (torch.onnx.export, the dynamo exporter)."""
    step = StepModule(model.float().eval().cpu())
    inputs = example_inputs(hr_size, model.config.scale, lr_size=lr_size)
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # it warns that torchvision ops are not registered
    try:
        with warnings.catch_warnings():  # and reports its passes as warnings
            warnings.simplefilter("ignore")
            program = torch.onnx.export(step, inputs, dynamo=True, input_names=list(INPUT_NAMES),
                                        output_names=list(OUTPUT_NAMES), verbose=False)
    finally:
        onnx_log.setLevel(level)
    program.save(str(path))


def export_model(model, out_dir: str | os.PathLike, hr_size: tuple[int, int],
                 checkpoint: str = "") -> dict:
    """Write model.onnx, model.pt2 and export.json to ``out_dir``; returns export.json's content."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    step = StepModule(model.float().eval().cpu())
    inputs = example_inputs(hr_size, model.config.scale)
    program = torch.export.export(step, inputs)
    torch.export.save(program, out / "model.pt2")
    export_onnx(model, out / "model.onnx", hr_size)
    info = {"files": ["model.onnx", "model.pt2"], "inputs": {n: list(x.shape) for n, x in
                                                              zip(INPUT_NAMES, inputs, strict=True)},
            "outputs": {"out": [1, 3, *hr_size], "depth": [1, 1, *hr_size]},
            "model_config": dataclasses.asdict(model.config), "checkpoint": checkpoint,
            "torch": torch.__version__}
    (out / "export.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
