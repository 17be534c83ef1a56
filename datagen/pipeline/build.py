"""``build(config, out)``: plan the sequences, create (or resume into) the store,
render what is not complete on a Dask cluster and stream it into the store.

The parent process never makes a GL context: every frame is rendered inside a
worker process (``datagen.pipeline.worker``), so workers may be forked or
spawned safely. A LocalCluster's workers are forked from a forkserver that has
imported what they need (``_forkserver``); other clusters start their own.

Faults: a task that raises is retried twice (``TASK_RETRIES``); a task whose
worker process dies (SIGKILL, out of memory) is rescheduled by Dask up to
``distributed.scheduler.allowed-failures`` times (3 by default). Either way the
sequence is written again from its first frame, and its ``complete`` flag is set
only by the attempt that finishes, so a killed attempt never leaves a sequence
marked complete. Re-running after the client itself dies skips what is complete.

Errors that retrying cannot cure (every ``DatagenError``: bad input such as a scene
that does not load, and a full, read-only or forbidden disk) are not retried: the
task returns the error, and the build stops with it as one line (a full disk exits
1). The render size is checked against the workers' GL limits before the store is
made (``check_render_size``), so an impossible --res leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from datagen import conventions as cv
from datagen.errors import ConfigError, DatagenError
from datagen.pipeline.plan import BuildConfig, SequenceResult, SequenceTask, plan, split_sizes

log = logging.getLogger(__name__)

SCHEDULER_TIMEOUT_S = 3
"""how long to wait for a --scheduler address before giving up."""

LOCAL_CLUSTER_CONFIG = {
    # no statistical profiler in the workers: it samples the task thread's stack 100
    # times a second, ~0.014 CPU-s a second per worker (measured)
    "distributed.worker.profile.enabled": False,
    # Dask's timers, fit for tasks of milliseconds, cost CPU on every wall second: an
    # idle 2-worker LocalCluster took 0.049 CPU-s a second in the client process
    # (scheduler, nannies) and 0.018 in each worker, 0.007 and 0.003 with these
    # (docs/benchmarks.md). A sequence task takes seconds.
    "distributed.admin.tick.interval": "1s",  # event-loop health check (warnings only); 20 ms
    "distributed.admin.system-monitor.interval": "2s",  # CPU/memory samples for the dashboard; 0.5 s
    "distributed.worker.memory.monitor-interval": "1s",  # the nanny's memory limit check; 0.1 s
    # one task at a time per worker thread, the rest queued on the scheduler: nothing
    # is left for work stealing (a 1 s timer) to balance
    "distributed.scheduler.worker-saturation": 1.0,
    "distributed.scheduler.work-stealing": False,
}
"""Dask settings of a build's own LocalCluster (its scheduler, nannies and workers)."""

WORKER_PRELOAD = ("distributed", "datagen.pipeline.build", "datagen.pipeline.worker", "datagen.render",
                  "datagen.store.writer", "tensorstore")
"""What a LocalCluster's forkserver imports before it forks the workers (``_forkserver``):
what a worker imports to run a sequence task, up to the GL context (none made there)."""

TASK_RETRIES = 2
"""how often a sequence task that raised is tried again (worker deaths are counted
apart, by Dask's ``distributed.scheduler.allowed-failures``)."""


@dataclass(frozen=True)
class BuildSummary:
    """What ``build`` returns."""

    store: str
    """the store's path or URL."""
    sequences: int
    """sequences in the plan."""
    skipped: int
    """sequences already complete in the store (resume), not rendered again."""
    rendered: int
    """sequences rendered by this build."""
    frames: int
    """frames rendered by this build."""
    seconds: float
    """wall seconds from the store's creation to the last sequence."""

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.frames else 0.0


def quiet_dask_logs(level: int = logging.WARNING) -> None:
    """Keep distributed's messages of ``level`` and above only: it logs every worker start
    and stop, and every client connection, at INFO."""
    import distributed  # noqa: F401  (configures its loggers on import)

    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(level)


def close_interrupted_clusters() -> None:
    """After Ctrl-C: close any LocalCluster still open, quietly. Interrupted while its
    workers start, Dask's own exit hook fails on them with an AssertionError traceback
    ("Status.init"); this closes them first and takes that hook out."""
    import atexit

    from distributed.deploy import spec

    atexit.unregister(spec.close_clusters)
    for cluster in list(spec.SpecCluster._instances):
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)


