"""Reduced-precision ONNX files of one recurrent step, for ONNX Runtime: fp32, fp16, int8.

    export_precisions(model, "DIR", (H, W), ("fp32", "fp16", "int8"), store="storage/racing.zarr")

writes DIR/model_fp32.onnx, DIR/model_fp16.onnx and DIR/model_int8.onnx (inputs and
outputs as ``datagen.train.export``; every file takes and returns float32):

- **fp32**: the exported graph as it is.
- **fp16**: weights and activations in half (``onnxruntime.transformers.float16``, shipped
  with onnxruntime; ``keep_io_types``: float32 in and out, with casts at the edges).
  Operators kept in float32: the converter's default block list, plus the ones ONNX
  Runtime's CPU provider has no half kernel for (``FP32_OPS``: the sampling, the
  log/exp colour transform), which a GPU provider would run in half. Accumulation
  is the provider's: MLAS accumulates half convolutions in float32.
- **int8**: static quantisation of the U-Net's convolutions (``Conv``, ``ConvTranspose``)
  in the QDQ format, int8 weights per output channel and uint8 activations, with
  ranges calibrated (min/max) on real recurrent steps: frames of the store's train
  split run through the fp32 model in order, each step fed the previous step's
  output, so the history inputs hold what they hold at inference. The sampling,
  warping and colour transform stay in float32 (coordinates do not survive 8 bits).

ONNX Runtime itself fuses Conv + Relu (``FusedConv``) and moves the convolutions to
its blocked NCHWc layout when it optimises a graph (``ORT_ENABLE_ALL``, its default);
``optimized_op_counts`` shows what it made of a file.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from datagen.errors import ConfigError, StoreError
from datagen.train.export import INPUT_NAMES, export_onnx

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")

FP32_OPS = ("GridSample", "Log1p", "Log", "Exp", "Expm1", "Softplus", "Ceil", "Floor", "Less",
            "Greater", "Equal", "Range", "Where", "Mod", "Max", "Min", "Clip", "IsInf", "IsNaN",
            "Sigmoid", "Abs", "Pad", "Resize", "DepthToSpace", "SpaceToDepth", "MaxPool", "Neg",
            "Sub", "Div", "Mul", "Add", "Relu")
"""Operators the fp16 file keeps in float32 (besides the converter's defaults): ONNX
Runtime's CPU provider has no half kernel for them. What is left in half is the
U-Net's convolutions and concatenations."""

INT8_OPS = ("Conv", "ConvTranspose")
"""Operators quantised to int8."""


def parse_precisions(text: str) -> tuple[str, ...]:
    """'fp32,int8' -> ('fp32', 'int8'); ConfigError naming the valid ones."""
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    bad = [p for p in names if p not in PRECISIONS]
    if bad or not names:
        raise ConfigError(f"--precision {text!r}: use a comma-separated list of {', '.join(PRECISIONS)}")
    return names


# -- fp16 ---------------------------------------------------------------------------------------


def to_fp16(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Convert the fp32 ONNX file ``src`` to half (module docstring), float32 in and out."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    half = convert_float_to_float16(model, keep_io_types=True,
                                    op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS)))
    onnx.save(half, str(dst))


# -- int8 ---------------------------------------------------------------------------------------


def resample_frame(f: dict[str, torch.Tensor], lr_size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """A stored frame's LR inputs brought to LR (h, w) for calibrating a file exported at
    another size: colour bilinear, depth nearest, motion bilinear and scaled to the new
    pixels. Only the value ranges matter for calibration, not the exact alignment."""
    h, w = f["color_lr"].shape[-2:]
    if (h, w) == tuple(lr_size):
        return f
    scale = torch.tensor([lr_size[1] / w, lr_size[0] / h])[None, :, None, None]
    return {**f, "color_lr": F.interpolate(f["color_lr"], lr_size, mode="bilinear", antialias=True),
            "depth_lr": F.interpolate(f["depth_lr"], lr_size, mode="nearest"),
            "motion_lr": F.interpolate(f["motion_lr"], lr_size, mode="bilinear") * scale}


def calibration_steps(model, store_path: str | os.PathLike, hr_size: tuple[int, int],
                      lr_size: tuple[int, int], frames: int, split: str = "train") -> Iterator[dict]:
    """Up to ``frames`` real recurrent steps as ONNX input dicts (numpy), from the
    complete sequences of ``split`` in order: each sequence's frames through the fp32
    ``model`` at HR (H, W), each step fed the previous output (history 0 at a
    sequence start and at camera cuts)."""
    from datagen.store.reader import open_store
    from datagen.train.evaluate import frames as store_frames

    store = open_store(store_path)
    if split not in store.splits or not store.sequences(split, complete_only=True):
        raise StoreError(f"{store_path}: no complete sequence in split {split!r} to calibrate int8 on; "
                         "give a store with a train split")
    given = 0
    with torch.no_grad():
        for info in store.sequences(split, complete_only=True):
            prev_out = torch.zeros((1, 3, *hr_size))
            prev_depth = torch.zeros((1, 1, *hr_size))
            for t, f in enumerate(store_frames(store, split, info.index)):
                if given >= frames:
                    return
                f = resample_frame(f, lr_size)
                history = torch.zeros(1) if t == 0 or bool(f["camera_cut"][0]) else torch.ones(1)
                inputs = (f["color_lr"], f["depth_lr"], f["motion_lr"], f["jitter"], f["exposure"],
                          prev_out, prev_depth, history)
                yield {n: x.float().numpy() for n, x in zip(INPUT_NAMES, inputs, strict=True)}
                given += 1
                prev_out, prev_depth = model.step(*inputs)


def to_int8(src: str | os.PathLike, dst: str | os.PathLike, steps: Iterator[dict]) -> None:
    """Statically quantise ``src``'s convolutions to int8 (QDQ), calibrated on ``steps``."""
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):
        def get_next(self):
            return next(steps, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it advises its pre-processing through the root logger
    try:
        q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                          op_types_to_quantize=list(INT8_OPS), per_channel=True,
                          activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                          calibrate_method=q.CalibrationMethod.MinMax)  # keeps per-tensor min/max only
    finally:
        root.setLevel(level)


