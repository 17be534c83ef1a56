"""`datagen build` into a real S3 server (moto on 127.0.0.1) under faults: a build
SIGKILLed mid-sequence never leaves a sequence marked complete with missing chunks
and resumes to the same arrays as a local build; two builds of the same command into
one prefix at once do not corrupt each other."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from build_helpers import assert_same_arrays

from datagen.errors import StoreError
from datagen.pipeline.build import build
from datagen.pipeline.plan import load_config
from datagen.store import location, open_store
from datagen.store.validate import validate

DATAGEN = [sys.executable, "-m", "datagen"]
SEQUENCES = 3
RECIPE = f"""\
scenes = ["primitives"]
sequences = {SEQUENCES}
frames = 16
res = "32x18"
scale = 2.0
spp = 8
shadow_map_size = 256
seed = 3
workers = 2

[splits]
train = 0.5
val = 0.25
test = 0.25
"""


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    path = tmp_path_factory.mktemp("s3recipe") / "s3.toml"
    path.write_text(RECIPE)
    return path


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory):
    """The fault-free build on local disk."""
    out = tmp_path_factory.mktemp("s3ref") / "ref.zarr"
    assert build(load_config(recipe), out).rendered == SEQUENCES
    return out


def start_build(recipe, url: str) -> subprocess.Popen:
    return subprocess.Popen([*DATAGEN, "build", "--recipe", str(recipe), "--out", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LP_NUM_THREADS": "1"}, start_new_session=True)


def state(url: str, server, bucket: str) -> tuple[dict, dict]:
    """({(split, i): complete}, {(split, i): shard objects of color_hr written})."""
    try:
        store = open_store(url)
    except StoreError:
        return {}, {}
    complete = {(s, info.index): info.complete for s in store.splits for info in store.sequences(s)}
    prefix = location.parse(url).key
    shards: dict = {}
    for key in server.keys(bucket, prefix + "/"):
        parts = key[len(prefix) + 1:].split("/")
        if len(parts) > 3 and parts[1] == "color_hr" and parts[2] == "c":
            shards[(parts[0], int(parts[3]))] = shards.get((parts[0], int(parts[3])), 0) + 1
    return complete, shards


def listed_state(url: str, server, bucket: str) -> tuple[set, dict]:
    """The same from one listing (cheap enough to poll): a complete flag that is true
    is an object, a false one (the fill value) is none."""
    prefix = location.parse(url).key
    complete, shards = set(), {}
    for key in server.keys(bucket, prefix + "/"):
        parts = key[len(prefix) + 1:].split("/")
        if len(parts) == 4 and parts[1:3] == ["complete", "c"]:
            complete.add((parts[0], int(parts[3])))
        elif len(parts) > 3 and parts[1] == "color_hr" and parts[2] == "c":
            shards[(parts[0], int(parts[3]))] = shards.get((parts[0], int(parts[3])), 0) + 1
    return complete, shards


def assert_complete_ones_match(url: str, reference) -> None:
    store = zarr.open_group(location.zarr_store(location.parse(url), read_only=True), mode="r")
    ref = zarr.open_group(reference, mode="r")
    for split in ref.group_keys():
        for index, done in enumerate(store[split]["complete"][:]):
            if not done:
                continue
            for name in ref[split].array_keys():
                x, y = store[split][name][index], ref[split][name][index]
                assert np.array_equal(x, y, equal_nan=np.asarray(x).dtype.kind == "f"), (split, index, name)


def test_sigkill_mid_sequence_never_marks_it_complete_and_resume_equals_local(s3_env, recipe, reference):
    bucket = s3_env.make_bucket("killed")
    url = f"s3://{bucket}/killed.zarr"
    proc = start_build(recipe, url)
    try:
        deadline, victim = time.monotonic() + 400, None
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            complete, shards = listed_state(url, s3_env, bucket)
            # a sequence with some of its 4 shards per array written, not all, not complete
            started = [k for k, n in shards.items() if 0 < n < 4 and k not in complete]
            if started:
                os.killpg(proc.pid, signal.SIGKILL)  # the client and its worker processes
                victim = started[0]
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert victim is not None, "no sequence was caught half-written; make sequences longer"
    complete, shards = state(url, s3_env, bucket)
    assert not complete[victim] and shards.get(victim, 0) >= 1
    assert_complete_ones_match(url, reference)
    # resume with two builds of the same command at once into the same prefix: both
    # finish, and the store is the local build's, sequence for sequence
    procs = [start_build(recipe, url) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr
        assert f"skipped {sum(complete.values())} already complete" in stdout
    assert list(validate(open_store(url))) == []
    assert_same_arrays(url, reference)


def test_racing_creations_of_one_prefix(s3_env):
    """Creation has no rename on S3: processes creating the same store at once all
    succeed; a different config racing for the prefix is refused in one line."""
    bucket = s3_env.make_bucket("create-race")
    code = ("import sys; sys.path.insert(0, sys.argv[3]); from store_helpers import make_store, CONFIG; "
            "make_store(sys.argv[2], config={**CONFIG, 'spp': int(sys.argv[1])})")
    url = f"s3://{bucket}/race.zarr"
    run = [sys.executable, "-c", code]
    here = str(Path(__file__).parent)
    same = [subprocess.Popen([*run, "8", url, here], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    assert all(p.wait(120) == 0 for p in same), [p.stderr.read() for p in same]
    assert open_store(url).sequence_count("train") == 2
    other = subprocess.run([*run, "16", url, here], capture_output=True, text=True, timeout=120)
    assert other.returncode != 0 and "config.spp is 8 there, 16 now" in other.stderr