def local_cluster_env(workers: int) -> dict[str, str]:
    """Environment of LocalCluster worker processes: llvmpipe threads shared out so
    that ``workers`` single-threaded processes do not oversubscribe the cores (NOTES:
    one llvmpipe thread per worker is fastest when there are as many workers as
    cores). Overrides an inherited LP_NUM_THREADS meant for one process."""
    return {"LP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}


def store_config(config: BuildConfig, recipes_by_name: dict) -> dict:
    """The resolved config recorded in the store's attrs."""
    return {
        "build": config.recorded(),
        "render": dataclasses.asdict(config.render_config()),
        "scenes": {name: {"generator": r.generator, "params": r.params}
                   for name, r in recipes_by_name.items()},
    }


def _conventions(config: BuildConfig, tasks: list[SequenceTask], recipes_by_name: dict) -> dict:
    """The conventions block; near/far span every scene's camera (each sequence's own
    camera is in its metadata)."""
    # the generators report their clip planes without building the scene (a glTF or mesh
    # file's camera is read off the loaded model)
    clips = [recipe.clip_planes(next(t for t in tasks if t.scene == name).seed)
             for name, recipe in recipes_by_name.items()]
    return cv.conventions_block(config.scale, config.spp, min(c[0] for c in clips),
                                max(c[1] for c in clips), config.reference_resolve,
                                ratio=config.render_config().ratio)


@contextlib.contextmanager
def _client(config: BuildConfig, plugins: tuple = ()):
    """A distributed.Client: to a new SLURM cluster (``config.cluster``), to
    ``config.scheduler``, or to a new LocalCluster of single-threaded worker processes;
    ``RendererPlugin`` and ``plugins`` registered on its workers."""
    from distributed import Client, LocalCluster

    if config.cluster.kind == "slurm":
        from datagen.pipeline.cluster import slurm_client

        with slurm_client(config.cluster) as client:
            _register_plugins(client, plugins)
            yield client
        return
    if config.scheduler:
        try:
            client = Client(config.scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {config.scheduler} within "
                f"{SCHEDULER_TIMEOUT_S} s ({type(exc).__name__}); start one with `dask scheduler` "
                "(and workers with `dask worker ADDRESS`), or check the host and port") from None
        with client:
            _check_workers(client, config.scheduler)
            _register_plugins(client, plugins)
            yield client
        return
    import dask

    workers = config.workers or os.cpu_count() or 1
    # set for the cluster's whole life: a nanny reads the start method again when it
    # restarts a worker that died
    with dask.config.set(LOCAL_CLUSTER_CONFIG), _forkserver(WORKER_PRELOAD):
        with _workers_ignore_ctrl_c():
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=logging.ERROR,
                                   env=local_cluster_env(workers))
        with cluster, Client(cluster) as client:
            _register_plugins(client, plugins)
            yield client
            # workers leave before the scheduler closes: closed together, a worker's heartbeat
            # could meet the closed scheduler and print a CommClosedError traceback after a
            # successful build (1 build in 12 here)
            with contextlib.suppress(Exception):
                client.retire_workers(close_workers=True)


@contextlib.contextmanager
def _forkserver(preload: tuple[str, ...]):
    """Start LocalCluster workers from a forkserver that has imported ``preload``: the
    imports (~1 CPU-s: distributed, zarr, tensorstore, moderngl, datagen) are paid once
    instead of once per worker. The forkserver is a process started (fork and exec)
    for this, like a spawned worker, which then only forks: it makes no GL context
    (importing moderngl opens no GL library) and runs one thread, so forking it is
    safe. Stopped when the build ends, so that every build pays for its own (and its
    CPU, with its workers', is counted as this process's children's). Where a
    forkserver already runs in this process, it is used as it is and left running."""
    import multiprocessing
    from multiprocessing import forkserver

    import dask
    from distributed import utils

    server = getattr(forkserver, "_forkserver", None)
    ours = getattr(server, "_forkserver_pid", 1) is None and hasattr(server, "_stop")
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        if ours:
            multiprocessing.get_context("forkserver").set_forkserver_preload(list(preload))
            # else distributed picks its own list once, importing pandas here for it
            utils._forkserver_preload_set = True
        try:
            yield
        finally:
            if ours:
                with contextlib.suppress(OSError):
                    server._stop()


