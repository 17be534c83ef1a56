"""`datagen build` on real clusters and under real faults: a `dask scheduler` and two
`dask worker` subprocesses reached through --scheduler, SIGKILL of a worker mid-build,
SIGKILL of the client and a re-run. Every store is compared array by array with a
fault-free reference build of the same recipe on a LocalCluster of 2 processes."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import zarr
from build_helpers import assert_same_arrays

from datagen.errors import StoreError
from datagen.pipeline.build import build, local_cluster_env
from datagen.pipeline.plan import load_config, pipelines_dir, plan
from datagen.store import location, open_store
from datagen.store.validate import validate

DATAGEN = [sys.executable, "-m", "datagen"]
SEQUENCES = 6
# 32 frames a sequence (about a second of work each on a loaded 2-core machine), so
# that a kill lands while sequences are being rendered and written.
RECIPE = f"""\
scenes = ["primitives"]
sequences = {SEQUENCES}
frames = 32
res = "32x18"
scale = 2.0
spp = 8
shadow_map_size = 256
seed = 5
workers = 2

[splits]
train = 0.5
val = 0.25
test = 0.25
"""
ENV = {**os.environ, "LP_NUM_THREADS": "1"}


def datagen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DATAGEN, *args], capture_output=True, text=True, env=ENV, timeout=180)


def complete_sequences(path: Path) -> set[tuple[str, int]]:
    """(split, index) of every complete sequence; empty while the store is not there yet."""
    try:
        store = open_store(path)
    except StoreError:
        return set()
    return {(s, info.index) for s in store.splits for info in store.sequences(s) if info.complete}


def wait_for(predicate, what: str, timeout: float = 120, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def assert_complete_ones_match(path: Path, reference: Path) -> None:
    """Every sequence marked complete holds exactly the reference's arrays."""
    store, ref = zarr.open_group(path, mode="r"), zarr.open_group(reference, mode="r")
    for split, index in complete_sequences(path):
        for name in ref[split].array_keys():
            x, y = store[split][name][index], ref[split][name][index]
            assert np.array_equal(x, y, equal_nan=np.asarray(x).dtype.kind == "f"), (split, index, name)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "faults.toml"
    path.write_text(RECIPE)
    return path


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory) -> Path:
    """The fault-free build, through the Python API on a LocalCluster of 2 processes."""
    out = tmp_path_factory.mktemp("reference") / "ref.zarr"
    summary = build(load_config(recipe), out)
    assert summary.rendered == SEQUENCES
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive_in_groups(groups: set[int]) -> list[psutil.Process]:
    alive = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) in groups and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except (ProcessLookupError, psutil.Error):
            pass
    return alive


