"""What runs inside a Dask worker process: one cached Renderer (one GL context)
per process, created on first use and reused by every task the worker runs.

This is an importable module on purpose: Dask ships a reference to
``render_sequence_task`` and the worker imports this module once, so the cache
below lives as long as the worker process. (A function defined in a script is
shipped by value and its cache would be rebuilt for every task.)

``RendererPlugin``, a Dask worker plugin the build registers on every worker,
closes the cached Renderer (every GL object, then the context) when the worker
shuts down, on the thread that made it: a GL context is current on one thread,
and Dask runs a single-threaded worker's tasks on one executor thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

from distributed.diagnostics.plugin import WorkerPlugin

from datagen import __version__
from datagen.pipeline.plan import SequenceResult

log = logging.getLogger(__name__)

_cache: dict = {"config": None, "renderer": None, "thread": None}

TEARDOWN_TIMEOUT_S = 30.0
"""how long a closing worker waits for its task thread (a frame in flight) to close the
Renderer; after that the process's exit releases the context."""


def _renderer(render_config):
    """This process's Renderer for ``render_config``: made on first use, reused after,
    and remade only if another config arrives."""
    if _cache["renderer"] is not None and _cache["config"] == render_config:
        return _cache["renderer"]
    close_renderer()
    # One llvmpipe thread per single-threaded worker process (measured in NOTES):
    # read by Mesa when the context is made, so set it before the first one.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    from datagen.render import Renderer

    _cache["renderer"] = Renderer(render_config)
    _cache["config"], _cache["thread"] = render_config, threading.get_ident()
    log.info("worker %d: made a GL context for %s", os.getpid(), render_config)
    return _cache["renderer"]


def max_target_size_here() -> int:
    """``gl.max_target_size`` of this worker: its Renderer's context, or a throwaway one."""
    from datagen.gl import max_target_size, probe_max_target_size

    renderer = _cache["renderer"]
    if renderer is not None:
        return max_target_size(renderer.ctx)
    os.environ.setdefault("LP_NUM_THREADS", "1")  # as _renderer does: Mesa may read it once
    return probe_max_target_size()


def close_renderer() -> bool:
    """Release this process's Renderer and context, if any (idempotent), on the thread
    that made them; elsewhere the Renderer is only dropped (its context is current on
    that thread, so GL calls here would not reach it). True if one was closed."""
    renderer, thread = _cache["renderer"], _cache["thread"]
    _cache["renderer"] = _cache["config"] = _cache["thread"] = None
    if renderer is None:
        return False
    if thread != threading.get_ident():
        log.warning("worker %d: the Renderer was made on another thread; dropped without closing "
                    "(the process's exit releases its context)", os.getpid())
        return False
    renderer.close()
    log.info("worker %d: closed its Renderer and GL context", os.getpid())
    return True


class RendererPlugin(WorkerPlugin):
    """Closes the worker's cached Renderer when the worker shuts down (or the plugin is
    removed): ``close_renderer`` runs on the worker's task executor, the thread that
    made the context, waiting at most ``TEARDOWN_TIMEOUT_S`` behind a running task."""

    name = "datagen-renderer"

    async def teardown(self, worker) -> None:
        executor = worker.executors.get("default")
        if executor is None or _cache["renderer"] is None:
            return
        try:
            future = asyncio.wrap_future(executor.submit(close_renderer))
            await asyncio.wait_for(future, TEARDOWN_TIMEOUT_S)
        except (TimeoutError, RuntimeError) as exc:  # a frame still in flight, or executor shut
            log.warning("worker %d: Renderer not closed at shutdown (%s); the process's exit releases "
                        "its context", os.getpid(), type(exc).__name__)


