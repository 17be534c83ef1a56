"""`datagen build` on a real LocalCluster of 2 worker processes: tiny builds end to end,
resume, refusal of another config, --overwrite, determinism, and bad input."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from build_helpers import assert_same_arrays, read_arrays

from datagen.errors import ConfigError
from datagen.pipeline.build import BuildSummary, build
from datagen.pipeline.plan import BuildConfig, SequenceResult, Splits, load_config, plan
from datagen.store import open_store
from datagen.store.validate import validate

DATAGEN = [sys.executable, "-m", "datagen"]
TINY = BuildConfig(scenes=("primitives",), sequences=3, frames=3, res="32x18", scale=2.0, spp=8,
                   shadow_map_size=256, splits=Splits(train=0.34, val=0.33, test=0.33), workers=2)
TINY_FLAGS = ("primitives", "--sequences", "2", "--frames", "2", "--res", "32x18", "--spp", "8",
              "--workers", "2")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LP_NUM_THREADS": "1"}
    return subprocess.run([*DATAGEN, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory) -> tuple[Path, BuildSummary, list]:
    out = tmp_path_factory.mktemp("build") / "tiny.zarr"
    calls = []
    summary = build(TINY, out, progress=lambda *a: calls.append(a))
    return out, summary, calls


def test_build_completes_and_validates(tiny_store):
    out, summary, progress = tiny_store
    assert summary.rendered == 3 and summary.skipped == 0 and summary.frames == 9
    assert progress[0] == (0, 3, 0.0) and progress[-1][:2] == (3, 3)
    store = open_store(out)
    assert {s: store.sequence_count(s) for s in store.splits} == {"train": 1, "val": 1, "test": 1}
    assert all(info.complete for s in store.splits for info in store.sequences(s))
    assert store.config["build"]["sequences"] == 3 and "workers" not in store.config["build"]
    assert store.config["render"]["spp"] == 8
    assert list(validate(store)) == []


def test_second_run_skips_everything(tiny_store, tmp_path):
    out, _, _ = tiny_store
    before = read_arrays(out)
    summary = build(dataclasses.replace(TINY, workers=1), out)  # workers do not change the data
    assert summary.rendered == 0 and summary.skipped == 3
    after = read_arrays(out)
    for name, x in before.items():
        assert np.array_equal(x, after[name], equal_nan=x.dtype.kind in "fc"), name


def test_two_builds_are_identical(tiny_store, tmp_path):
    out, _, _ = tiny_store
    other = tmp_path / "again.zarr"
    build(TINY, other)
    assert_same_arrays(out, other)


def test_resume_renders_only_what_is_not_complete(tiny_store, tmp_path):
    out, _, _ = tiny_store
    copy = tmp_path / "partial.zarr"
    shutil.copytree(out, copy)
    zarr.open_group(copy, mode="r+")["val"]["complete"][0] = False
    summary = build(TINY, copy)
    assert summary.rendered == 1 and summary.skipped == 2
    assert_same_arrays(out, copy)


def test_cli_end_to_end_refuses_another_config_and_overwrites(tmp_path):
    out = tmp_path / "cli.zarr"
    proc = run("build", *TINY_FLAGS, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "rendered 2 sequence(s)" in proc.stdout and "primitives (2)" in proc.stdout
    assert "compression ratio" in proc.stdout
    # the dashboard address only where one is served (bokeh installed)
    assert ("Dask dashboard: http" in proc.stderr) == (importlib.util.find_spec("bokeh") is not None)
    assert run("validate", str(out)).returncode == 0

    proc = run("build", *TINY_FLAGS, "--frames", "3", "--out", str(out))
    assert proc.returncode == 2
    assert "different config" in proc.stderr and "frames is 2 there, 3 now" in proc.stderr
    assert "--overwrite" in proc.stderr

    proc = run("build", *TINY_FLAGS, "--frames", "3", "--out", str(out), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert open_store(out).frames == 3


def test_default_out_is_named_after_the_scenes(tmp_path):
    proc = run("build", *TINY_FLAGS, "--sequences", "1", "--frames", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert open_store(tmp_path / "storage" / "primitives.zarr").frames == 1


def test_unknown_scene_exits_2_before_any_cluster(tmp_path):
    proc = run("build", "primitives", "nosuch", "--out", str(tmp_path / "x.zarr"))
    assert proc.returncode == 2
    assert "unknown scene 'nosuch'" in proc.stderr and "racing" in proc.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_unreachable_scheduler_exits_2_within_the_connect_timeout(tmp_path):
    from datagen.pipeline.build import SCHEDULER_TIMEOUT_S

    proc = run("build", *TINY_FLAGS, "--scheduler", "tcp://127.0.0.1:1",
               "--out", str(tmp_path / "x.zarr"))
    assert proc.returncode == 2
    assert "tcp://127.0.0.1:1" in proc.stderr and "dask scheduler" in proc.stderr
    assert f"within {SCHEDULER_TIMEOUT_S} s" in proc.stderr  # bounded by our timeout, not Dask's default
    assert not (tmp_path / "x.zarr").exists()


def test_recipe_with_unknown_key_exits_2_listing_valid_keys(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text('scenes = ["primitives"]\nframez = 3\n')
    proc = run("build", "--recipe", str(recipe))
    assert proc.returncode == 2
    assert "unknown key(s) framez" in proc.stderr and "frames" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flags, key", [
    (("--scale", "2.5"), "scale"), (("--spp", "1000"), "spp"), (("--scale", "1.25"), "scale"),
])
def test_out_of_range_values_exit_2(tmp_path, flags, key):
    proc = run("build", "primitives", *flags, "--out", str(tmp_path / "x.zarr"))
    assert proc.returncode == 2 and key in proc.stderr


# -- the plan (pure logic) ----------------------------------------------------------------------------


def test_default_recipe_loads_and_flags_override():
    config = load_config()
    assert config.scenes == ("racing",) and config.res == (640, 360)
    config = load_config(scenes=["racing", "city"], frames=4, spp=None)
    assert config.scenes == ("racing", "city") and config.frames == 4 and config.spp == 16


def test_plan_is_deterministic_with_whole_sequence_splits_and_holdout():
    config = BuildConfig(scenes=("racing", "city"), sequences=10, holdout_scene="city")
    tasks = plan(config)
    assert tasks == plan(config)
    assert [t.split for t in tasks if t.scene == "city"] == ["test"] * 10
    racing = [t for t in tasks if t.scene == "racing"]
    assert sorted(t.split for t in racing).count("train") == 8
    assert len({t.seed for t in tasks}) == 20
    for split in ("train", "val", "test"):
        assert [t.index for t in tasks if t.split == split] == list(range(sum(
            t.split == split for t in tasks)))
    assert plan(dataclasses.replace(config, seed=1)) != tasks


def test_bad_recipe_values_name_the_key(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("sequences = 0\n")
    with pytest.raises(ConfigError, match="sequences"):
        load_config(recipe)
    recipe.write_text("[splits]\ntrain = 0.5\nval = 0.1\ntest = 0.1\n")
    with pytest.raises(ConfigError, match="sum to 1"):
        load_config(recipe)
    recipe.write_text('holdout_scene = "city"\n')
    with pytest.raises(ConfigError, match="holdout_scene"):
        load_config(recipe)


def test_bench_build_figure_compares_a_build_with_rendering_alone(tmp_path):
    from datagen.bench import bench_build

    figure = bench_build(str(tmp_path), quick=True, config=dataclasses.replace(TINY, sequences=2, frames=2))
    assert figure["figure"] == "build_vs_render" and "primitives, 2 sequences x 2 frames" in figure["what"]
    assert figure["frames_per_s"] == pytest.approx(4 / figure["seconds"])
    assert figure["ratio"] == pytest.approx(figure["reference_seconds"] / figure["seconds"])
    assert 0 < figure["cluster_startup_s"] < figure["seconds"]
    # the build's CPU counts its worker processes (start-up, rendering): more than the
    # reference's rendering alone
    assert figure["cpu_seconds"] > figure["reference_cpu_seconds"] > 0
    assert figure["cpu_ratio"] == pytest.approx(figure["reference_cpu_seconds"] / figure["cpu_seconds"])
    assert open_store(tmp_path / "bench-build.zarr").frames == 2
    # the build's CPU by part, from each worker's own report: they add up to the whole,
    # every worker rendered (tensorstore: 0 here, where its writes take under a clock tick)
    parts = figure["build_cpu_parts"]
    assert parts["workers"] == TINY.workers
    assert parts["rendering"] > 0 and parts["tensorstore"] >= 0 and parts["outside_workers"] > 0
    assert sum(v for k, v in parts.items() if k != "workers") == pytest.approx(figure["cpu_seconds"])
    assert 0 < figure["rendering_share"] < 1


def test_thread_cpu_seconds_names_the_gl_and_tensorstore_threads(tmp_path):
    """In a process that renders and writes: llvmpipe's threads count as gl, tensorstore's
    pool as tensorstore, and the parts add up to the process's CPU."""
    code = ("import json, os, tempfile; os.environ['LP_NUM_THREADS'] = '2'; "
            "from datagen.pipeline.worker import thread_cpu_seconds; "
            "from datagen.render import RenderConfig, Renderer; from datagen.scenes import generate; "
            "from datagen.store.measure import synthetic_frames, writer_vs_codec; "
            "r = Renderer(RenderConfig(hr_width=256, hr_height=144, spp=4)); "
            "s = generate('primitives', {}, 0); [r.render(s, i) for i in range(3)]; "
            "writer_vs_codec(tempfile.mkdtemp(), list(synthetic_frames((320, 180), 2.0, 8)), 2.0, "
            "repeats=1); "
            "print(json.dumps(thread_cpu_seconds()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    parts = json.loads(done.stdout.strip().splitlines()[-1])
    assert parts["gl"] > 0 and parts["tensorstore"] > 0 and parts["task"] == 0
    assert sum(v for k, v in parts.items() if k != "total") == pytest.approx(parts["total"])


def test_a_task_run_again_leaves_a_complete_sequence_alone(tiny_store):
    """Dask re-runs a finished task whose result was on a worker that died; the rerun must
    not write (it would set complete=False again while the build may already be over)."""
    from datagen.pipeline.build import render_unless_complete

    out, _, _ = tiny_store
    task = plan(TINY)[0]
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    result = render_unless_complete(str(out), task, TINY)
    assert result == SequenceResult(task.split, task.index, "primitives", frames=3, seconds=0.0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == files


# -- failures that retrying cannot cure ---------------------------------------------------------------


def one_error_line(proc: subprocess.CompletedProcess, code: int) -> str:
    """The one error line of a failed build: beside it only the progress bar, the dashboard
    and datagen's warnings."""
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "Compute Failed" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert all(line.startswith(("build ", "Dask dashboard", "WARNING datagen")) for line in lines[:-1]), \
        proc.stderr  # the progress bar, the dashboard, our own warnings (an empty val split)
    return errors[0]


def test_a_resolution_beyond_the_gl_limits_is_refused_before_the_store(tmp_path):
    proc = run("build", "primitives", "--sequences", "1", "--frames", "1", "--res", "20000x20000",
               "--workers", "1", "--out", str(tmp_path / "big.zarr"))
    line = one_error_line(proc, 2)
    assert "--res 20000x20000 is larger than the workers' GL renderer can render: at most" in line
    assert not (tmp_path / "big.zarr").exists() and not list(tmp_path.iterdir())


def test_a_full_disk_stops_the_build_with_one_line_and_exit_1(tmp_path, mounted):
    disk = mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=600k", "tmpfs")
    proc = run("build", "primitives", "--sequences", "4", "--frames", "4", "--res", "64x36", "--spp", "8",
               "--workers", "1", "--out", str(disk / "s.zarr"))
    line = one_error_line(proc, 1)
    assert "cannot write sequence" in line and "No space left on device; free disk space" in line
    store = open_store(disk / "s.zarr")  # made; the sequences that did not fit stay not complete
    assert not all(info.complete for s in store.splits for info in store.sequences(s))


def test_an_incurable_task_error_is_returned_not_raised(tmp_path, mounted):
    """Dask retries a task that raises (TASK_RETRIES): a full, read-only or forbidden disk,
    or a scene that does not load, would fail the same way again, so the task returns it."""
    from datagen.errors import DiskFullError, OutputError
    from datagen.pipeline.build import render_unless_complete
    from datagen.store import create_store

    config = dataclasses.replace(TINY, sequences=1, frames=2)
    task = dataclasses.replace(plan(config)[0], split="train", index=0)
    disk = mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=1m", "tmpfs")
    path = create_store(disk / "s.zarr", {"x": 1}, {"train": 1}, 2, (32, 18), 2.0,
                        {"scale": 2.0, "spp": 8, "jitter_phase_count": 32, "filter": "box", "near": 0.1,
                         "far": 100.0})
    filler = disk / "filler"
    with open(filler, "wb") as fh, contextlib.suppress(OSError):
        while True:  # fill the disk
            fh.write(b"\0" * 65536)
            fh.flush()
    result = render_unless_complete(str(path), task, config)
    assert isinstance(result.error, DiskFullError) and result.error.exit_code == 1, result
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    result = render_unless_complete(str(path), task, config)
    assert type(result.error) is OutputError and result.error.exit_code == 2, result
    assert "Read-only file system" in str(result.error)
