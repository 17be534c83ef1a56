"""Deployment of a trained model (datagen.train.quantize, prune, distill, variants) on a real
rendered store and a real run: fp32/fp16/int8 ONNX files through ONNX Runtime against the
eager model on real recurrent frames, `datagen eval --onnx`, channel pruning (exact where
the pruned channels are dead, fewer FLOPs, fine-tuned through the CLI), distillation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from store_helpers import rendered_primitives_store

HR, SCALE, SPP, T = (64, 36), 2.0, 4, 6
SPLITS = {"train": 2, "test": 1}
ENV = {**os.environ, "LP_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def datagen(*args, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datagen", *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def store(gl_session_ctx, tmp_path_factory) -> Path:
    """A real rendered store: primitives, 64x36 HR, scale 2, 4 spp, 6 frames; train 2, test 1."""
    return rendered_primitives_store(tmp_path_factory.mktemp("deploy") / "store.zarr", gl_session_ctx, SPLITS,
                                     T, HR, SCALE, SPP, seed_step=5)


@pytest.fixture(scope="module")
def run(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    done = datagen("train", store, "--steps", 12, "--out", out, "--device", "cpu", "--batch", "2",
                   "--window", "3", "--crop", "32", "--channels", "8,16", "--num-workers", "0",
                   "--lr", "3e-3", "--warmup", "2", "--ckpt-every", "12")
    assert done.returncode == 0, done.stderr
    return out


def real_steps(store: Path, model, count: int) -> list[tuple[torch.Tensor, ...]]:
    """``count`` recurrent steps of the test sequence: inputs fed the eager model's outputs."""
    from datagen.store.reader import open_store
    from datagen.train.evaluate import frames

    steps = []
    prev = (torch.zeros(1, 3, HR[1], HR[0]), torch.zeros(1, 1, HR[1], HR[0]))
    with torch.no_grad():
        for t, f in zip(range(count), frames(open_store(store), "test", 0), strict=False):
            x = (f["color_lr"], f["depth_lr"], f["motion_lr"], f["jitter"], f["exposure"], *prev,
                 torch.full((1,), float(t > 0)))
            steps.append(x)
            prev = model.step(*x)
    return steps


def test_precisions_run_in_onnxruntime_and_match_the_eager_model(store, run, tmp_path):
    from datagen.train.evaluate import load_model
    from datagen.train.export import INPUT_NAMES
    from datagen.train.metrics import psnr, tonemap
    from datagen.train.quantize import optimized_op_counts, session

    out = tmp_path / "export"
    done = datagen("export-model", run, "--precision", "fp32,fp16,int8", "--calibration-frames", 4,
                   "--out", out)
    assert done.returncode == 0, done.stderr
    files = ["model_fp32.onnx", "model_fp16.onnx", "model_int8.onnx"]
    info = json.loads((out / "export.json").read_text())
    assert info["files"] == files and info["int8_calibration"]["frames"] == 4
    assert info["inputs"]["prev_out"] == [1, 3, HR[1], HR[0]]
    assert not (out / "model.onnx").exists()
    model, _, _ = load_model(run)
    steps = real_steps(store, model, 4)
    # worst PSNR (dB) of each file's tonemapped output against the eager model's, on real frames
    floor = {"model_fp32.onnx": 80.0, "model_fp16.onnx": 45.0, "model_int8.onnx": 30.0}
    for name in files:
        sess = session(out / name)
        for x in steps:
            o, d = sess.run(None, {n: v.numpy() for n, v in zip(INPUT_NAMES, x, strict=True)})
            assert o.dtype == np.float32 and o.shape == (1, 3, HR[1], HR[0]) and np.isfinite(o).all()
            with torch.no_grad():
                e, ed = model.step(*x)
            got = float(psnr(tonemap(torch.from_numpy(o), x[4]), tonemap(e, x[4]))[0])
            assert got > floor[name], (name, got)
            np.testing.assert_allclose(d, ed.numpy(), atol=2e-3)  # the depth path stays float32
        if name == "model_fp32.onnx":
            np.testing.assert_allclose(o, e.numpy(), atol=1e-4, rtol=1e-4)
    import onnx

    half = onnx.load(str(out / "model_fp16.onnx")).graph
    dtypes = {t.name: t.data_type for t in half.initializer}
    conv_weights = [dtypes.get(n.input[1]) for n in half.node if n.op_type in ("Conv", "ConvTranspose")]
    assert conv_weights == [onnx.TensorProto.FLOAT16] * 8  # the U-Net's weights are stored in half
    fp32_ops = optimized_op_counts(out / "model_fp32.onnx")
    assert fp32_ops.get("com.microsoft.nchwc:Conv+Relu", 0) == 6  # every conv + ReLU fused, NCHWc
    int8_ops = optimized_op_counts(out / "model_int8.onnx")
    assert int8_ops.get("com.microsoft:QLinearConv", 0) == 7  # the U-Net's convs run in int8

    from datagen.train.variants import time_interleaved

    times = time_interleaved({name: out / name for name in files}, rounds=2)
    assert all(len(t["runs"]) == 2 and t["ms"] > 0 for t in times.values()), times

    done = datagen("eval", run, store, "--onnx", *(out / f for f in files))
    assert done.returncode == 0, done.stderr
    result = json.loads((run / "eval_onnx_test.json").read_text())
    fp32 = result[str(out / "model_fp32.onnx")]
    assert fp32["psnr_vs_fp32"] > 80 and fp32["psnr"] == pytest.approx(result["fp32 model"]["psnr"], abs=1e-3)
    for name in files:
        row = result[str(out / name)]
        assert row["psnr_vs_fp32"] > floor[name] and np.isfinite(row["tpsnr"]), (name, row)
    assert "bicubic" in done.stdout and "model_int8.onnx" in done.stdout


