"""Store reads from object storage (``s3://``) against local disk, for ``datagen bench``.

Where the object store is: ``DATAGEN_BENCH_S3`` (a writable ``s3://BUCKET/PREFIX``,
reached with the standard AWS variables), or else a moto S3 server that
``s3_prefix`` starts on 127.0.0.1 for the run (``pip install 'moto[server]'``).
Against moto on the loopback interface the figures measure the object-store
protocol and client (one HTTP request per shard read, signing, s3fs/tensorstore),
not a network: a real bucket adds latency per request.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from datagen.store import location
from datagen.store.measure import MB, _make, _reads, available_engines, machine, synthetic_frames
from datagen.store.reader import open_store
from datagen.store.schema import DEFAULT_LAYOUT

BUCKET = "datagen-bench"
"""the bucket made on the moto server."""


class S3Unavailable(RuntimeError):
    """Neither DATAGEN_BENCH_S3 nor moto_server: the reason."""


def _moto_server() -> str:
    exe = Path(sys.executable).parent / "moto_server"
    found = str(exe) if exe.exists() else shutil.which("moto_server")
    if found is None:
        raise S3Unavailable("no DATAGEN_BENCH_S3 and no moto_server (pip install 'moto[server]')")
    return found


@contextlib.contextmanager
def s3_prefix() -> Iterator[str]:
    """An s3:// prefix to measure against (module docstring); with moto, the AWS
    variables of this process point at it until the block ends."""
    given = os.environ.get("DATAGEN_BENCH_S3")
    if given:
        yield given.rstrip("/")
        return
    exe = _moto_server()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in (*env, "AWS_PROFILE")}
    try:
        _wait_until_up(env["AWS_ENDPOINT_URL"], proc)
        os.environ.update(env)
        os.environ.pop("AWS_PROFILE", None)
        location.forget_settings()
        location.filesystem().call_s3("create_bucket", Bucket=BUCKET)
        yield f"s3://{BUCKET}/bench"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        location.forget_settings()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def _wait_until_up(endpoint: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise S3Unavailable(f"moto_server did not answer on {endpoint}")


def bench_s3_reads(url: str, quick: bool) -> dict:
    """``store_read_s3``: K=8 window reads (MB/s) and random 256 px crops (samples/s)
    of one store written to ``url`` and to local disk, per read engine; the headline
    ``samples_per_s`` and ``ratio`` (s3 / local) are crops with the zarr engine."""
    hr, count = ((480, 270), 8) if quick else ((960, 540), 16)
    frames = list(synthetic_frames(hr, 2.0, count))
    sequences, windows, crops = (1, 4, 8) if quick else (2, 8, 24)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="datagen-bench-s3-") as tmp:
        for where, root in (("local", Path(tmp)), ("s3", location.parse(url))):
            path, write_s = _make(root, frames, 2.0, DEFAULT_LAYOUT, sequences)
            for engine in available_engines():
                store = open_store(path, engine)
                reads = _reads(store, np.random.default_rng(0), sequences, windows, crops, 256)
                rows[f"{where}_{engine}"] = {"window_mb_per_s": reads["window_mb_per_s"],
                                             "crops_per_s": reads["crops_per_s"]}
            rows[where + "_write_mb_per_s"] = sequences * store.sequence_nbytes() / write_s / MB
            if where == "s3":
                location.remove_tree(path)
    return {
        "figure": "store_read_s3",
        "what": f"the same store (synthetic {hr[0]}x{hr[1]} HR, scale 2, T={count}, default layout) read "
                f"from {'moto S3 on 127.0.0.1' if 'DATAGEN_BENCH_S3' not in os.environ else url} and from "
                f"local disk: K=8 window reads and random 256 px crops, per engine",
        "samples_per_s": rows["s3_zarr"]["crops_per_s"], "reads": rows, "crop_hr": 256, "window": 8,
        "reference": {"what": "the same reads from local disk (zarr engine)",
                      "crops_per_s": rows["local_zarr"]["crops_per_s"]},
        "ratio": rows["s3_zarr"]["crops_per_s"] / rows["local_zarr"]["crops_per_s"],
        "machine": machine(),
    }


def s3_read_figure(quick: bool) -> dict:
    """``bench_s3_reads`` against ``s3_prefix``, or a figure saying why it is missing."""
    try:
        with s3_prefix() as url:
            return bench_s3_reads(url, quick)
    except S3Unavailable as exc:
        return {"figure": "store_read_s3", "skipped": str(exc)}
