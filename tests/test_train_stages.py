"""Training on a CPU and in stages: progress lines in logs, the warm-up default, the cpu
preset, the single -> temporal -> finetune lineage (init, hard-window mining, resume),
and the perceptual and adversarial loss terms, through the real CLI on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_train import TINY, datagen, store  # noqa: F401  (store: the rendered module fixture)

from datagen.train.checkpoint import load_checkpoint
from datagen.train.data import WindowDataset
from datagen.train.losses import vgg16_features
from datagen.train.metrics import LossWeights, loss_terms
from datagen.train.model import ModelConfig, TemporalUpscaler
from datagen.train.stages import sha256
from datagen.train.trainer import PRESETS, TrainConfig, cpu_warning, preset, run_model, train

STAGE_TINY = [a for a in TINY if a not in ("--window", "4")]  # each stage picks its window


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _run_json(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def test_warmup_defaults_to_at_most_a_tenth_of_the_steps():
    assert TrainConfig(store="s", steps=50).resolved().warmup == 5
    assert TrainConfig(store="s", steps=3).resolved().warmup == 0
    assert TrainConfig(store="s", steps=20000).resolved().warmup == 100
    assert TrainConfig(store="s", steps=50, warmup=30).resolved().warmup == 30  # given: kept
    assert TrainConfig(store="s", stage="single").resolved().window == 1
    assert TrainConfig(store="s").resolved().window == 8


def test_cpu_preset_and_the_full_size_warning():
    small = preset("cpu", store="s")
    assert small.channels == PRESETS["cpu"]["channels"] and small.steps == PRESETS["cpu"]["steps"]
    assert preset("cpu", store="s", steps=7).steps == 7  # a flag given wins over the preset
    assert preset("cpu", store="s", stage="single").resolved().window == 1
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert "--preset cpu" in cpu_warning(TrainConfig(store="s"), cpu)
    assert cpu_warning(TrainConfig(store="s"), cuda) is None
    assert cpu_warning(small, cpu) is None


@pytest.fixture(scope="module")
def single(store, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("single") / "run"
    done = datagen("train", store, "--stage", "single", "--steps", 6, "--progress-every", 2, "--out", out,
                   *STAGE_TINY)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(f"train {out}: step")]
    assert [line.split()[3] for line in lines] == ["2/6", "4/6", "6/6"], done.stdout  # not a terminal
    assert "\r" not in done.stdout + done.stderr and "single stage" in done.stdout
    return out


def test_single_stage_trains_one_frame_windows_and_records_its_stage(single):
    config = json.loads((single / "config.json").read_text())
    assert config["window"] == 1 and config["stage"] == "single" and config["warmup"] == 2
    assert all(r["temporal"] == 0 for r in _records(single))
    assert _run_json(single) == {"stage": "single", "parent": None, "lineage": []}


@pytest.fixture(scope="module")
def temporal(store, single, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("temporal") / "run"
    done = datagen("train", store, "--stage", "temporal", "--init", single, "--window", 4, "--steps", 6,
                   "--out", out, *STAGE_TINY)
    assert done.returncode == 0, done.stderr
    return out


def test_temporal_stage_records_its_parent(single, temporal):
    record = _run_json(temporal)
    parent = single / "ckpt" / "last.pt"
    assert record["stage"] == "temporal"
    assert record["parent"] == {"run": str(single), "checkpoint": str(parent), "sha256": sha256(parent),
                                "step": 6, "stage": "single"}
    assert record["lineage"] == [record["parent"]]


def test_init_starts_from_the_parents_weights_and_architecture(store, single, tmp_path):  # noqa: F811
    # a learning rate of 1e-12: after one step the weights are still the parent's
    config = TrainConfig(store=str(store), out=str(tmp_path / "run"), steps=1, batch=2, window=4, crop=32,
                         channels=(32, 64, 128), lr=1e-12, device="cpu", num_workers=0, init=str(single))
    train(config)
    parent, _ = load_checkpoint(single)
    child, _ = load_checkpoint(tmp_path / "run")
    assert tuple(child["model_config"]["channels"]) == (8, 16)
    assert all(torch.allclose(parent["model"][k], child["model"][k], atol=1e-8) for k in parent["model"])


def _window_losses(run: Path, store_path: Path, window: int, crop: int) -> list[float]:
    """Each window's loss under RUN's model, on the crop epoch 0 draws, without flips."""
    ckpt, _ = load_checkpoint(run)
    model = TemporalUpscaler(ModelConfig(scale=ckpt["model_config"]["scale"],
                                         channels=tuple(ckpt["model_config"]["channels"])))
    model.load_state_dict(ckpt["model"])
    ds = WindowDataset(store_path, "train", window, crop, augment=False, seed=0)
    losses = []
    with torch.no_grad():
        for i in range(len(ds)):
            item = {k: v[None] for k, v in ds[i].items()}
            losses.append(float(loss_terms(run_model(model.eval(), item, ds.ratio), item, LossWeights())[0]))
    return losses


def _finetune(store_path: Path, init: Path, out: Path, *extra) -> None:
    done = datagen("train", store_path, "--stage", "finetune", "--init", init, "--window", 4, "--steps", 6,
                   "--hard-fraction", 0.3, "--out", out, *STAGE_TINY, *extra)
    assert done.returncode == 0, done.stderr


def test_finetune_mines_the_highest_loss_windows_and_resumes_exactly(store, temporal, tmp_path):  # noqa: F811
    whole, sliced = tmp_path / "whole", tmp_path / "sliced"
    _finetune(store, temporal, whole)
    record = _run_json(whole)
    assert record["stage"] == "finetune" and record["parent"]["stage"] == "temporal"
    assert [e["stage"] for e in record["lineage"]] == ["single", "temporal"]
    losses = _window_losses(temporal, store, 4, 32)
    hard = record["hard_windows"]
    assert len(hard) == round(0.3 * len(losses)) == 3
    ranked = sorted(range(len(losses)), key=lambda i: -losses[i])
    assert [w["index"] for w in hard] == ranked[:3]
    assert [w["loss"] for w in hard] == pytest.approx([losses[i] for i in ranked[:3]], rel=1e-4)
    assert min(w["loss"] for w in hard) >= max(losses[i] for i in ranked[3:])

    _finetune(store, temporal, sliced, "--stop-after", 3)
    done = datagen("train", store, "--steps", 6, "--resume", "--out", sliced, "--device", "cpu",
                   "--num-workers", "0")
    assert done.returncode == 0, done.stderr
    assert "finetune stage" in done.stdout
    assert _run_json(sliced) == record
    assert [r["loss"] for r in _records(sliced)] == [r["loss"] for r in _records(whole)]
    a, b = (load_checkpoint(r)[0]["model"] for r in (whole, sliced))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_finetune_needs_init(store, tmp_path):  # noqa: F811
    done = datagen("train", store, "--stage", "finetune", "--out", tmp_path / "r", *TINY)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--init" in done.stderr


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    """A VGG16 state_dict with random weights, named as torchvision names it."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in vgg16_features().state_dict().items()}, path)
    return path


