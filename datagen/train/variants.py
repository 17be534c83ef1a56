"""``datagen eval --onnx``: exported ONNX files (fp32, fp16, int8, pruned, distilled) on
whole held-out sequences, through ONNX Runtime on the CPU, and their speed.

Each file runs recurrently on every complete sequence of the split, as the model does
in ``datagen eval`` (history dropped at camera cuts), next to the run's own model in
float32 torch (``fp32 model``) and bicubic. Per file: PSNR, SSIM and tPSNR against the
HR reference (tonemapped as in ``datagen eval``), and ``psnr_vs_fp32``: the PSNR of its
tonemapped output against the fp32 model's, which isolates what precision costs.

Result, written to RUN_DIR/eval_onnx_SPLIT.json: ``{"fp32 model": M, "bicubic": M,
FILE: M + {"psnr_vs_fp32", "params"?}, ...}`` with M as in ``datagen eval``.

``time_file`` gives ms per frame of one file (median of a few runs after a warm-up).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from datagen.errors import ConfigError, StoreError
from datagen.store.reader import open_store
from datagen.train.baselines import bicubic
from datagen.train.checkpoint import run_dir_of
from datagen.train.evaluate import frames, load_model
from datagen.train.export import INPUT_NAMES
from datagen.train.metrics import MetricTally, psnr, tonemap
from datagen.train.quantize import session


def _input_shapes(sess) -> dict[str, tuple[int, ...]]:
    return {i.name: tuple(i.shape) for i in sess.get_inputs()}


@torch.no_grad()
def evaluate_onnx(run_or_ckpt: str | os.PathLike, store_path: str | os.PathLike,
                  files: list[str | os.PathLike], split: str = "test",
                  progress: Callable[[int], None] = lambda n: None) -> dict:
    """Evaluate ``files`` against the run's fp32 model (module docstring)."""
    model, ckpt, ckpt_path = load_model(run_or_ckpt, "cpu")
    store = open_store(store_path)
    if split not in store.splits:
        raise StoreError(f"{store_path}: no split {split!r}; valid: {', '.join(store.splits)}")
    sequences = store.sequences(split, complete_only=True)
    if not sequences:
        raise StoreError(f"{store_path}: split {split!r} has no complete sequence to evaluate")
    hr = (store.hr_size[1], store.hr_size[0])
    lr = (store.lr_size[1], store.lr_size[0])
    names = [str(f) for f in files]
    sessions = {}
    for name in names:
        if not Path(name).is_file():
            raise ConfigError(f"--onnx {name}: no such file; make it with `datagen export-model`")
        sess = session(name)
        shapes = _input_shapes(sess)
        if shapes["prev_out"][-2:] != hr or shapes["color_lr"][-2:] != lr:
            raise ConfigError(f"--onnx {name}: exported for HR {shapes['prev_out'][-1]}x"
                              f"{shapes['prev_out'][-2]}, the store's frames are {hr[1]}x{hr[0]}; "
                              f"export with --res {hr[1]}x{hr[0]}")
        sessions[name] = sess
    tallies = {m: MetricTally() for m in ("fp32 model", "bicubic", *names)}
    vs_fp32: dict[str, list[float]] = {name: [] for name in names}
    for info in sequences:
        state = {m: (np.zeros((1, 3, *hr), np.float32), np.zeros((1, 1, *hr), np.float32))
                 for m in ("fp32 model", *names)}
        previous: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for t, f in enumerate(frames(store, split, info.index)):
            cut = t == 0 or bool(f["camera_cut"][0])
            history = torch.full((1,), 0.0 if cut else 1.0)
            outputs = {}
            for m in ("fp32 model", *names):
                prev_out, prev_depth = state[m]
                inputs = (f["color_lr"], f["depth_lr"], f["motion_lr"], f["jitter"], f["exposure"],
                          torch.from_numpy(prev_out), torch.from_numpy(prev_depth), history)
                if m == "fp32 model":
                    out, depth = (x.numpy() for x in model.step(*inputs))
                else:
                    out, depth = sessions[m].run(None, {n: x.float().numpy() for n, x in
                                                        zip(INPUT_NAMES, inputs, strict=True)})
                state[m] = (out, depth)
                outputs[m] = torch.from_numpy(out)
            outputs["bicubic"] = bicubic(f["color_lr"], hr)
            ref = tonemap(f["color_hr"], f["exposure"])
            fp32_tm = tonemap(outputs["fp32 model"], f["exposure"])
            for name, value in outputs.items():
                tm = tonemap(value, f["exposure"])
                tallies[name].add_frame(info.scene or "unknown", tm, ref, None if cut else previous[name])
                previous[name] = (tm, ref)
                if name in vs_fp32:
                    vs_fp32[name].append(float(psnr(tm, fp32_tm)[0]))
            progress(1)
    result = {name: tally.summary() for name, tally in tallies.items()}
    for name in names:
        result[name]["psnr_vs_fp32"] = float(np.mean(vs_fp32[name]))
    result.update({"split": split, "store": str(store_path), "checkpoint": str(ckpt_path),
                   "step": ckpt["step"], "sequences": len(sequences),
                   "frames": len(sequences) * store.frames, "files": names})
    out = run_dir_of(ckpt_path) / f"eval_onnx_{split}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    result["path"] = str(out)
    return result