def stop_groups(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group, SIGKILL what is left after 15 s."""
    for proc in procs:
        with_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        with_group(proc, signal.SIGKILL)
        proc.wait()


def with_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """`dask scheduler` and two `dask worker` processes (one thread each) on 127.0.0.1,
    each in its own process group; yields (address, distributed.Client)."""
    from distributed import Client

    scratch = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{free_port()}"
    common = {"env": ENV, "cwd": scratch, "start_new_session": True,
              "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                               "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
                              **common)]
    client = None
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                 "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1",
                 "--local-directory", str(scratch)], **common))
        client = Client(address, timeout="60s")
        client.wait_for_workers(2, timeout=120)
        yield address, client
    finally:
        if client is not None:
            client.close()
        stop_groups(procs)
        groups = {proc.pid for proc in procs}
        # SIGKILL is delivered asynchronously: the groups' members may take a moment to go
        wait_for(lambda: not alive_in_groups(groups), "every dask scheduler/worker process to exit",
                 timeout=15)


def test_build_through_a_dask_scheduler_and_two_dask_workers(dask_cluster, recipe, reference, tmp_path):
    address, _ = dask_cluster
    out = tmp_path / "scheduler.zarr"
    proc = datagen("build", "--recipe", str(recipe), "--scheduler", address, "--out", out.as_uri())
    assert proc.returncode == 0, proc.stderr
    assert f"rendered {SEQUENCES} sequence(s)" in proc.stdout and "compression ratio" in proc.stdout
    assert list(validate(open_store(out))) == []
    assert_same_arrays(reference, out)


def test_sigkill_of_a_worker_mid_build_still_gives_the_reference_arrays(dask_cluster, recipe, reference,
                                                                         tmp_path):
    address, client = dask_cluster
    out = tmp_path / "worker-killed.zarr"
    pids_before = client.run(os.getpid)
    build_proc = subprocess.Popen([*DATAGEN, "build", "--recipe", str(recipe), "--scheduler", address,
                                   "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=ENV)
    try:
        wait_for(lambda: complete_sequences(out), "the first complete sequence")
        # a worker that is running a sequence right now (the nanny of `dask worker` restarts it)
        busy = wait_for(lambda: [w for w, keys in client.processing().items() if keys],
                        "a worker with a sequence in hand", poll=0.01)
        victim = busy[0]
        done_at_kill = complete_sequences(out)
        os.kill(pids_before[victim], signal.SIGKILL)
        stdout, stderr = build_proc.communicate(timeout=180)
    finally:
        if build_proc.poll() is None:
            build_proc.kill()
            build_proc.wait()
    assert len(done_at_kill) < SEQUENCES, "the build ended before the fault; make sequences longer"
    assert build_proc.returncode == 0, stderr
    assert f"rendered {SEQUENCES} sequence(s)" in stdout
    # the killed worker process is gone and its nanny started a new one
    client.wait_for_workers(2, timeout=120)
    assert pids_before[victim] not in client.run(os.getpid).values()
    assert not psutil.pid_exists(pids_before[victim]) or \
        psutil.Process(pids_before[victim]).status() == psutil.STATUS_ZOMBIE
    assert list(validate(open_store(out))) == []
    assert_same_arrays(reference, out)


def test_a_sequence_whose_worker_dies_too_often_ends_the_build_with_one_line(dask_cluster, recipe,
                                                                             reference, tmp_path):
    address, client = dask_cluster
    out = tmp_path / "killed-worker.zarr"
    pids = client.run(os.getpid)
    # no second chance for a task whose worker dies (the default allows 3)
    client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
    try:
        build_proc = subprocess.Popen([*DATAGEN, "build", "--recipe", str(recipe), "--scheduler", address,
                                       "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=ENV)
        wait_for(lambda: complete_sequences(out), "the first complete sequence")
        busy = wait_for(lambda: [w for w, keys in client.processing().items() if keys],
                        "a worker with a sequence in hand", poll=0.01)
        os.kill(pids[busy[0]], signal.SIGKILL)
        _, stderr = build_proc.communicate(timeout=180)
    finally:
        if build_proc.poll() is None:
            build_proc.kill()
            build_proc.wait()
        client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 3))
        client.wait_for_workers(2, timeout=120)
    assert build_proc.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("datagen build: error:"), stderr
    assert "run the same command again to resume" in errors[0] and "Traceback" not in stderr
    assert_complete_ones_match(out, reference)


def test_sigkill_of_the_client_then_rerun_resumes_to_the_reference_arrays(recipe, reference, tmp_path):
    out = tmp_path / "client-killed.zarr"
    args = [*DATAGEN, "build", "--recipe", str(recipe), "--out", str(out)]
    client = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                              start_new_session=True)
    try:
        wait_for(lambda: complete_sequences(out), "the first complete sequence")
        workers = psutil.Process(client.pid).children(recursive=True)
        os.kill(client.pid, signal.SIGKILL)
        client.wait()
        # the LocalCluster's worker processes watch their parent and exit with it
        _, alive = psutil.wait_procs(workers, timeout=60)
    finally:
        with_group(client, signal.SIGKILL)
    assert not alive, f"worker processes outlived the killed client: {alive}"
    done = complete_sequences(out)
    assert 1 <= len(done) < SEQUENCES, "the build ended before the kill; make sequences longer"
    assert_complete_ones_match(out, reference)  # a sequence cut short is never marked complete

    proc = datagen(*args[3:])
    assert proc.returncode == 0, proc.stderr
    assert f"skipped {len(done)} already complete" in proc.stdout
    assert f"rendered {SEQUENCES - len(done)} sequence(s)" in proc.stdout
    # the bar: sequences done of total, ETA, frames/s; the dashboard address if served; the summary
    assert re.search(rf"{SEQUENCES}/{SEQUENCES} \[\d+:\d+<\d+:\d+", proc.stderr), proc.stderr
    assert "frames/s" in proc.stderr
    assert ("Dask dashboard: http" in proc.stderr) == (importlib.util.find_spec("bokeh") is not None)
    assert "compression ratio" in proc.stdout
    assert list(validate(open_store(out))) == []
    assert_same_arrays(reference, out)


# -- store URLs and worker environment (no cluster) ---------------------------------------------------


def test_build_refuses_object_stores_other_than_s3_in_one_line():
    proc = datagen("build", "primitives", "--out", "gs://bucket/racing.zarr")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "gs://" in proc.stderr and "docs/cluster.md" in proc.stderr


def test_local_workers_share_the_cores_among_llvmpipe_threads():
    cores = os.cpu_count() or 1
    assert local_cluster_env(1) == {"LP_NUM_THREADS": str(cores)}
    assert local_cluster_env(cores * 4) == {"LP_NUM_THREADS": "1"}


# -- the cluster recipes in pipelines/ (no cluster here: they must load, plan and agree) ---------------


@pytest.mark.parametrize("name", ["slurm", "kubernetes", "gpu"])
def test_cluster_recipes_load_and_plan(name):
    config = load_config(pipelines_dir() / f"{name}.toml")
    tasks = plan(config)
    assert len(tasks) == config.sequences * len(config.scenes)
    assert {t.split for t in tasks} == {"train", "val", "test"}


def test_gpu_preset_is_a_1080p_target_with_hundreds_of_sequences():
    config = load_config(pipelines_dir() / "gpu.toml")
    assert config.hr_size == (1920, 1080) and config.scale == 2.0 and config.spp == 16
    assert len(config.scenes) >= 3 and len(plan(config)) >= 200


def test_kubernetes_manifest_matches_its_recipe():
    import yaml

    docs = {d["kind"]: d for d in yaml.safe_load_all((pipelines_dir() / "kubernetes.yaml").read_text())}
    cluster, job = docs["DaskCluster"], docs["Job"]
    name = cluster["metadata"]["name"]
    recipe = load_config(pipelines_dir() / "kubernetes.toml")
    assert recipe.scheduler == f"tcp://{name}-scheduler.default.svc.cluster.local:8786"
    assert cluster["spec"]["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == name
    worker = cluster["spec"]["worker"]["spec"]["containers"][0]
    assert {"name": "LP_NUM_THREADS", "value": worker["resources"]["limits"]["cpu"]} in worker["env"]
    assert worker["args"][:2] == ["dask", "worker"] and "--nthreads" in worker["args"]
    client = job["spec"]["template"]["spec"]["containers"][0]
    assert client["args"][:2] == ["datagen", "build"] and client["args"][3].endswith("kubernetes.toml")
    out = client["args"][client["args"].index("--out") + 1]
    # the store is in S3, reached with the same credentials by the client and every worker:
    # no shared (ReadWriteMany) volume
    assert location.is_remote(location.parse(out))
    assert "PersistentVolumeClaim" not in docs and not any("volumeMounts" in c for c in (worker, client))
    assert worker["envFrom"] == client["envFrom"] == [{"secretRef": {"name": "datagen-s3"}}]
