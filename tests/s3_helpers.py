"""A real S3-compatible server for the tests: moto in server mode (`moto_server`) on
127.0.0.1, a free port, in its own process; the bytes go over HTTP to it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "datagen-test", "AWS_SECRET_ACCESS_KEY": "datagen-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        """The variables a client needs: endpoint, test credentials, region."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(env: dict[str, str] | None = None) -> S3Server:
    """`moto_server` on 127.0.0.1 and a free port, up and answering; skips the test
    if moto is not installed."""
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists() and shutil.which("moto_server") is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen([str(exe if exe.exists() else "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **(env or {})})
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            return S3Server(endpoint, proc)
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    stop_moto(S3Server(endpoint, proc))
    raise RuntimeError(f"moto_server did not answer on {endpoint} within 30 s")


def stop_moto(server: S3Server) -> None:
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
