"""`datagen build --cluster slurm` against a real single-node SLURM (slurmctld, slurmd
and munged started by the fixture): the workers are SLURM jobs; one is scancel'd
mid-build, the build still completes and equals a LocalCluster build array for array,
and every job is cancelled at the end and on Ctrl-C."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest
from build_helpers import assert_same_arrays
from slurm_helpers import PARTITION, LocalSlurm, SlurmUnavailable

from datagen.errors import StoreError
from datagen.pipeline.build import build
from datagen.pipeline.plan import load_config
from datagen.store import open_store

DATAGEN = [sys.executable, "-m", "datagen"]
SEQUENCES = 4
RECIPE = f"""\
scenes = ["racing"]
sequences = {SEQUENCES}
frames = 8
res = "32x18"
scale = 2.0
spp = 8
shadow_map_size = 256
seed = 11

[splits]
train = 0.5
val = 0.25
test = 0.25

[cluster]
kind = "slurm"
partition = "{PARTITION}"
jobs = 2
cores = 1
memory = "2GB"
walltime = "00:10:00"
host = "127.0.0.1"
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    try:
        cluster = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    except SlurmUnavailable as exc:
        print(f"SLURM tests skipped: {exc}")
        pytest.skip(f"no single-node SLURM here: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    path = tmp_path_factory.mktemp("slurm-recipe") / "slurm.toml"
    path.write_text(RECIPE)
    return path


def wait_for(predicate, what: str, timeout: float = 180, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def complete_count(path) -> int:
    try:
        store = open_store(path)
    except StoreError:
        return 0
    return sum(info.complete for s in store.splits for info in store.sequences(s))


def start_build(recipe, out, env) -> subprocess.Popen:
    """The client, run in the store's folder: the jobs write their slurm-JOBID.out logs
    where they were submitted from."""
    return subprocess.Popen([*DATAGEN, "build", "--recipe", str(recipe), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**env, "LP_NUM_THREADS": "1"}, cwd=out.parent)


def test_build_on_slurm_jobs_survives_a_scancel_and_equals_a_local_build(slurm, recipe, tmp_path):
    out = tmp_path / "slurm.zarr"
    proc = start_build(recipe, out, slurm.env)
    try:
        running = wait_for(lambda: [j for j, state in slurm.jobs().items() if state == "RUNNING"][1:],
                           "two running worker jobs")
        wait_for(lambda: complete_count(out) >= 1, "the first complete sequence")
        done_at_cancel = complete_count(out)
        subprocess.run(["scancel", running[0]], check=True, env=slurm.env)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
    print(f"SLURM build: {done_at_cancel} of {SEQUENCES} sequences complete when job {running[0]} was "
          f"cancelled; client exit {proc.returncode}\n{stdout}")
    assert done_at_cancel < SEQUENCES, "the build ended before the scancel; make sequences longer"
    assert proc.returncode == 0, stderr
    assert f"rendered {SEQUENCES} sequence(s)" in stdout
    wait_for(lambda: not slurm.jobs(), "every worker job to be cancelled", timeout=60)
    assert complete_count(out) == SEQUENCES
    reference = tmp_path / "local.zarr"
    config = load_config(recipe, workers=2)
    build(dataclasses.replace(config, cluster=dataclasses.replace(config.cluster, kind="local")), reference)
    assert_same_arrays(reference, out)


def test_ctrl_c_cancels_the_jobs(slurm, recipe, tmp_path):
    proc = start_build(recipe, tmp_path / "interrupted.zarr", slurm.env)
    try:
        wait_for(lambda: [j for j, state in slurm.jobs().items() if state == "RUNNING"],
                 "a running worker job")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    wait_for(lambda: not slurm.jobs(), "every worker job to be cancelled", timeout=30)


def test_slurm_without_sbatch_is_one_line(recipe, tmp_path):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    proc = subprocess.run([*DATAGEN, "build", "--recipe", str(recipe), "--out", str(tmp_path / "x.zarr")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "no `sbatch` on PATH" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