@contextlib.contextmanager
def _workers_ignore_ctrl_c():
    """Worker processes started inside inherit "ignore SIGINT" (kept across exec, and
    Python then installs no KeyboardInterrupt handler): Ctrl-C in a terminal signals
    the whole process group, and a worker still importing would print a traceback.
    The client handles Ctrl-C and closes the workers. Ignored here only while the
    workers start, and only where a handler can be set (the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _register_plugins(client, plugins: tuple = ()) -> None:
    """``worker.RendererPlugin`` on every worker, present and future (a worker that
    shuts down closes its Renderer and GL context), then ``plugins``."""
    from datagen.pipeline.worker import RendererPlugin

    for plugin in (RendererPlugin(), *plugins):
        client.register_plugin(plugin)


def _datagen_version() -> str:
    from datagen import __version__

    return __version__


def _check_workers(client, address: str) -> None:
    """Refuse a cluster whose workers run another datagen (or none); warn if it has
    no workers yet (tasks wait for them: an adaptive or queued cluster may be slow)."""
    from datagen import __version__

    if not client.scheduler_info(n_workers=-1)["workers"]:
        log.warning("the scheduler at %s has no workers yet; sequences wait until `dask worker %s` "
                    "processes join", address, address)
        return
    try:
        versions = client.run(_datagen_version)
    except Exception as exc:  # the worker cannot unpickle a datagen function
        raise ConfigError(f"the workers of {address} cannot import datagen ({type(exc).__name__}: "
                          f"{exc}); install datagen {__version__} on every worker "
                          "(docs/cluster.md)") from None
    other = {worker: v for worker, v in versions.items() if v != __version__}
    if other:
        raise ConfigError(f"workers of {address} run another datagen version ({other}); this client "
                          f"is {__version__}: install the same version on every worker")


def _probe_command() -> list[str]:
    return [sys.executable, "-m", "datagen.gl"]


def check_render_size(config: BuildConfig, client=None) -> None:
    """ConfigError if ``config.render_size`` (or its shadow map) is beyond the GL limits of
    the machines that will render: probed by a task on ``client``'s cluster, or for a
    LocalCluster in a subprocess (the client process never holds a GL context). Where no
    limit can be had (no GL here, no workers yet), the workers' own check stops the build."""
    from datagen.render_config import check_target_size

    if client is not None:
        if not client.scheduler_info(n_workers=-1)["workers"]:
            return
        from datagen.pipeline.worker import max_target_size_here

        limit = client.submit(max_target_size_here, pure=False).result()
    else:
        try:
            done = subprocess.run(_probe_command(), capture_output=True, text=True, timeout=120)
            limit = int(done.stdout.strip()) if done.returncode == 0 else None
        except (OSError, ValueError, subprocess.TimeoutExpired):
            limit = None
    if limit is not None:
        check_target_size(config.render_config(), limit, "the workers' GL renderer")


def render_unless_complete(store_path: str, task: SequenceTask, config: BuildConfig) -> SequenceResult:
    """The Dask task of one sequence: ``worker.render_sequence_task``, unless the store
    already marks the sequence complete.

    Dask runs a finished task again when the worker holding its result dies before
    the client has let the result go; a second write would set ``complete`` false
    again until it ends, and the client may have counted the sequence and left.
    Sequences are deterministic, so a complete one is never worth rewriting."""
    import zarr

    from datagen.pipeline.worker import render_sequence_task
    from datagen.store import location

    root = zarr.open_group(location.zarr_store(location.parse(store_path), read_only=True), mode="r")
    if root[task.split]["complete"][task.index]:
        return SequenceResult(task.split, task.index, task.scene, config.frames, 0.0)
    try:
        return render_sequence_task(store_path, task, config)
    except DatagenError as exc:  # the same input fails the same way: no retry, the client stops
        return SequenceResult(task.split, task.index, task.scene, 0, 0.0, error=exc)