def test_perceptual_and_adversarial_terms_train_and_resume(store, vgg_file, tmp_path):  # noqa: F811
    terms = ["--perceptual-weights", vgg_file, "--adv-weight", 0.05]
    whole, sliced = tmp_path / "whole", tmp_path / "sliced"
    done = datagen("train", store, "--steps", 4, "--out", whole, *TINY, *terms)
    assert done.returncode == 0, done.stderr
    records = _records(whole)
    for key in ("perceptual", "adversarial", "discriminator"):
        assert all(torch.isfinite(torch.tensor(r[key])) for r in records), key
    config = json.loads((whole / "config.json").read_text())
    assert config["loss"]["perceptual"] == 0.1 and config["loss"]["adversarial"] == 0.05
    assert "discriminator" in load_checkpoint(whole)[0]["extra_losses"]
    assert datagen("train", store, "--steps", 4, "--stop-after", 2, "--out", sliced, *TINY,
                   *terms).returncode == 0
    done = datagen("train", store, "--steps", 4, "--resume", "--out", sliced, "--device", "cpu",
                   "--num-workers", "0")
    assert done.returncode == 0, done.stderr
    assert [r["loss"] for r in _records(sliced)] == [r["loss"] for r in records]


@pytest.mark.parametrize("content", ["missing", "garbage", "wrong"])
def test_a_bad_perceptual_weights_file_is_one_line_and_exit_2(store, tmp_path, content):  # noqa: F811
    path = tmp_path / "vgg.pth"
    if content == "garbage":
        path.write_bytes(b"not a torch file")
    elif content == "wrong":
        torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, path)
    done = datagen("train", store, "--steps", 2, "--out", tmp_path / "r", *TINY, "--perceptual-weights", path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--perceptual-weights" in lines[0] and "VGG16" in lines[0], done.stderr


def test_a_rectify_run_keeps_its_architecture_through_init_eval_and_export(store, tmp_path):  # noqa: F811
    import numpy as np
    import onnxruntime

    from datagen.train.evaluate import load_model
    from datagen.train.export import INPUT_NAMES, example_inputs

    first, child = tmp_path / "first", tmp_path / "child"
    done = datagen("train", store, "--rectify", "--steps", 2, "--out", first, *TINY)
    assert done.returncode == 0, done.stderr
    done = datagen("train", store, "--init", first, "--steps", 1, "--out", child, *TINY)  # no --rectify
    assert done.returncode == 0, done.stderr
    model, ckpt, _ = load_model(child)
    assert ckpt["model_config"]["rectify"] is True and model.config.rectify
    assert json.loads((child / "config.json").read_text())["rectify"] is True
    plain = TemporalUpscaler(ModelConfig(channels=model.config.channels))
    assert model.unet.down[0][0].in_channels > plain.unet.down[0][0].in_channels  # the clamped history
    done = datagen("export-model", child, "--res", "32x18", "--out", tmp_path / "export")
    assert done.returncode == 0, done.stderr
    inputs = example_inputs((18, 32), 2.0, seed=4)
    with torch.no_grad():
        expect = model.step(*inputs)
    session = onnxruntime.InferenceSession(str(tmp_path / "export" / "model.onnx"))
    got = session.run(None, {n: x.numpy() for n, x in zip(INPUT_NAMES, inputs, strict=True)})
    for e, o in zip(expect, got, strict=True):
        np.testing.assert_allclose(o, e.numpy(), atol=1e-4, rtol=1e-4)