def thread_cpu_seconds() -> dict[str, float]:
    """CPU-seconds of this process so far, by kind of thread (Linux ``/proc``): ``gl``
    (llvmpipe's threads), ``task`` (Dask's task thread: the frames' Python side),
    ``tensorstore`` (its pool: chunking and the codec), ``rest`` (everything else, and
    threads that have ended, e.g. each sequence's writer thread), ``total``."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    parts = dict.fromkeys(("gl", "task", "tensorstore"), 0.0)
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:  # ended meanwhile
            continue
        comm, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        name = names.get(int(tid), "")
        kind = ("gl" if comm.startswith("llvmpipe") else "tensorstore" if comm.startswith("ts_")
                else "task" if "Dask-Default-Threads" in name else None)
        if kind:
            parts[kind] += (int(fields[11]) + int(fields[12])) / tick
    times = os.times()
    total = times.user + times.system
    return {**parts, "rest": total - sum(parts.values()), "total": total}


class ThreadCpuReport(WorkerPlugin):
    """Writes ``thread_cpu_seconds`` of the worker process to ``folder/PID.json`` when the
    worker shuts down (``datagen bench``'s build figure; a LocalCluster only: the folder
    is the client's)."""

    name = "datagen-thread-cpu"

    def __init__(self, folder: str):
        self.folder = folder

    def teardown(self, worker) -> None:
        import json

        with open(os.path.join(self.folder, f"{os.getpid()}.json"), "w") as f:
            json.dump(thread_cpu_seconds(), f)


def sequence_scene(task):
    """The recipe of ``task`` (a plan.SequenceTask) with its varied parameters laid
    over, and its scene, strided as its augmentation says. Pure Python, no GL. The
    recipe is loaded here, on the worker: its assets are found beside the worker's
    datagen (docs/cluster.md)."""
    import dataclasses

    from datagen.pipeline.augment import with_stride
    from datagen.scenes import recipes

    recipe = recipes.load(task.scene)
    recipe = dataclasses.replace(recipe, params={**recipe.params, **dict(task.params)})
    return recipe, with_stride(recipe.build(task.seed), task.augmentation.stride)


def ratio_frames(renderer, scene, aug, count: int):
    """Per frame of a sequence of several ratios, its Frames at every ratio
    (``Renderer.render_ratios``, the primary first), augmented: the primary Frame whole,
    the others' LR only (``Augmentation.apply_ratio``), so that the HR arrays they share
    are augmented once. ``write_sequence`` writes each into its ratio's arrays."""
    for i in range(count):
        primary, *extra = renderer.render_ratios(scene, i)
        primary = aug.apply(primary)
        yield [primary, *(aug.apply_ratio(frame, primary) for frame in extra)]


def render_sequence_task(store_path: str, task, config) -> SequenceResult:
    """Render ``task`` (a plan.SequenceTask) of ``config`` (the build's checked
    plan.BuildConfig, sent as itself) with this process's Renderer, apply its
    augmentation (drawn by ``plan``) and stream its frames into the store; the
    sequence's ``complete`` flag is set last by the writer."""
    from datagen.store.writer import write_sequence

    start = time.perf_counter()
    renderer = _renderer(config.render_config())
    recipe, scene = sequence_scene(task)
    aug = task.augmentation
    cam = scene.camera
    meta = {
        "scene": recipe.name, "seed": task.seed, "sequence_number": task.number,
        "split": task.split, "generator": recipe.generator, "params": recipe.params,
        "varied": dict(task.params), "camera": {"fov_y_deg": cam.fov_y_deg, "near": cam.near, "far": cam.far},
        "fps": scene.fps, "augmentation": aug.to_json(), "datagen_version": __version__,
    }
    if config.extra_scales:  # one HR, one LR per ratio: the extra ratios go to their subgroups
        frames = ratio_frames(renderer, scene, aug, config.frames)
    else:
        frames = (aug.apply(renderer.render(scene, i)) for i in range(config.frames))
    write_sequence(store_path, task.split, task.index, frames, meta)
    return SequenceResult(task.split, task.index, recipe.name, config.frames, time.perf_counter() - start)