def _stop(client, futures: list) -> None:
    """Cancel what is left of a build that failed; the cluster's shutdown then interrupts
    running tasks, which distributed reports at WARNING: keep only its errors."""
    client.cancel([f for f in futures if not f.done()])
    quiet_dask_logs(logging.ERROR)


def _warn_empty_splits(tasks: list[SequenceTask]) -> None:
    """Say when val or test gets no sequence: eval and validation need them."""
    sizes = split_sizes(tasks)
    empty = [split for split in ("val", "test") if sizes.get(split, 0) == 0]
    if empty:
        log.warning("the %s split%s no sequence (%s of %d): `datagen eval --split %s` will have "
                    "nothing to read; build more sequences or change [splits] in the recipe",
                    " and ".join(empty), "s get" if len(empty) > 1 else " gets",
                    ", ".join(f"{k} {v}" for k, v in sizes.items()), len(tasks), empty[-1])


def build(config: BuildConfig, out: str | os.PathLike, overwrite: bool = False,
          progress: Callable[[int, int, float], None] | None = None,
          on_cluster: Callable[[str], None] | None = None, plugins: tuple = ()) -> BuildSummary:
    """Build the store at ``out`` for ``config``; return a summary.

    Sequences already complete in an existing store of the same config are skipped
    (resume); another config there is a StoreError unless ``overwrite``.
    ``progress(done, total, frames_per_s)`` is called once at the start and after each
    finished sequence (``done`` counts skipped ones); ``on_cluster(dashboard_link)``
    once the cluster is up. ``plugins``: more Dask worker plugins for the build's workers
    (the bench's ``worker.ThreadCpuReport``).
    """
    from datagen.pipeline.cluster import check_tools
    from datagen.scenes import recipes
    from datagen.store import location, open_store
    from datagen.store.writer import create_store

    config.check()
    check_tools(config.cluster)
    recipes_by_name = {name: recipes.load(name) for name in config.scenes}  # unknown -> exit 2
    tasks = plan(config)
    for task in tasks:  # every sequence's varied parameters, before a worker builds the scene
        recipe = recipes_by_name[task.scene]
        dataclasses.replace(recipe, params={**recipe.params, **dict(task.params)}).check()
    _warn_empty_splits(tasks)
    out = location.parse(out)  # a path, file:// or s3:// URL that every worker reaches
    with contextlib.ExitStack() as stack:
        # an existing cluster is reached before the store is touched, so a wrong address
        # leaves nothing behind; a LocalCluster starts only if there is work for it
        client = stack.enter_context(_client(config, plugins)) if config.scheduler else None
        check_render_size(config, client)
        create_store(out, store_config(config, recipes_by_name), split_sizes(tasks), config.frames,
                     config.hr_size, config.scale, _conventions(config, tasks, recipes_by_name),
                     overwrite=overwrite, lr_size=config.lr_size, extra_scales=config.extra_scales)
        store = open_store(out)
        done_already = {(s, info.index) for s in store.splits for info in store.sequences(s)
                        if info.complete}
        pending = [t for t in tasks if (t.split, t.index) not in done_already]
        total, done, frames = len(tasks), len(tasks) - len(pending), 0
        start = time.perf_counter()
        if progress:
            progress(done, total, 0.0)
        if pending:
            from distributed import as_completed

            if client is None:
                client = stack.enter_context(_client(config, plugins))
            if on_cluster:
                on_cluster(client.dashboard_link)
            submitted = [client.submit(render_unless_complete, str(out.resolve()), task, config,
                                       key=f"sequence-{task.split}-{task.index}-{os.getpid()}",
                                       pure=False, retries=TASK_RETRIES)
                         for task in pending]
            for future in as_completed(submitted):
                result = future.result()
                future.release()  # let the scheduler forget it: it is not recomputed if its worker dies
                if result.error is not None:
                    _stop(client, submitted)
                    raise result.error
                done += 1
                frames += result.frames
                log.info("sequence %s %d (%s) in %.1f s", result.split, result.index, result.scene,
                         result.seconds)
                if progress:
                    progress(done, total, frames / max(time.perf_counter() - start, 1e-9))
    return BuildSummary(str(out), total, total - len(pending), len(pending), frames,
                        time.perf_counter() - start)
