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
    (["render", "primitives", "--res", "20000x20000", "--out", "x"],
     "--res 20000x20000 is larger than llvmpipe"),
    (["render", "primitives", "--seed", "-1", "--out", "x"], "--seed must be >= 0, got -1"),
    (["render", "../scenes/primitives", "--out", "x"], "is not a recipe name"),
    (["render", "primitives", "--spp", "many", "--out", "x"], "invalid int value: 'many'"),
    (["render", "primitives", "--out", "x", "--bogus"], "unrecognized arguments: --bogus"),
    (["rendr", "primitives"], "invalid choice: 'rendr'"),
    (["build", "primitives", "--workers", "0", "--out", "x"], "--workers must be >= 1, got 0"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args, message):
    proc = subprocess.run([*DATAGEN, *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "usage:" not in proc.stderr, proc.stderr
    assert not (tmp_path / "x").exists()
    if message.startswith(("invalid", "unrecognized", "--out", "--seed", "--workers")):  # the parser's
        assert proc.stderr.rstrip().endswith("--help)")


def assert_one_line(proc: subprocess.CompletedProcess, code: int, message: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr


SMALL = ("primitives", "--res", "32x18", "--spp", "8")


def test_render_out_that_is_a_file_or_under_one(tmp_path: Path):
    (tmp_path / "file").write_text("in the way")
    assert_one_line(run("render", *SMALL, "--out", str(tmp_path / "file")), 2, "is a file; give a folder")
    assert_one_line(run("render", *SMALL, "--out", str(tmp_path / "file" / "sub")), 2,
                    "is a file, so no folder can be made")
    assert (tmp_path / "file").read_text() == "in the way"


def test_render_out_on_a_read_only_or_full_disk(tmp_path: Path, mounted):
    ro = mounted(tmp_path / "ro", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs")
    assert_one_line(run("render", *SMALL, "--out", str(ro / "x")), 2, "is not writable (a read-only")
    small = mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=64k", "tmpfs")
    proc = run("render", "primitives", "--frames", "4", "--res", "64x36", "--spp", "8",
               "--out", str(small / "x"))
    assert_one_line(proc, 1, "No space left on device")  # a runtime failure, not bad input
    assert "free disk space" in proc.stderr
    assert not (small / "x" / "sequence.json").exists()


def test_render_into_an_earlier_render_is_refused_or_replaced_whole(tmp_path: Path):
    out = tmp_path / "seq"
    flags = (*SMALL, "--out", str(out))
    assert run("render", *flags, "--frames", "4").returncode == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert_one_line(run("render", *flags, "--frames", "2"), 2, "already holds a sequence")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before  # untouched
    (out / "notes.txt").write_text("mine")
    proc = run("render", *flags, "--frames", "2", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    for sub, ext in (("lr", "exr"), ("hr", "exr"), ("preview", "png")):
        assert sorted(p.name for p in (out / sub).iterdir()) == [f"0000.{ext}", f"0001.{ext}"]
    assert len(json.loads((out / "sequence.json").read_text())["frames"]) == 2
    assert (out / "notes.txt").read_text() == "mine"  # only the sequence's own files go


def test_a_sky_only_render_is_warned_about(tmp_path: Path):
    from gltf_builder import GltfBuilder

    b = GltfBuilder()
    h = 0.5
    quad = b.add_mesh(b.primitive([(-h, -h, 0), (h, -h, 0), (h, h, 0), (-h, h, 0)], [(0, 0, 1)] * 4,
                                  [(0, 1), (1, 1), (1, 0), (0, 0)], [0, 1, 2, 0, 2, 3]))
    camera = b.add_node(camera=b.add_camera(0.8, 0.1, 100.0), translation=[0.0, 0.0, 3.0],
                        rotation=[0.0, 1.0, 0.0, 0.0])  # turned around: it looks away from the quad
    b.set_scene(b.add_node(mesh=quad), camera)
    model = b.write_gltf(tmp_path / "away.gltf")
    recipe = tmp_path / "away.toml"
    recipe.write_text(f'generator = "gltf"\n[params]\npath = "{model.name}"\ncamera = "file"\n')
    proc = run("render", str(recipe), "--frames", "2", "--res", "32x18", "--spp", "8",
               "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert "warning: every frame of away shows only the sky" in proc.stderr


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
