"""A scale whose LR size is rounded (74x41 at 1.7: LR 44x24, ratio 1.6818 x 1.7083), end to
end through the real CLI: build with the default recipe (varied racing, flips, strides),
validate, export EXR folders that pass the same jitter, reprojection and LR/HR motion
checks as scale 2 (tests/export_checks.py), and train a step on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from export_checks import check_sequence_dir

from datagen import conventions as cv
from datagen.store import open_store

ENV = {**os.environ, "LP_NUM_THREADS": "1"}
HR, SCALE = (74, 41), 1.7


def datagen(*args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datagen", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rounded") / "r.zarr"
    done = datagen("build", "racing", "--sequences", 2, "--frames", 4, "--res", f"{HR[0]}x{HR[1]}", "--scale",
                   SCALE, "--spp", 8, "--workers", 1, "--out", path)
    assert done.returncode == 0, done.stderr
    assert "HR 74x41, LR 44x24 (scale 1.7; ratio 1.68182 x 1.70833)" in done.stdout
    return path


def test_the_store_records_the_rounded_size_and_exact_ratio(store):
    s = open_store(store)
    assert s.lr_size == cv.lr_size(HR, SCALE) == (44, 24)
    assert s.ratio == (74 / 44, 41 / 24) == tuple(s.attrs["store"]["ratio"]) == tuple(s.conventions["ratio"])
    assert s.conventions["jitter_phase_count"] == cv.jitter_phase_count(74 / 44) == 23  # ratio_x < 1.7
    assert s.array("train", "color_lr").shape[2:4] == (24, 44)


def test_validate_accepts_it_and_judges_the_motion(store):
    done = datagen("validate", store)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "motion_lr_hr 8" in done.stdout and "motion_warp 6" in done.stdout


def test_exported_exrs_pass_the_checks_of_scale_2(store, tmp_path):
    done = datagen("export", store, "--format", "exr", "--out", tmp_path, "--no-preview")
    assert done.returncode == 0, done.stderr
    dirs = sorted(p.parent for p in tmp_path.rglob("sequence.json"))
    assert len(dirs) == 2
    for seq in dirs:
        result = check_sequence_dir(seq)
        assert result["failures"] == [], result
        assert result["ratio"] == (74 / 44, 41 / 24)
        assert result["judged"]["motion_lr_hr"] == 4 and result["judged"]["motion_warp"] >= 2, result


def test_training_takes_crops_of_it(store, tmp_path):
    done = datagen("train", store, "--steps", 2, "--out", tmp_path / "run", "--device", "cpu", "--batch", 1,
                   "--window", 2, "--crop", 17, "--channels", "8,16", "--num-workers", 0)
    assert done.returncode == 0, done.stderr
