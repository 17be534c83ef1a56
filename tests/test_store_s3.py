"""Stores on object storage: the same store API, CLI and build against a real S3
server (moto in server mode on 127.0.0.1, bytes over HTTP; no client mocks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import zarr
from build_helpers import assert_same_arrays
from s3_helpers import free_port, start_moto, stop_moto
from store_helpers import CONFIG, META, make_store
from test_store import random_frame

from datagen.errors import StoreError
from datagen.store import location, open_store, write_sequence


def test_parse_paths_file_urls_and_s3_urls(tmp_path):
    assert location.parse(tmp_path / "a b.zarr") == tmp_path / "a b.zarr"
    assert location.parse((tmp_path / "a b.zarr").as_uri()) == tmp_path / "a b.zarr"
    p = location.parse("s3://bucket/some/racing.zarr/")
    assert (p.bucket, p.key, str(p), p.name) == ("bucket", "some/racing.zarr", "s3://bucket/some/racing.zarr",
                                                 "racing.zarr")
    assert str(p / "train" / "color_lr") == "s3://bucket/some/racing.zarr/train/color_lr"
    assert str(p.parent) == "s3://bucket/some"
    with pytest.raises(StoreError, match="gs:// is not supported"):
        location.parse("gs://bucket/x.zarr")
    with pytest.raises(StoreError, match="no bucket"):
        location.parse("s3:///x.zarr")


def test_a_store_on_s3_round_trips_like_on_disk(s3_env, tmp_path):
    bucket = s3_env.make_bucket("roundtrip")
    url = f"s3://{bucket}/a/store.zarr"
    rng = np.random.default_rng(3)
    for where in (url, tmp_path / "local.zarr"):
        make_store(where, frames=3, hr=(14, 10))
        frames = [random_frame(np.random.default_rng(3), t, (14, 10), 2.0) for t in range(3)]
        write_sequence(where, "train", 1, iter(frames), META)
    assert "a/store.zarr/zarr.json" in s3_env.keys(bucket)
    for engine in ("zarr", "tensorstore"):
        remote, local = open_store(url, engine=engine), open_store(tmp_path / "local.zarr", engine=engine)
        assert [s.complete for s in remote.sequences("train")] == [False, True]
        a, b = remote.read_window("train", 1), local.read_window("train", 1)
        for name in a:
            assert np.array_equal(a[name], b[name], equal_nan=True), name
        crop = remote.read_crop("train", 1, 0, 2, 2, 4, (6, 8))
        assert crop["color_hr"].shape == (2, 6, 8, 3)
    summary = open_store(url).summary()
    assert summary["splits"]["train"]["complete"] == 1 and summary["disk_bytes"] > 0
    assert rng is not None
    # plain zarr-python through fsspec reads it too
    root = zarr.open_group(location.zarr_store(location.parse(url), read_only=True), mode="r")
    assert root["train/seed"][1] == META["seed"]


def test_creating_twice_resumes_and_another_config_is_refused(s3_env):
    bucket = s3_env.make_bucket("resume")
    url = f"s3://{bucket}/s.zarr"
    make_store(url)
    keys = s3_env.keys(bucket)
    make_store(url)  # the same config: kept as it is
    assert s3_env.keys(bucket) == keys
    with pytest.raises(StoreError, match="config.spp is 8 there, 16 now"):
        make_store(url, config={**CONFIG, "spp": 16})
    make_store(url, config={**CONFIG, "spp": 16}, overwrite=True)
    assert open_store(url).config["spp"] == 16


def test_a_prefix_holding_other_objects_is_never_taken(s3_env):
    bucket = s3_env.make_bucket("foreign")
    s3_env.client().put_object(Bucket=bucket, Key="data/notes.txt", Body=b"mine")
    with pytest.raises(StoreError, match="not a Zarr store"):
        make_store(f"s3://{bucket}/data", overwrite=True)
    assert s3_env.keys(bucket) == ["data/notes.txt"]
    with pytest.raises(StoreError, match="not a store"):
        open_store(f"s3://{bucket}/data")


def test_no_such_bucket_is_one_clear_error(s3_env):
    with pytest.raises(StoreError, match="no such bucket s3://missing-bucket"):
        open_store("s3://missing-bucket/x.zarr")
    with pytest.raises(StoreError, match="no such bucket"):
        make_store("s3://missing-bucket/x.zarr")


# -- the CLI on s3:// stores ------------------------------------------------------------------------

DATAGEN = [sys.executable, "-m", "datagen"]
RACING = ("racing", "--sequences", "2", "--frames", "2", "--res", "64x36", "--spp", "8", "--workers", "2")
PLANNED = ("racing", "--sequences", "10", "--frames", "2", "--res", "64x36", "--spp", "8")
"""a build that fills every split: its errors come before any rendering."""


def datagen(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*DATAGEN, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "LP_NUM_THREADS": "1", **(env or {})})


def one_error_line(proc: subprocess.CompletedProcess, command: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"datagen {command}: error:"), proc.stderr
    return lines[0]


def test_build_validate_train_on_s3_equal_the_local_build(s3_env, tmp_path):
    bucket = s3_env.make_bucket("datagen-test")
    url = f"s3://{bucket}/racing.zarr"
    local = tmp_path / "racing.zarr"
    built = {out: datagen("build", *RACING, "--out", out) for out in (url, local)}
    for proc in built.values():
        assert proc.returncode == 0, proc.stderr
    assert built[url].stdout.startswith(f"built {url}: rendered 2 sequence(s)")
    assert_same_arrays(url, local)
    proc = datagen("validate", url)
    assert proc.returncode == 0 and proc.stdout.startswith(f"OK: {url}"), proc.stdout + proc.stderr
    info = datagen("info", url, "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["complete_sequences"] == 2
    run = tmp_path / "run"
    proc = datagen("train", url, "--steps", 2, "--device", "cpu", "--batch", 1, "--window", 2, "--crop", 16,
                   "--channels", "4,8", "--num-workers", 2, "--out", run)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and all(np.isfinite(r["loss"]) for r in records)
    proc = datagen("preview", url, "--out", tmp_path / "p.png")
    assert proc.returncode == 0 and (tmp_path / "p.png").stat().st_size > 0, proc.stderr
    proc = datagen("export", url, "--format", "exr", "--sequence", 0, "--split", "train",
                   "--out", tmp_path / "exr", "--no-preview")
    assert proc.returncode == 0 and len(list((tmp_path / "exr").rglob("*.exr"))) == 4, proc.stderr


def test_object_store_failures_are_one_line_exit_2(s3_env, tmp_path):
    bucket = s3_env.make_bucket("errors")
    line = one_error_line(datagen("info", "s3://no-such-bucket/x.zarr"), "info")
    assert "no such bucket s3://no-such-bucket" in line
    proc = datagen("build", *PLANNED, "--out", "s3://no-such-bucket/x.zarr")
    assert proc.returncode == 2 and "no such bucket" in one_error_line(proc, "build")
    # nothing listens on this port
    proc = datagen("validate", f"s3://{bucket}/x.zarr", env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    assert proc.returncode == 2 and "cannot reach the object store" in one_error_line(proc, "validate")
    # a prefix holding a store of another config
    make_store(f"s3://{bucket}/p.zarr")
    proc = datagen("build", *PLANNED, "--out", f"s3://{bucket}/p.zarr")
    assert proc.returncode == 2 and "a store built with a different config" in one_error_line(proc, "build")


def test_access_denied_is_one_line_exit_2():
    """A second moto server that checks credentials (INITIAL_NO_AUTH_ACTION_COUNT=0):
    the test keys are unknown to it."""
    server = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        proc = datagen("info", "s3://any-bucket/x.zarr", env=server.env)
        assert proc.returncode == 2 and "access denied" in one_error_line(proc, "info")
    finally:
        stop_moto(server)


def test_window_dataset_streams_from_s3_with_several_loader_workers(s3_env, tmp_path):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from datagen.train.data import WindowDataset

    bucket = s3_env.make_bucket("training")
    url = f"s3://{bucket}/train.zarr"
    for where in (url, tmp_path / "local.zarr"):
        make_store(where, frames=4, hr=(16, 10), splits={"train": 2})
        for index in range(2):
            frames = [random_frame(np.random.default_rng([index, t]), t, (16, 10), 2.0) for t in range(4)]
            write_sequence(where, "train", index, iter(frames), META)
    remote = WindowDataset(url, "train", window=2, crop_hr=(6, 8), augment=True, seed=4)
    local = WindowDataset(tmp_path / "local.zarr", "train", window=2, crop_hr=(6, 8), augment=True, seed=4)
    assert len(remote) == len(local) == 6
    streamed = list(DataLoader(remote, batch_size=2, num_workers=2))
    expected = list(DataLoader(local, batch_size=2, num_workers=0))
    assert len(streamed) == len(expected) == 3
    for a, b in zip(streamed, expected, strict=True):
        for name in b:
            assert torch.equal(a[name].nan_to_num(), b[name].nan_to_num()), name


def test_failures_are_named_by_what_went_wrong():
    path = location.parse("s3://bucket/x.zarr")
    assert "cannot reach" in location.explain(path, OSError("Could not connect to http://127.0.0.1:40312/"))
    assert "access denied" in location.explain(path, PermissionError("Forbidden"))
    assert "access denied" in location.explain(path, OSError("An error occurred (403) calling HeadBucket"))
    assert "no such bucket s3://bucket" in location.explain(path, FileNotFoundError("NoSuchBucket"))
    assert location.explain(path, ValueError("something else")) is None
