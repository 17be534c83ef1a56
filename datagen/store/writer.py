"""Writing a store: ``create_store`` once, then ``write_sequence`` once per sequence,
from any number of processes at the same time.

The complete-flag protocol: ``write_sequence`` first sets ``complete[i] = False``,
then writes the sequence's shards one block of ``frames_per_shard`` frames at a
time, then its per-frame scalars and metadata, and sets ``complete[i] = True``
last. A sequence whose writer died (or ran out of disk) stays not complete and is
simply written again; no file of it is shared with another sequence, so
concurrent writers of different sequences cannot clobber each other.

Frames are written on a writer thread fed through a queue of ``QUEUE_FRAMES``
frames, so rendering the next frames overlaps compressing and writing the last
block; an error on the writer thread stops the sequence in the caller's thread
(and the sequence stays not complete). In a store of several LR ratios
(``datagen.store.ratios``) each item is one frame's Frames at every ratio, and the
same thread writes the extra ratios' LR blocks into their subgroups.

Memory: one block of every pixel array (``frames_per_shard`` frames), the queued
frames and the sequence's small per-frame arrays, whatever the sequence length.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import zarr

from datagen import __version__
from datagen import conventions as cv
from datagen.errors import StoreError
from datagen.frame import Frame
from datagen.store import location, schema
from datagen.store.io import io_errors, open_root, open_split, ts_open, ts_result
from datagen.store.location import StorePath
from datagen.store.schema import ARRAYS, FRAME_ARRAYS, SPLITS, STEP_ARRAYS, ArraySpec, Layout

log = logging.getLogger(__name__)


def root_attrs(config: dict, splits: dict[str, int], frames: int, hr_size: tuple[int, int],
               scale: float, conventions: dict, layout: Layout,
               lr_size: tuple[int, int] | None = None, extra_scales: tuple[float, ...] = ()) -> dict:
    """The root attributes of a new store (JSON-ready). ``lr_size`` defaults to HR /
    scale rounded (``conventions.lr_size``); ``ratio`` records HR / LR per axis;
    ``extra_scales`` adds ``scales`` and ``extra_lr`` (``datagen.store.ratios``)."""
    lr_size = cv.lr_size(hr_size, scale) if lr_size is None else (int(lr_size[0]), int(lr_size[1]))
    if min(lr_size) < 1 or any(abs(n - m / scale) > 0.5 + 1e-9
                               for n, m in zip(lr_size, hr_size, strict=True)):
        raise StoreError(f"cannot create a store: LR {lr_size[0]}x{lr_size[1]} is not HR "
                         f"{hr_size[0]}x{hr_size[1]} / {scale:g} rounded to whole pixels")
    return _json_ready({
        "schema_version": schema.SCHEMA_VERSION,
        "datagen_version": __version__,
        "config": config,
        "conventions": conventions,
        "store": {
            "splits": {name: int(splits.get(name, 0)) for name in SPLITS},
            "frames": int(frames),
            "hr_size": [int(hr_size[0]), int(hr_size[1])],
            "lr_size": list(lr_size),
            "scale": float(scale),
            "ratio": list(cv.ratio_of(hr_size, lr_size)),
            "layout": layout.to_json(),
            **_ratios_attrs(hr_size, scale, extra_scales),
        },
    })


def _ratios_attrs(hr_size: tuple[int, int], scale: float, extra_scales: tuple[float, ...]) -> dict:
    """``store.scales`` and ``store.extra_lr`` of a store of several ratios; nothing for one."""
    if not extra_scales:
        return {}
    from datagen.store import ratios

    return {"scales": [float(scale), *(float(s) for s in extra_scales)],
            "extra_lr": ratios.extra_lr(hr_size, extra_scales)}


def _json_ready(value, what: str = "store attrs"):
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} must be plain JSON (str, int, float, bool, list, dict; no NaN): "
                         f"{exc}") from exc


def _check_args(splits: dict[str, int], frames: int, hr_size) -> None:
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise StoreError(f"unknown split(s) {', '.join(sorted(unknown))}; valid: {', '.join(SPLITS)}")
    bad = {k: v for k, v in splits.items() if not isinstance(v, int) or v < 0}
    if bad:
        raise StoreError(f"sequence counts must be integers >= 0; got {bad}")
    if not isinstance(frames, int) or frames < 1:
        raise StoreError(f"frames per sequence must be an integer >= 1; got {frames!r}")
    if len(hr_size) != 2 or min(hr_size) < 1:
        raise StoreError(f"hr_size must be (width, height) >= 1; got {hr_size!r}")


def create_store(path: str | os.PathLike | StorePath, config: dict, splits: dict[str, int], frames: int,
                 hr_size: tuple[int, int], scale: float, conventions: dict, overwrite: bool = False,
                 layout: Layout = schema.DEFAULT_LAYOUT, lr_size: tuple[int, int] | None = None,
                 extra_scales: tuple[float, ...] = ()) -> StorePath:
    """Create an empty store of ``splits`` ({"train": S, ...}; missing splits get 0
    sequences) with ``frames`` frames of HR ``hr_size`` (width, height) at ``scale``;
    LR ``lr_size``, by default HR / scale rounded (an aligned crop of a rounded frame
    gives another rounding: the builder passes it). ``extra_scales``: more LR ratios, each
    in a subgroup of every split (``datagen.store.ratios``).

    If a store with the same config, conventions and shape is already there it is
    kept as it is (a build resumes into it). A store made otherwise raises
    StoreError, unless ``overwrite``, which deletes it first. A path that holds
    something other than a Zarr store is never deleted. Creation is atomic: the
    store is built beside ``path`` and renamed into place; on an object store
    (``s3://``), which has no rename, see ``datagen.store.objects``.
    """
    _check_args(splits, frames, hr_size)
    path = location.parse(path)
    attrs = root_attrs(config, splits, frames, hr_size, scale, conventions, layout, lr_size, extra_scales)
    if location.is_remote(path):
        from datagen.store.objects import create_object_store

        return create_object_store(path, attrs, overwrite, lambda tmp: _build(tmp, attrs, layout))
    if path.exists():
        if _keep_existing(path, attrs, overwrite):
            return path
        with io_errors(path, "remove the old store", write=True):
            shutil.rmtree(path)
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
    with io_errors(path, "create the store", write=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _build(tmp, attrs, layout)
        except BaseException:  # a full disk mid-way: leave nothing behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            os.rename(tmp, path)
        except OSError:  # another process created it first: use theirs if it is the same
            shutil.rmtree(tmp, ignore_errors=True)
            if _keep_existing(path, attrs, overwrite=False):
                return path
            raise
    log.info("created store %s (%s)", path, attrs["store"]["splits"])
    return path


def _keep_existing(path: StorePath, attrs: dict, overwrite: bool) -> bool:
    """True to resume into the store at ``path`` (in its own layout); False to replace
    it; else raise."""
    if location.is_empty_dir(path):
        path.rmdir()
        return False
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path}: exists and is not a Zarr store; choose another --out "
                         "(datagen never deletes what it did not write)")
    if overwrite:
        return False
    _, old = open_root(path)
    # the layout (chunks, shards, codec) changes how the values are stored, not which: a
    # store made with another (an older default) is resumed in its own
    old = {**old, "store": {**old.get("store", {}), "layout": attrs["store"]["layout"]}}
    changed = [key for key in ("config", "conventions", "store") if old.get(key) != attrs[key]]
    if changed:
        raise StoreError(f"{path}: a store built with a different {' and '.join(changed)} is there; "
                         f"{_first_difference(old, attrs, changed[0])}. Choose another --out, or "
                         "pass --overwrite to delete it")
    return True


def _first_difference(old: dict, new: dict, key: str, prefix: str = "") -> str:
    a, b = old.get(key), new.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
        for sub in sorted(set(a) | set(b)):
            if a.get(sub) != b.get(sub):
                return _first_difference(a, b, sub, f"{prefix}{key}.")
    return f"{prefix}{key} is {json.dumps(a)} there, {json.dumps(b)} now"


def _build(tmp: Path, attrs: dict, layout: Layout) -> None:
    shape = attrs["store"]
    sizes = schema.dim_sizes(shape["frames"], tuple(shape["hr_size"]), tuple(shape["lr_size"]))
    root = zarr.open_group(tmp, mode="w", attributes=attrs)
    for split, count in shape["splits"].items():
        group = root.create_group(split, attributes={"sequences": count})
        for spec in ARRAYS.values():
            schema.create_array(group, spec, count, sizes, layout)
        if shape.get("extra_lr"):
            from datagen.store import ratios

            ratios.create_groups(group, count, shape["frames"], tuple(shape["hr_size"]), shape["extra_lr"],
                                 layout)
    # Metadata never changes after this point, so consolidating it is safe; it lets
    # xarray open a split without probing every array.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(tmp)


# -- writing one sequence -----------------------------------------------------------------------


def check_meta(meta: dict) -> str:
    """``meta`` as the JSON stored per sequence; it must name ``scene`` and ``seed``."""
    missing = [key for key in ("scene", "seed") if key not in meta]
    if missing:
        raise StoreError(f"sequence metadata lacks {missing}; pass at least the scene name and seed "
                         "(and the camera rig and augmentation applied)")
    if not isinstance(meta["scene"], str) or not isinstance(meta["seed"], int | np.integer):
        raise StoreError(f"sequence metadata: scene must be a str and seed an int; got "
                         f"{meta['scene']!r}, {meta['seed']!r}")
    return json.dumps(_json_ready(meta, "sequence metadata"), sort_keys=True)


class ShardBlocks:
    """Frames gathered into shard-sized blocks and written as whole shards: the
    per-frame arrays of ``frame_specs`` (default every one of the split) and the
    per-step ones of ``step_specs``, which are written when the sequence ends (an
    extra LR ratio's subgroup passes its own, ``ratios.RATIO_PIXELS``/``RATIO_STEPS``).

    The pixel blocks are written through tensorstore: its C++ zarr3 sharding
    writer costs about half the CPU of zarr-python's, whose per-chunk asyncio work
    is ~2/3 of a tiled write (measured: a 12-frame 640x360 sequence, 1.25 against
    0.5-0.75 CPU-seconds). That CPU is taken from rendering on a busy build
    worker. Everything else (flags, small per-frame arrays, metadata) stays with
    zarr-python, and every reader sees the same values either way.
    """

    def __init__(self, group: zarr.Group, split_path: StorePath, index: int, frames: int, block: int,
                 frame_specs: tuple[ArraySpec, ...] = FRAME_ARRAYS,
                 step_specs: tuple[ArraySpec, ...] = STEP_ARRAYS):
        self.index, self.frames, self.block = index, frames, block
        self.pixels = {spec.name: ts_result(ts_open(split_path / spec.name, open=True))
                       for spec in frame_specs}
        self.buffers = {spec.name: np.empty((min(block, frames), *self.pixels[spec.name].shape[2:]),
                                            spec.dtype) for spec in frame_specs}
        self.arrays = {spec.name: group[spec.name] for spec in step_specs}
        self.steps = {spec.name: np.empty(self.arrays[spec.name].shape[1:], spec.dtype)
                      for spec in step_specs}
        self.start = 0

    def add(self, t: int, frame: Frame) -> None:
        if t >= self.frames:
            raise StoreError(f"sequence {self.index}: more than the store's {self.frames} frames "
                             "per sequence; render as many frames as the store was made for")
        for name, buf in self.buffers.items():
            _put(buf, t - self.start, getattr(frame, name), name, t)
        for name, arr in self.steps.items():
            _put(arr, t, getattr(frame, name), name, t)
        if t + 1 - self.start == self.block:
            self.flush(t + 1)

    def flush(self, end: int) -> None:
        n = end - self.start
        if n <= 0:
            return
        # one array at a time: all in flight at once costs the same CPU but peaks
        # 1.0-1.6 GiB instead of ~0.8 GiB writing 1080p (measured, write_peak_rss)
        for name, buf in self.buffers.items():
            ts_result(self.pixels[name][self.index, self.start:end].write(buf[:n]))
        self.start = end

    def finish(self, count: int) -> None:
        if count != self.frames:
            raise StoreError(f"sequence {self.index}: got {count} frames, the store holds "
                             f"{self.frames} frames per sequence; the sequence stays not complete")
        self.flush(count)
        for name, arr in self.steps.items():
            self.arrays[name][self.index] = arr


def _put(dest: np.ndarray, t: int, value, name: str, frame: int) -> None:
    value = np.asarray(value)
    if value.shape != dest.shape[1:]:
        raise StoreError(f"frame {frame}: {name} has shape {value.shape}, the store expects "
                         f"{dest.shape[1:]}; render at the store's resolution and scale")
    dest[t] = value


MMAP_THRESHOLD = 4 << 20
"""allocations of this many bytes and more get their own mapping from glibc's malloc,
returned to the system when freed (``bound_malloc``)."""
MALLOC_ARENAS = 2
_malloc_bounded = False


def bound_malloc() -> bool:
    """Bound what glibc's malloc keeps of freed frame-sized buffers in this process (once;
    False where the C library is not glibc). By default glibc raises its mmap threshold
    to the size of each large block freed (up to 32 MiB), after which frame arrays come
    from the heaps and stay resident once freed, in one heap per thread for up to 8
    heaps per CPU the system reports: the peak of a 1080p write then depends on the
    machine and on thread timing (docs/benchmarks.md). A fixed threshold and two heaps
    make it the same everywhere."""
    global _malloc_bounded
    if _malloc_bounded:
        return True
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold, m_arena_max = -3, -8  # glibc's malloc.h
    _malloc_bounded = bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
        mallopt(m_arena_max, MALLOC_ARENAS))
    return _malloc_bounded


QUEUE_FRAMES = 2
"""frames the caller (the renderer) may run ahead of the writer thread: enough that
neither waits for the other, few enough to bound memory (a 1080p frame is ~52 MB)."""


class _WriterThread:
    """Takes frames from a bounded queue and adds them to ``blocks`` on its own thread:
    each item holds one Frame per ShardBlocks (the primary ratio's, then each extra
    ratio's).

    ``put`` blocks while the queue is full and raises the writer's error, if it had
    one, in the caller's thread; ``close`` waits for every queued frame to be written
    and raises it too. After an error (or ``abort``) the thread drops what is queued."""

    def __init__(self, blocks: list[ShardBlocks], write: Callable[[], contextlib.AbstractContextManager],
                 depth: int = QUEUE_FRAMES):
        self.blocks, self.write = blocks, write
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.error: BaseException | None = None
        self.stop = False
        self.thread = threading.Thread(target=self._run, name=f"datagen-writer-{blocks[0].index}",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None or self.stop:
                continue  # drain, so that a blocked ``put`` returns and sees the error
            t, frames = item
            try:
                with self.write():
                    for blocks, frame in zip(self.blocks, frames, strict=True):
                        blocks.add(t, frame)
            except BaseException as exc:  # handed to the caller's thread
                self.error = exc
            del item, frames

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, t: int, frames: list[Frame]) -> None:
        self._check()
        self.queue.put((t, frames))

    def close(self) -> None:
        """Wait until every queued frame is added; raise the writer's error, if any."""
        self.queue.put(None)
        self.thread.join()
        self._check()

    def abort(self) -> None:
        """Stop without writing what is queued (the caller failed)."""
        self.stop = True
        self.queue.put(None)
        self.thread.join()


def write_sequence(store_path: str | os.PathLike, split: str, index: int,
                   frames: Iterable[Frame | Sequence[Frame]], meta: dict) -> None:
    """Write sequence ``index`` of ``split`` from ``frames`` (consumed lazily, one
    at a time, while a writer thread compresses and writes the frames before them),
    then its metadata, then ``complete[index] = True``. In a store of several LR
    ratios each item of ``frames`` is one frame's Frame at every ratio, the primary
    first (``Renderer.render_ratios``); the extra ratios' LR arrays go to their
    subgroups (``datagen.store.ratios``).

    ``meta`` is JSON-ready and holds at least ``scene`` (str) and ``seed`` (int);
    add the camera rig and the augmentation applied. A failure at any point, in
    ``frames`` or on the writer thread (StoreError for disk full or read-only), is
    raised here and leaves the sequence not complete.
    """
    meta_json = check_meta(meta)
    bound_malloc()
    group, attrs = open_split(store_path, split, mode="r+")
    count = group["complete"].shape[0]
    if not 0 <= index < count:
        raise StoreError(f"{store_path}: split {split!r} has sequences 0..{count - 1}; got {index}")
    shape = attrs["store"]
    doing = f"write sequence {index} of {split}"
    with io_errors(store_path, doing, write=True):
        group["complete"][index] = False
        split_path = location.parse(store_path) / split
        blocks = [ShardBlocks(group, split_path, index, shape["frames"], shape["layout"]["frames_per_shard"])]
        if shape.get("extra_lr"):
            from datagen.store import ratios

            blocks += ratios.extra_blocks(group, split_path, index, shape)
    writer = _WriterThread(blocks, lambda: io_errors(store_path, doing, write=True))
    t = -1
    try:
        for t, frame in enumerate(frames):
            writer.put(t, _per_ratio(frame, t, len(blocks), attrs))
            del frame  # the queue holds the frames not yet written, no more
    except BaseException:
        writer.abort()
        raise
    writer.close()
    with io_errors(store_path, doing, write=True):
        for b in blocks:
            b.finish(t + 1)
        group["scene"][index] = meta["scene"]
        group["seed"][index] = int(meta["seed"])
        group["meta"][index] = meta_json
        group["complete"][index] = True
    log.debug("wrote sequence %d of %s to %s", index, split, store_path)


def _per_ratio(frame: Frame | Sequence[Frame], t: int, ratios: int, attrs: dict) -> list[Frame]:
    """Frame ``t`` as one Frame per ratio of the store; StoreError if the count differs."""
    frames = [frame] if isinstance(frame, Frame) else list(frame)
    if len(frames) != ratios:
        from datagen.store.ratios import scales_of

        raise StoreError(f"frame {t}: {len(frames)} ratio(s) rendered, the store holds {ratios} "
                         f"({', '.join(f'{s:g}' for s in scales_of(attrs))}); pass one Frame per ratio, "
                         "the primary first (Renderer.render_ratios)")
    return frames
