"""Where a build runs when it starts its own batch cluster: the recipe's ``[cluster]``
table (or ``datagen build --cluster slurm --jobs N ...``) and the dask-jobqueue
``SLURMCluster`` made from it.

    [cluster]
    kind = "slurm"          # "local" (default): a LocalCluster on this machine
    partition = "cpu"       # sbatch --partition ("" = the cluster's default)
    account = ""            # sbatch --account
    walltime = "02:00:00"   # per job
    cores = 1               # per job: that many single-threaded worker processes
    memory = "3GiB"         # per job
    jobs = 8                # jobs kept running while the build runs

The client runs the Dask scheduler itself; every job runs ``dask worker`` with this
Python (the same checkout and environment must be at the same path on the nodes, as
on a shared file system). The jobs are cancelled when the build ends, fails, or is
interrupted (Ctrl-C, SIGTERM). docs/cluster.md says what the nodes need.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from datagen.errors import ConfigError

log = logging.getLogger(__name__)

KINDS = ("local", "slurm")


@dataclass(frozen=True)
class ClusterConfig:
    """The ``[cluster]`` table of a build recipe: what cluster ``datagen build`` starts."""

    kind: str = "local"
    """"local" (a LocalCluster here, or --scheduler) or "slurm" (SLURM jobs through dask-jobqueue)."""
    partition: str = ""
    """SLURM partition (sbatch --partition); "" for the cluster's default."""
    account: str = ""
    """SLURM account to charge (sbatch --account); "" for none."""
    walltime: str = "01:00:00"
    """time limit of each job, HH:MM:SS; a build that outlives its jobs resumes on new ones."""
    cores: int = 1
    """cores per job; the job runs that many single-threaded worker processes."""
    memory: str = "3GiB"
    """memory per job (a worker takes <= 0.85 GiB at 1080p, docs/cluster.md)."""
    jobs: int = 2
    """jobs to keep running during the build."""
    job_extra: tuple[str, ...] = ()
    """more sbatch options, e.g. ["--gres=gpu:1", "--constraint=a100"]."""
    host: str = ""
    """address the scheduler listens on, reachable from the nodes ("" = this host's
    own address, as dask-jobqueue picks it)."""
    python: str = ""
    """Python on the nodes that runs `dask worker` ("" = this client's interpreter)."""

    def check(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"cluster.kind {self.kind!r} is unknown; valid: {', '.join(KINDS)}")
        for key in ("cores", "jobs"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"cluster.{key} must be an integer >= 1, got {value!r}")
        parts = self.walltime.split(":")
        if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
            raise ConfigError(f"cluster.walltime {self.walltime!r} is not HH:MM:SS")


def cluster_from_dict(table: dict, where: str) -> ClusterConfig:
    """The ``[cluster]`` table as a ClusterConfig; unknown keys list the valid ones."""
    import dataclasses

    if not isinstance(table, dict):
        raise ConfigError(f"{where}: cluster must be a table like {{kind = \"slurm\", jobs = 8}}")
    valid = [f.name for f in dataclasses.fields(ClusterConfig)]
    bad = set(table) - set(valid)
    if bad:
        raise ConfigError(f"{where}: unknown key(s) cluster.{', cluster.'.join(sorted(bad))}; "
                          f"valid: {', '.join(valid)}")
    values = dict(table)
    if "job_extra" in values:
        values["job_extra"] = tuple(values["job_extra"])
    return ClusterConfig(**values)


def check_tools(config: ClusterConfig) -> None:
    """ConfigError if ``config`` asks for SLURM and this machine cannot submit jobs
    (called before the store is touched)."""
    if config.kind == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("--cluster slurm: no `sbatch` on PATH; run the build on a SLURM login node "
                          "(or use --scheduler with workers you started)")


def slurm_cluster(config: ClusterConfig):
    """A dask-jobqueue SLURMCluster for ``config``, scaled to ``config.jobs`` jobs."""
    check_tools(config)
    previous = signal.getsignal(signal.SIGINT)
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ConfigError("--cluster slurm needs dask-jobqueue: pip install dask-jobqueue") from None
    finally:
        # importing dask_jobqueue (its runner module) makes Ctrl-C a silent sys.exit(0);
        # keep KeyboardInterrupt, so the build reports the interruption (exit 130)
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGINT, previous)
    scheduler = {"dashboard_address": ":0"}
    if config.host:
        scheduler["host"] = config.host
    cluster = SLURMCluster(
        queue=config.partition or None, account=config.account or None,
        cores=config.cores, processes=config.cores, memory=config.memory, walltime=config.walltime,
        python=config.python or sys.executable, job_extra_directives=list(config.job_extra),
        # llvmpipe: one thread per single-threaded worker process (docs/cluster.md)
        job_script_prologue=["export LP_NUM_THREADS=1"],
        scheduler_options=scheduler, silence_logs="warning")
    log.info("SLURM job script:\n%s", cluster.job_script())
    cluster.scale(jobs=config.jobs)
    return cluster


@contextlib.contextmanager
def cancel_on_sigterm() -> Iterator[None]:
    """SIGTERM (scancel of the client, a pre-empted login session) raises
    KeyboardInterrupt like Ctrl-C, so the jobs are cancelled on the way out."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def slurm_client(config: ClusterConfig):
    """A distributed.Client on a new SLURMCluster; every job is cancelled on the way
    out, whether the build finished, failed or was interrupted."""
    from distributed import Client

    with cancel_on_sigterm():
        cluster = slurm_cluster(config)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()  # scancel of every job it submitted
