"""The whole user path through the installed `datagen` command, one step feeding the
next: build -> validate -> train -> eval -> export-model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "LP_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
RECIPE = """\
scenes = ["primitives"]
sequences = 3
frames = 4
res = "64x36"
scale = 2.0
spp = 8
workers = 1
splits = {train = 0.34, val = 0.33, test = 0.33}
"""
"""3 sequences: one per split, so that validate, train and eval each have one."""


def datagen_command() -> list[str]:
    """The console script `pip install` made (the `datagen.cli:main` entry point), beside
    this Python; ``python -m datagen`` where there is none."""
    script = Path(sys.executable).with_name("datagen")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "datagen"]


def datagen(*args, status: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([*datagen_command(), *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert done.returncode == status, f"datagen {args[0]} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def test_build_validate_train_eval_export(gl_session_ctx, tmp_path: Path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(RECIPE)
    store, run, export = tmp_path / "tiny.zarr", tmp_path / "run", tmp_path / "export"

    built = datagen("build", "--recipe", recipe, "--out", store)
    assert f"built {store}: rendered 3 sequence(s) (12 frames)" in built.stdout
    assert "HR 64x36, LR 32x18" in built.stdout  # the `datagen info` summary that ends a build

    checked = datagen("validate", store)
    assert checked.stdout.startswith(f"OK: {store} passes every check (3 complete sequence(s) of 3")

    datagen("train", store, "--out", run, "--steps", 3, "--device", "cpu", "--batch", 1,
            "--window", 4, "--crop", 32, "--channels", "8,16", "--num-workers", 0, "--warmup", 1)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3] and (run / "ckpt" / "last.pt").is_file()

    evaluated = datagen("eval", run, store, "--split", "test", "--device", "cpu")
    result = json.loads((run / "eval_test.json").read_text())
    assert result["step"] == 3 and set(result["model"]["per_scene"]) == {"primitives"}
    assert f"wrote {run / 'eval_test.json'}" in evaluated.stdout

    exported = datagen("export-model", run, "--out", export)  # at the store's HR size
    assert "at 64x36 HR" in exported.stdout
    assert {"model.onnx", "model.pt2", "export.json"} <= {p.name for p in export.iterdir()}
    info = json.loads((export / "export.json").read_text())
    assert info["outputs"]["out"] == [1, 3, 36, 64] and info["model_config"]["channels"] == [8, 16]

    # an --out that cannot be written (under a file) is one line and exit 2, before any work
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for command in (("build", "--recipe", recipe), ("train", store), ("export-model", run)):
        done = datagen(*command, "--out", blocker / "out", status=2)
        assert done.stderr.count("\n") == 1, done.stderr
        assert f"datagen {command[0]}: error: " in done.stderr and "a-file" in done.stderr
