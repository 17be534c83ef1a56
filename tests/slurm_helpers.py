"""A real single-node SLURM for the tests: munged, slurmctld and slurmd (Debian's
slurm-wlm and munge) on this host, configured in a temporary folder, on free ports.
Needs root (slurmd runs as root) and the packages (`.ci/slurm-install`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psutil

CONF = """\
ClusterName=datagen-test
SlurmctldHost={host}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={partition} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""

PARTITION = "datagen"


class SlurmUnavailable(RuntimeError):
    """The daemons cannot start here (no packages, not root, ...): the reason."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _munged_pids() -> set[int]:
    return {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "munged"}


class LocalSlurm:
    """slurmctld and slurmd of one node; ``env`` points sbatch/squeue/scancel at them."""

    def __init__(self, folder: Path):
        self.dir = folder
        self.conf = folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.started_munged: set[int] = set()

    def start(self) -> LocalSlurm:
        missing = [exe for exe in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")
                   if shutil.which(exe) is None]
        if missing:
            raise SlurmUnavailable(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise SlurmUnavailable("slurmd must run as root here")
        for sub in ("state", "spool"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        memory_mb = int(psutil.virtual_memory().total / 2**20 * 0.8)
        self.conf.write_text(CONF.format(host=socket.gethostname(), dir=self.dir, cpus=os.cpu_count() or 1,
                                         memory_mb=memory_mb, ctld_port=free_port(), d_port=free_port(),
                                         partition=PARTITION))
        before = _munged_pids()
        if not before:
            Path("/run/munge").mkdir(exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            self._run(["runuser", "-u", "munge", "--", "munged"], "munged")
            self.started_munged = _munged_pids() - before
        self._run(["slurmctld", "-f", str(self.conf)], "slurmctld")
        self._run(["slurmd", "-f", str(self.conf)], "slurmd")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = self.sinfo()
            if state in ("idle", "mixed", "allocated"):
                return self
            time.sleep(0.3)
        log = "\n".join(f.read_text()[-600:] for f in self.dir.glob("*.log"))
        self.stop()
        raise SlurmUnavailable(f"the node did not come up within 30 s (state {state!r}); logs:\n{log}")

    def _run(self, args: list[str], what: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, env=self.env, timeout=30)
        if done.returncode != 0:
            self.stop()
            raise SlurmUnavailable(f"{what} did not start: {(done.stderr or done.stdout).strip()[-400:]}")

    def sinfo(self) -> str:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env)
        return done.stdout.strip().rstrip("*~#")

    def jobs(self) -> dict[str, str]:
        """{job id: state} of every job in the queue."""
        done = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, env=self.env)
        return dict(line.split() for line in done.stdout.splitlines() if line.strip())

    def stop(self) -> None:
        """Cancel every job, stop slurmd and slurmctld (and munged if started here)."""
        subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True, env=self.env)
        for name in ("slurmd", "slurmctld"):
            pid_file = self.dir / f"{name}.pid"
            if pid_file.exists():
                try:
                    proc = psutil.Process(int(pid_file.read_text()))
                    proc.terminate()
                    proc.wait(15)
                except (psutil.Error, ValueError):
                    pass
        for pid in self.started_munged:
            try:
                psutil.Process(pid).terminate()
            except psutil.Error:
                pass