# -- all of them --------------------------------------------------------------------------------


def export_precisions(model, out_dir: str | os.PathLike, hr_size: tuple[int, int],
                      precisions: tuple[str, ...] = PRECISIONS, store: str | os.PathLike | None = None,
                      lr_size: tuple[int, int] | None = None, calibration_frames: int = 16,
                      checkpoint: str = "") -> dict:
    """Write DIR/model_P.onnx for each precision P (module docstring) and DIR/export.json;
    int8 needs ``store`` (its train split calibrates). Returns export.json's content."""
    import dataclasses
    import json

    import onnxruntime

    from datagen.train.export import OUTPUT_NAMES, example_inputs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.float().eval().cpu()
    if lr_size is None:
        lr_size = tuple(example_inputs(hr_size, model.config.scale)[0].shape[-2:])
    fp32 = out / "model_fp32.onnx"
    export_onnx(model, fp32, hr_size, lr_size)
    written = ["model_fp32.onnx"]
    if "fp16" in precisions:
        to_fp16(fp32, out / "model_fp16.onnx")
        written.append("model_fp16.onnx")
    if "int8" in precisions:
        if store is None:
            raise ConfigError("int8 needs a store to calibrate on (its train split)")
        to_int8(fp32, out / "model_int8.onnx",
                calibration_steps(model, store, hr_size, lr_size, calibration_frames))
        written.append("model_int8.onnx")
    if "fp32" not in precisions:
        fp32.unlink()
        written.remove("model_fp32.onnx")
    H, W = hr_size
    h, w = lr_size
    shapes = [(1, 3, h, w), (1, 1, h, w), (1, 2, h, w), (1, 2), (1,), (1, 3, H, W), (1, 1, H, W), (1,)]
    info = {"files": written, "precisions": list(precisions),
            "inputs": {n: list(s) for n, s in zip(INPUT_NAMES, shapes, strict=True)},
            "outputs": dict(zip(OUTPUT_NAMES, ([1, 3, H, W], [1, 1, H, W]), strict=True)),
            "io_dtype": "float32 (fp16 and int8 files convert inside)",
            "fp16_float32_ops": list(FP32_OPS), "int8_ops": list(INT8_OPS),
            "int8_calibration": {"store": str(store), "split": "train", "frames": calibration_frames}
            if "int8" in precisions else None,
            "model_config": dataclasses.asdict(model.config), "checkpoint": checkpoint,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    (out / "export.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def session(path: str | os.PathLike, threads: int = 0, optimized_path: str | None = None,
            arena: bool = True):
    """An ONNX Runtime CPU session (graph optimisation ORT_ENABLE_ALL); ``threads`` 0 =
    ONNX Runtime's default; ``optimized_path`` saves the optimised graph; ``arena`` False
    returns activation memory after each run (for many large sessions in one process)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = arena
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if optimized_path:
        options.optimized_model_filepath = optimized_path
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def optimized_op_counts(path: str | os.PathLike) -> dict[str, int]:
    """Operator counts of the graph ONNX Runtime runs for ``path`` after its optimisation,
    as "domain:op" ("com.microsoft.nchwc:Conv" is its blocked-layout convolution), with
    "+Relu" where it fused the activation into the convolution."""
    import tempfile

    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        optimized = os.path.join(tmp, "optimized.onnx")
        session(path, optimized_path=optimized)
        counts: Counter = Counter()
        for node in onnx.load(optimized).graph.node:
            fused = [a.s.decode() for a in node.attribute if a.name == "activation"]
            counts[f"{node.domain or 'ai.onnx'}:{node.op_type}" + "".join(f"+{a}" for a in fused)] += 1
        return dict(sorted(counts.items()))