def test_pruning_dead_channels_is_exact_and_cuts_flops():
    from datagen.train.export import example_inputs
    from datagen.train.model import ModelConfig, TemporalUpscaler, parameter_count
    from datagen.train.prune import flops, prune, pruned_channels

    torch.manual_seed(0)
    model = TemporalUpscaler(ModelConfig(scale=2.0, channels=(8, 16, 24))).eval()
    ratio = 0.25
    widths = pruned_channels((8, 16, 24), ratio)
    assert widths == (6, 12, 18)
    g = torch.Generator().manual_seed(1)

    def kill(conv, keep, dim=0):
        """Zero all but ``keep`` random output channels of ``conv``: they output ReLU(0) = 0."""
        n = conv.weight.shape[dim]
        drop = torch.randperm(n, generator=g)[:n - keep]
        with torch.no_grad():
            conv.weight.index_fill_(dim, drop, 0.0)
            conv.bias.index_fill_(0, drop, 0.0)

    unet = model.unet
    for block, w in zip(unet.down, widths, strict=True):
        kill(block[0], w)
        kill(block[2], w)
    for up, fuse, w in zip(unet.up, unet.fuse, reversed(widths[:-1]), strict=True):
        kill(up, w, dim=1)
        kill(fuse[0], w)
        kill(fuse[2], w)
    small = prune(model, ratio)
    assert small.config.channels == widths
    x = example_inputs((36, 64), 2.0, seed=2)
    with torch.no_grad():
        for a, b in zip(model.step(*x), small.step(*x), strict=True):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert parameter_count(small) < 0.65 * parameter_count(model)
    assert flops(small, (36, 64)) < 0.7 * flops(model, (36, 64))


def test_prune_and_fine_tune_through_the_cli(store, run, tmp_path):
    from datagen.train.evaluate import load_model
    from datagen.train.model import parameter_count
    from datagen.train.quantize import session

    out = tmp_path / "pruned_export"
    done = datagen("export-model", run, "--prune", "0.5", "--tune-steps", 3, "--lr", "3e-4",
                   "--device", "cpu", "--precision", "fp32", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "pruned: channels 4,8" in done.stdout
    small, ckpt, _ = load_model(out / "pruned")
    big, _, _ = load_model(run)
    assert small.config.channels == (4, 8) and parameter_count(small) < parameter_count(big) / 2
    assert ckpt["step"] == 3
    config = json.loads((out / "pruned" / "config.json").read_text())
    assert config["derived_from"]["prune"] == 0.5 and config["lr"] == 3e-4
    records = [json.loads(line) for line in (out / "pruned" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in records)
    inputs = {i.name: np.ones([d for d in i.shape], np.float32)
              for i in session(out / "model_fp32.onnx").get_inputs()}
    o, _ = session(out / "model_fp32.onnx").run(None, inputs)
    assert np.isfinite(o).all()


def test_distillation_trains_a_small_student(store, run, tmp_path):
    from datagen.train.distill import distill
    from datagen.train.evaluate import load_model

    teacher, ckpt, path = load_model(run)
    config = {**ckpt["config"], "num_workers": 0}
    student, student_path = distill(teacher, config, (4, 8), steps=3, out=str(tmp_path / "student"),
                                    store=str(store), checkpoint=str(path), device="cpu")
    records = [json.loads(line) for line in (tmp_path / "student" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["distill"]) and r["distill"] > 0 for r in records)
    loaded, _, _ = load_model(student_path)
    assert loaded.config.channels == (4, 8)
    for name, value in loaded.state_dict().items():
        torch.testing.assert_close(value, student.state_dict()[name])
    assert json.loads((tmp_path / "student" / "config.json").read_text())["distill"] == 1.0


def test_bad_deploy_input_is_one_line_and_exit_2(run, tmp_path):
    cases = [
        (("export-model", run, "--precision", "fp8", "--out", tmp_path / "x"), "use a comma-separated"),
        (("export-model", run, "--prune", "1.5", "--out", tmp_path / "x"), "0 < r < 1"),
        (("export-model", run, "--prune", "0.3", "--distill", "4,8", "--out", tmp_path / "x"), "give one"),
        (("export-model", run, "--distill", "4,x", "--out", tmp_path / "x"), "U-Net widths"),
        (("export-model", run, "--distill", "4,8", "--lr", "0", "--out", tmp_path / "x"),
         "positive learning rate"),
        (("eval", run, tmp_path / "nowhere.zarr", "--onnx", tmp_path / "none.onnx"), "not a store"),
    ]
    for args, message in cases:
        done = datagen(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, done.stderr)
