"""Loads glTF files in forked children, for the fuzz test: one path per stdin line, one JSON
line back per path.

    python tests/gltf_load_server.py SECONDS

Each file is loaded by ``load_gltf`` in a child forked from this process (imports done
once, no GL), which reports its outcome through a pipe; the parent reaps it with
``os.wait4``, so ``maxrss_kb`` is that child's own peak resident set, and kills it past
SECONDS. The reply: {"outcome": "loaded" | "error" | "killed" | "died", "type", "message",
"seconds", "maxrss_kb", "base_rss_kb"} (base: this process's resident set at the fork).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time

from datagen.gltf import load_gltf


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def child(path: str, out: int) -> None:
    try:
        load_gltf(path)
        reply = {"outcome": "loaded", "type": "", "message": ""}
    except BaseException as exc:  # noqa: BLE001 - every outcome is reported
        reply = {"outcome": "error", "type": type(exc).__name__, "message": str(exc)[:4000]}
    os.write(out, json.dumps(reply).encode())
    os._exit(0)


def load(path: str, seconds: float) -> dict:
    base = rss_kb()
    read, write = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        child(path, write)
    os.close(write)
    outcome = None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - start > seconds:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            outcome = {"outcome": "killed", "type": "", "message": f"still loading after {seconds} s"}
            break
        time.sleep(0.005)
    data = b"".join(iter(lambda: os.read(read, 65536), b""))
    os.close(read)
    if outcome is None:
        outcome = json.loads(data) if data else {"outcome": "died", "type": "", "message": f"status {status}"}
    return {**outcome, "seconds": time.monotonic() - start, "maxrss_kb": usage.ru_maxrss, "base_rss_kb": base}


def main() -> None:
    seconds = float(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for line in sys.stdin:
        print(json.dumps(load(line.strip(), seconds)), flush=True)


if __name__ == "__main__":
    main()