def format_table(result: dict) -> str:
    """One row per method: PSNR, SSIM, tPSNR against the reference, and PSNR against the
    fp32 model."""
    def cell(v, width=8):
        return f"{v:{width}.3f}" if isinstance(v, float) and np.isfinite(v) else f"{'-':>{width}}"

    lines = [f"{'method':<40}{'PSNR dB':>8}{'SSIM':>8}{'tPSNR dB':>9}{'vs fp32 dB':>11}"]
    for name in ("fp32 model", "bicubic", *result["files"]):
        row = result[name]
        lines.append(f"{name[-40:]:<40}{cell(row['psnr'])}{cell(row['ssim'])} {cell(row['tpsnr'])}"
                     f"{cell(row.get('psnr_vs_fp32'), 11)}")
    lines.append(f"{result['sequences']} sequence(s), {result['frames']} frames of split {result['split']}")
    return "\n".join(lines)


def _random_inputs(sess) -> dict[str, np.ndarray]:
    g = np.random.default_rng(0)
    inputs = {name: (g.random(shape, dtype=np.float32) + (name == "depth_lr")).astype(np.float32)
              for name, shape in _input_shapes(sess).items()}
    inputs["history"] = np.ones(1, np.float32)
    inputs["exposure"] = np.ones(1, np.float32)
    return inputs


def time_interleaved(files: dict[str, str | os.PathLike], rounds: int = 3, threads: int = 0) -> dict:
    """ms per frame of several ONNX files measured in turns (one run of each per round,
    after one warm-up run each), so that load from other processes falls on all of them
    alike: {name: {"ms": median, "runs": [ms, ...]}}."""
    sessions = {name: session(path, threads, arena=False) for name, path in files.items()}
    inputs = {name: _random_inputs(sess) for name, sess in sessions.items()}
    for name, sess in sessions.items():
        sess.run(None, inputs[name])
    runs: dict[str, list[float]] = {name: [] for name in files}
    for _ in range(rounds):
        for name, sess in sessions.items():
            start = time.perf_counter()
            sess.run(None, inputs[name])
            runs[name].append(1000 * (time.perf_counter() - start))
    return {name: {"ms": statistics.median(v), "runs": v} for name, v in runs.items()}


def time_file(path: str | os.PathLike, repeats: int = 3, threads: int = 0) -> dict:
    """ms per frame of one ONNX file on ONNX Runtime's CPU provider: the median of
    ``repeats`` runs after one warm-up run, on random inputs of the file's shapes."""
    sess = session(path, threads)
    inputs = _random_inputs(sess)
    sess.run(None, inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, inputs)
        times.append(time.perf_counter() - start)
    return {"ms": 1000 * statistics.median(times), "repeats": repeats,
            "lr": list(inputs["color_lr"].shape[-2:]), "hr": list(inputs["prev_out"].shape[-2:])}


INPUT_SIZES = ((720, 1280), (1080, 1920), (1440, 2560))
"""LR (h, w) of the timing table: 720p, 1080p and 1440p input."""
OUTPUT_SIZE = (2160, 3840)
"""HR (H, W) of the timing table: 4K output."""


def time_runs(runs: dict[str, tuple[str, tuple[str, ...]]], lr_size: tuple[int, int],
              store: str | os.PathLike, out_dir: str | os.PathLike,
              hr_size: tuple[int, int] = OUTPUT_SIZE, rounds: int = 2, calibration_frames: int = 2) -> dict:
    """The timing table's column for one input size: each run folder of ``runs``
    ({name: (run, precisions)}) exported at LR ``lr_size`` -> ``hr_size`` into
    ``out_dir``/name (int8 calibrated on ``store``), then all files timed in turns
    (``time_interleaved``): {"name precision": {"ms", "runs"}}."""
    from datagen.train.quantize import export_precisions

    files = {}
    for name, (run, precisions) in runs.items():
        model, _, _ = load_model(run)
        export_precisions(model, Path(out_dir) / name, hr_size, precisions, store=store, lr_size=lr_size,
                          calibration_frames=calibration_frames)
        files.update({f"{name} {p}": Path(out_dir) / name / f"model_{p}.onnx" for p in precisions})
    return time_interleaved(files, rounds)
