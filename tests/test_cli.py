"""The real `datagen` command: a tiny render end to end, help, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datagen.exr import read_exr

DATAGEN = [sys.executable, "-m", "datagen"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "LP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*DATAGEN, *args], capture_output=True, text=True, env=full_env,
                          timeout=300)


def test_render_writes_the_spec_layout(tmp_path: Path):
    out = tmp_path / "seq"
    proc = run("render", "primitives", "--frames", "3", "--res", "42x24", "--scale", "3",
               "--spp", "8", "--seed", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    for sub in ("lr", "hr", "preview"):
        names = sorted(p.name for p in (out / sub).iterdir())
        assert names == [f"{i:04d}.{'png' if sub == 'preview' else 'exr'}" for i in range(3)]
    lr, hr = read_exr(out / "lr" / "0002.exr"), read_exr(out / "hr" / "0002.exr")
    assert lr["R"].shape == (8, 14) and hr["R"].shape == (24, 42)
    assert {"backward.u", "backward.v", "Z", "objectId"} <= set(lr)
    meta = json.loads((out / "sequence.json").read_text())
    assert len(meta["frames"]) == 3
    assert meta["config"]["render"]["spp"] == 8 and meta["config"]["seed"] == 2
    assert meta["conventions"]["jitter_phase_count"] == 72
    assert meta["frames"][1]["jitter_px"] == pytest.approx([0.25 - 0.5, 2 / 3 - 0.5])


def test_render_a_glb_orbits_the_model(tmp_path: Path):
    glb = Path(__file__).parent / "data" / "BoxTextured.glb"
    proc = run("render", str(glb), "--frames", "2", "--res", "32x18", "--spp", "8",
               "--out", str(tmp_path / "box"))
    assert proc.returncode == 0, proc.stderr
    lr = read_exr(tmp_path / "box" / "lr" / "0001.exr")
    ids = lr["objectId"]
    assert ids[ids.shape[0] // 2, ids.shape[1] // 2] > 0  # the model fills the middle
    assert (ids == 0).any()  # and the sky shows around it
    meta = json.loads((tmp_path / "box" / "sequence.json").read_text())
    assert meta["config"]["scene"] == "BoxTextured"
    assert meta["config"]["recipe"]["generator"] == "gltf"


def test_render_is_deterministic(tmp_path: Path):
    for name in ("a", "b"):
        proc = run("render", "primitives", "--frames", "2", "--res", "32x18", "--spp", "8",
                   "--out", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
    for buf in ("lr", "hr"):
        a, b = read_exr(tmp_path / "a" / buf / "0001.exr"), read_exr(tmp_path / "b" / buf / "0001.exr")
        assert a.keys() == b.keys()
        for channel in a:
            assert np.array_equal(a[channel], b[channel]), channel


@pytest.mark.parametrize("args, message", [
    (["render", "nosuchscene", "--out", "x"],
     "unknown scene 'nosuchscene'; valid: city, compose, forest, primitives, racing, showroom"),
    (["render", "primitives", "--res", "1920by1080", "--out", "x"], "WIDTHxHEIGHT"),
    (["render", "primitives", "--spp", "4", "--out", "x"], "spp 4 is out of range; use 8 to 256"),
    (["render", "primitives", "--spp", "300", "--out", "x"], "out of range"),
    (["render", "primitives", "--scale", "2.5", "--out", "x"], "use one of 1.3, 1.5, 1.7, 2, 3, 4"),
    (["render", "primitives", "--frames", "0", "--out", "x"], "--frames must be >= 1"),
    (["render", "model.glb", "--out", "x"], "model.glb: no such glTF file"),
    (["render", "model.obj", "--out", "x"], "model.obj: no such mesh file"),
    (["render", "primitives"], "--out"),
    (["build", "primitives", "--workers", "0", "--out", "x"], "--workers must be >= 1, got 0"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args, message):
    proc = subprocess.run([*DATAGEN, *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


def test_broken_glb_is_one_line_and_exit_2(tmp_path: Path):
    good = (Path(__file__).parent / "data" / "BoxTextured.glb").read_bytes()
    bad = tmp_path / "broken.glb"
    bad.write_bytes(good[: len(good) // 2])  # truncated mid-chunk
    proc = run("render", str(bad), "--res", "32x18", "--spp", "8", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "broken.glb" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_bad_recipe_names_the_file_and_key(tmp_path: Path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('generator = "primitives"\n[params]\nboxez = 3\n')
    proc = run("render", str(recipe), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "mine.toml" in proc.stderr and "boxez" in proc.stderr and "valid: boxes" in proc.stderr
    recipe.write_text("generator = \n")
    proc = run("render", str(recipe), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "not valid TOML" in proc.stderr


def test_no_gl_context_names_the_mesa_packages(tmp_path: Path):
    # libglvnd finds no EGL vendor: the same as a machine without Mesa's EGL
    proc = run("render", "primitives", "--res", "32x18", "--spp", "8", "--out", str(tmp_path / "o"),
               env={"__EGL_VENDOR_LIBRARY_FILENAMES": str(tmp_path / "none.json")})
    assert proc.returncode == 2
    assert "libegl-mesa0" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["render", "bench"])
def test_help_has_examples(command):
    proc = subprocess.run([*DATAGEN, command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "examples:" in proc.stdout


def test_bench_reports_the_ratio():
    from datagen.bench import bench_render
    from datagen.render import RenderConfig

    figure = bench_render(RenderConfig(64, 36, 2.0, 8), frames=1)
    assert figure["figure"] == "render_vs_bare"
    assert figure["ratio"] == pytest.approx(figure["frames_per_s"] / figure["reference_frames_per_s"])
    assert figure["frames_per_s"] > 0 and figure["reference_frames_per_s"] > 0
    assert figure["gl_renderer"]
