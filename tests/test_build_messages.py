"""What `datagen build` tells the user beyond the progress bar: empty splits, and
how to resume after Ctrl-C. Real commands, real LocalCluster worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import zarr

TINY = ["primitives", "--frames", "2", "--res", "16x8", "--scale", "2", "--spp", "8", "--workers", "1"]


def datagen(*args: str) -> list[str]:
    return [sys.executable, "-m", "datagen", *args]


ENV = {**os.environ, "LP_NUM_THREADS": "1"}


def test_a_build_with_empty_val_and_test_splits_says_so(tmp_path: Path):
    proc = subprocess.run(datagen("build", *TINY, "--sequences", "1", "--out", str(tmp_path / "s.zarr")),
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "nothing to read" in line]
    assert len(warning) == 1 and "val and test splits get no sequence" in warning[0]
    assert "train 1, val 0, test 0 of 1" in warning[0]


def complete_count(out: Path) -> int:
    try:
        return int(zarr.open_group(out, mode="r")["train"]["complete"][:].sum())
    except Exception:  # not made yet, or a metadata file mid-write
        return 0


def test_ctrl_c_says_how_to_resume(tmp_path: Path):
    out = tmp_path / "s.zarr"
    proc = subprocess.Popen(datagen("build", *TINY, "--sequences", "8", "--frames", "60", "--out", str(out)),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=ENV,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while complete_count(out) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # until the cluster is up and one sequence is in
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C does: the client and its worker processes
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert ("datagen build: interrupted; complete sequences are kept: "
            "run the same command again to resume") in stderr.splitlines(), stderr
    assert "Traceback" not in stderr, stderr  # a worker may warn that its task was cancelled
    assert 1 <= complete_count(out) < 8  # what was done is kept; the rest is for the resume
