"""Reading a store: a small numpy API for training code and the store commands.

    store = open_store("storage/racing")
    for seq in store.sequences("train"):
        window = store.read_window("train", seq.index, start=0, length=8)
        crop = store.read_crop("train", seq.index, 0, 8, y_hr=128, x_hr=256, size_hr=256)

Every read returns a dict of numpy arrays named as in ``datagen.store.schema``,
each with a leading frame axis. The store's schema version is checked on open.

Two read engines give the same values: ``zarr`` (zarr-python, the default, safe
in forked processes) and ``tensorstore`` (about 4x faster on tiled crops, since
it decodes a read's chunks in parallel in C++). Tensorstore runs threads of its
own and aborts ("fork() use detected") in a process forked from one that had
used it, even through new handles: ``tensorstore_usable()`` says whether this
process may use it. Metadata is always read with zarr-python.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import zarr

from datagen import conventions as cv
from datagen.errors import BadDataError, DatagenError, StoreError, one_line
from datagen.frame import Frame
from datagen.store import location, ratios, schema
from datagen.store.io import io_errors, open_split, ts_open
from datagen.store.schema import ARRAYS, PER_FRAME, STEP_NAMES

ENGINES = ("zarr", "tensorstore")
_tensorstore_pid: int | None = None
"""The process that has read with tensorstore; a process forked from it inherits the value."""


def tensorstore_usable() -> bool:
    """False in a process forked from one that had read with tensorstore (it would abort)."""
    return _tensorstore_pid in (None, os.getpid())


@dataclass(frozen=True)
class SequenceInfo:
    """One sequence of a split and its metadata."""

    split: str
    index: int
    complete: bool
    """False while unwritten or after an interrupted write: do not train on it."""
    scene: str
    """scene recipe name ("" if not written)."""
    seed: int
    meta: dict
    """everything the builder recorded: scene, seed, camera rig, augmentation, ..."""


class Store:
    """An open store. Shapes are per sequence; sizes are (width, height)."""

    def __init__(self, path: str | os.PathLike, engine: str = "zarr", scale: float | None = None):
        if engine not in ENGINES:
            raise StoreError(f"unknown read engine {engine!r}; valid: {', '.join(ENGINES)}")
        self.path = location.parse(path)
        """a pathlib.Path, or a location.ObjectPath for an s3:// store."""
        self.engine = engine
        self._ts: dict[tuple[str, str], object] = {}
        self._groups: dict[str, zarr.Group] = {}
        self._arrays: dict[tuple[str, str], zarr.Array] = {}
        first, self.attrs = open_split(self.path, schema.SPLITS[0])
        self._groups[schema.SPLITS[0]] = first
        shape = self.attrs["store"]
        self.config: dict = self.attrs["config"]
        self.conventions: dict = self.attrs["conventions"]
        self.frames: int = shape["frames"]
        """frames per sequence (T)."""
        self.hr_size: tuple[int, int] = tuple(shape["hr_size"])
        self.lr_size: tuple[int, int] = tuple(shape["lr_size"])
        self.scale: float = shape["scale"]
        """the nominal scale (1.3 ... 4): LR = HR / scale rounded to whole pixels."""
        self.ratio: tuple[float, float] = cv.ratio_of(self.hr_size, self.lr_size)
        """the exact per-axis ratio (HR / LR width, HR / LR height) every LR <-> HR
        mapping uses."""
        self.layout = schema.Layout(**shape["layout"])
        self.scales: tuple[float, ...] = ratios.scales_of(self.attrs)
        """every LR ratio the store holds, the primary (``scale`` of a store opened without
        ``scale=``) first (docs/store.md)."""
        self._ratio_group: str | None = None
        """the subgroup of the extra ratio read, or None for the primary one."""
        if scale is not None:
            entry = ratios.find(self.attrs, scale)
            if entry is not None:
                self._ratio_group = entry["group"]
                self.scale, self.lr_size = float(entry["scale"]), tuple(entry["lr_size"])
                self.ratio = cv.ratio_of(self.hr_size, self.lr_size)
                self.conventions = {**self.conventions, "scale": self.scale, "ratio": list(self.ratio),
                                    "jitter_phase_count": entry["jitter_phase_count"],
                                    "mip_bias_lr": entry["mip_bias_lr"]}
        self.sizes = schema.dim_sizes(self.frames, self.hr_size, self.lr_size)

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={self.sequence_count(s)}" for s in self.splits)
        return (f"Store({str(self.path)!r}, {counts}, frames={self.frames}, "
                f"hr={self.hr_size[0]}x{self.hr_size[1]}, scale={self.scale:g})")

    # -- structure --------------------------------------------------------------------------

    @property
    def splits(self) -> tuple[str, ...]:
        """Every split of the store, some possibly with 0 sequences."""
        return tuple(self.attrs["store"]["splits"])

    def group(self, split: str) -> zarr.Group:
        if split not in self._groups:
            if split not in self.splits:
                raise StoreError(f"{self.path}: no split {split!r}; valid: {', '.join(self.splits)}")
            self._groups[split], _ = open_split(self.path, split)
        return self._groups[split]

    def array(self, split: str, name: str) -> zarr.Array:
        """The zarr array ``name`` of ``split``: (sequence, ...) per ``schema.ARRAYS``."""
        key = (split, name)
        if key not in self._arrays:
            if name not in ARRAYS:
                raise StoreError(f"unknown array {name!r}; valid: {', '.join(ARRAYS)}")
            with io_errors(self.path, f"open {split}/{name}"):
                group = self.group(split)
                if self._ratio_group and name in ratios.RATIO_NAMES:
                    group = group[self._ratio_group]
                self._arrays[key] = group[name]
        return self._arrays[key]

    def array_path(self, split: str, name: str):
        """Where array ``name`` of ``split`` lies, at the ratio read."""
        if self._ratio_group and name in ratios.RATIO_NAMES:
            return self.path / split / self._ratio_group / name
        return self.path / split / name

    def _read(self, split: str, selections: dict[str, tuple]) -> dict[str, np.ndarray]:
        """{name: array[name][selection]}, every read in flight at once with tensorstore.
        A chunk that does not decode (a truncated or damaged shard) is a BadDataError
        naming the array, sequence and frames."""
        if self.engine == "zarr":
            out = {}
            for name, sel in selections.items():
                with io_errors(self.path, f"read {split}"), self._damaged(split, name, sel):
                    out[name] = self.array(split, name)[sel]
            return out
        futures = {name: self._ts_array(split, name)[sel].read() for name, sel in selections.items()}
        out = {}
        for name, future in futures.items():
            with self._damaged(split, name, selections[name]):
                out[name] = future.result()
        return out

    @contextlib.contextmanager
    def _damaged(self, split: str, name: str, selection: tuple) -> Iterator[None]:
        """Decode errors of one read (any engine) as one BadDataError line."""
        try:
            yield
        except DatagenError:
            raise
        except (ValueError, RuntimeError, TypeError, KeyError) as exc:
            reason = location.explain(self.path, exc) if location.is_remote(self.path) else None
            if reason:  # the object store failed (unreachable, denied), not the data
                raise StoreError(f"{self.path}: cannot read {split}: {reason}") from exc
            seq, frames = selection[0], selection[1] if len(selection) > 1 else slice(0, self.frames)
            last = min(frames.stop, self.frames) - 1
            error = BadDataError(f"{self.path}: {split} sequence {seq} frames {frames.start}-{last}: "
                                 f"{name} cannot be read ({one_line(exc, 160)}); the store is damaged: "
                                 "run `datagen validate` on it and build the sequence again")
            error.cause = one_line(exc)  # the decoder's own words, for validate's ``readable`` line
            raise error from None

    def _ts_array(self, split: str, name: str):
        global _tensorstore_pid
        key = (split, name)
        if key not in self._ts:
            self.array(split, name)  # check the name
            _tensorstore_pid = os.getpid()
            self._ts[key] = ts_open(self.array_path(split, name), read=True).result()
        return self._ts[key]

    def sequence_count(self, split: str) -> int:
        return self.array(split, "complete").shape[0]

    def sequences(self, split: str, complete_only: bool = False) -> list[SequenceInfo]:
        """Every sequence of ``split`` with its metadata, in index order."""
        with io_errors(self.path, f"read the sequence metadata of {split}"):
            complete = self.array(split, "complete")[:]
            scenes = self.array(split, "scene")[:]
            seeds = self.array(split, "seed")[:]
            metas = self.array(split, "meta")[:]
        out = [SequenceInfo(split, i, bool(complete[i]), str(scenes[i]), int(seeds[i]),
                            json.loads(metas[i]) if metas[i] else {}) for i in range(len(complete))]
        return [s for s in out if s.complete] if complete_only else out

    @property
    def scenes(self) -> list[str]:
        """Scene names of the written sequences across all splits, sorted."""
        return sorted({s.scene for split in self.splits for s in self.sequences(split) if s.scene})

    # -- reads ------------------------------------------------------------------------------

    def _check_window(self, split: str, seq: int, start: int, length: int) -> None:
        count = self.sequence_count(split)
        if not 0 <= seq < count:
            raise StoreError(f"{self.path}: split {split!r} has sequences 0..{count - 1}; got {seq}")
        if length < 1 or start < 0 or start + length > self.frames:
            raise StoreError(f"frames {start}..{start + length - 1} are outside the sequence's "
                             f"frames 0..{self.frames - 1}")

    def _names(self, arrays: Sequence[str] | None) -> tuple[str, ...]:
        if arrays is None:
            return PER_FRAME
        bad = [a for a in arrays if a not in PER_FRAME]
        if bad:
            raise StoreError(f"cannot read {bad} per frame; valid: {', '.join(PER_FRAME)}")
        return tuple(arrays)

    def read_window(self, split: str, seq: int, start: int = 0, length: int | None = None,
                    arrays: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Frames ``start .. start+length-1`` of sequence ``seq``: {name: (length, ...)}
        for ``arrays`` (default: every per-frame array, i.e. every ``Frame`` field)."""
        length = self.frames - start if length is None else length
        self._check_window(split, seq, start, length)
        frames = slice(start, start + length)
        return self._read(split, {name: (seq, frames) for name in self._names(arrays)})

    def read_crop(self, split: str, seq: int, start: int, length: int, y_hr: int, x_hr: int,
                  size_hr: int | tuple[int, int], arrays: Sequence[str] | None = None,
                  lr_box: tuple[int, int, int, int] | None = None) -> dict[str, np.ndarray]:
        """A crop over ``length`` frames: HR rows ``y_hr .. y_hr+height`` and columns
        ``x_hr .. x_hr+width`` (``size_hr`` = side or (height, width)), and LR rows and
        columns ``lr_box`` = (y, x, height, width).

        Without ``lr_box``, the LR crop covers exactly the same area, at ``y_hr /
        ratio_y`` etc., so every HR coordinate and size must lie on the grids' common
        step (``crop_step``: 2 at scale 2 of even sizes, 3 at an exact 1.5; none
        smaller than the frame where the LR size was rounded). With ``lr_box`` the two
        crops are independent (``datagen.train.data`` passes the offset between them
        to the model). Per-frame scalars and matrices come whole.
        """
        height, width = (size_hr, size_hr) if isinstance(size_hr, int) else size_hr
        self._check_window(split, seq, start, length)
        hr = (y_hr, x_hr, height, width)
        _check_box("HR", hr, self.hr_size)
        lr = tuple(self._to_lr(v, axis) for v, axis in zip(hr, (1, 0, 1, 0), strict=True)) \
            if lr_box is None else tuple(lr_box)
        _check_box("LR", lr, self.lr_size)
        frames = slice(start, start + length)
        selections = {}
        for name in self._names(arrays):
            y, x, h, w = hr if name.endswith("_hr") else lr
            selections[name] = ((seq, frames) if name in STEP_NAMES
                                else (seq, frames, slice(y, y + h), slice(x, x + w)))
        return self._read(split, selections)

    def _to_lr(self, v: int, axis: int) -> int:
        """HR coordinate ``v`` along ``axis`` (0 x, 1 y) as a whole LR coordinate."""
        hr_step, lr_step = cv.grid_step(self.hr_size[axis], self.lr_size[axis])
        if v % hr_step:
            raise StoreError(f"HR coordinate {v} is not aligned: the HR and LR grids "
                             f"({self.hr_size[axis]} and {self.lr_size[axis]} pixels along "
                             f"{'yx'[1 - axis]}) meet every {hr_step} HR pixels; use multiples of "
                             f"{self.crop_step}, or give lr_box")
        return v // hr_step * lr_step

    @property
    def crop_step(self) -> int:
        """The smallest HR step on which the HR and LR grids line up along both axes
        (``conventions.grid_step``): 2 at scale 2 of even sizes, 3 at an exact 1.5."""
        steps = [cv.grid_step(self.hr_size[a], self.lr_size[a])[0] for a in (0, 1)]
        return math.lcm(*steps)

    def iter_frames(self, split: str, seq: int, block: int | None = None) -> Iterator[Frame]:
        """The frames of sequence ``seq`` as ``Frame`` records, read ``block`` frames
        (default: one shard) at a time, so memory stays bounded."""
        block = block or self.layout.frames_per_shard
        for start in range(0, self.frames, block):
            data = self.read_window(split, seq, start, min(block, self.frames - start))
            for t in range(len(data["color_lr"])):
                fields = {name: data[name][t] for name in PER_FRAME}
                yield Frame(**{**fields, "exposure": float(fields["exposure"]),
                               "camera_cut": bool(fields["camera_cut"]), "time_s": float(fields["time_s"])})

    # -- summary ----------------------------------------------------------------------------

    def sequence_nbytes(self) -> int:
        """Uncompressed bytes of one sequence (every numeric array, every ratio's)."""
        shape = self.attrs["store"]

        def nbytes(specs, lr_size) -> int:
            sizes = schema.dim_sizes(self.frames, self.hr_size, tuple(lr_size))
            return sum(int(np.prod(spec.shape(sizes))) * np.dtype(spec.dtype).itemsize
                       for spec in specs if spec.dtype != "str")

        return nbytes(ARRAYS.values(), shape["lr_size"]) + sum(
            nbytes(ratios.RATIO_ARRAYS, entry["lr_size"]) for entry in shape.get("extra_lr", []))

    def disk_bytes(self) -> int:
        """Bytes of every file under the store."""
        with io_errors(self.path, "list the store"):
            return location.file_sizes(self.path)

    def summary(self) -> dict:
        """What ``datagen info`` prints, as JSON-ready numbers: splits, scenes,
        sequences, frames, shapes, bytes on disk, compression ratio.

        ``logical_bytes`` counts complete sequences only; ``compression_ratio`` is
        logical bytes / bytes on disk (so a half-built store shows a lower ratio).
        """
        splits, complete_total, total = {}, 0, 0
        scenes: dict[str, int] = {}
        for split in self.splits:
            seqs = self.sequences(split)
            done = [s for s in seqs if s.complete]
            per_scene: dict[str, int] = {}
            for s in done:
                per_scene[s.scene] = per_scene.get(s.scene, 0) + 1
                scenes[s.scene] = scenes.get(s.scene, 0) + 1
            splits[split] = {"sequences": len(seqs), "complete": len(done),
                             "frames": len(done) * self.frames, "scenes": per_scene}
            complete_total += len(done)
            total += len(seqs)
        logical = complete_total * self.sequence_nbytes()
        disk = self.disk_bytes()
        return {
            "path": str(self.path),
            "schema_version": self.attrs["schema_version"],
            "datagen_version": self.attrs["datagen_version"],
            "splits": splits,
            "scenes": dict(sorted(scenes.items())),
            "sequences": total,
            "complete_sequences": complete_total,
            "frames_per_sequence": self.frames,
            "frames": complete_total * self.frames,
            "hr_size": list(self.hr_size),
            "lr_size": list(self.lr_size),
            "scale": self.scale,
            "scales": list(self.scales),
            "extra_lr": self.attrs["store"].get("extra_lr", []),
            "ratio": list(self.ratio),
            "spp": self.conventions.get("spp"),
            "arrays": {spec.name: {"shape": list(spec.shape(self.sizes)), "dtype": spec.dtype,
                                   "dims": list(spec.dimension_names)} for spec in ARRAYS.values()},
            "layout": self.layout.to_json(),
            "logical_bytes": logical,
            "disk_bytes": disk,
            "compression_ratio": logical / disk if disk else None,
        }


def _check_box(what: str, box: tuple[int, int, int, int], size: tuple[int, int]) -> None:
    y, x, h, w = box
    if y < 0 or x < 0 or y + h > size[1] or x + w > size[0] or min(h, w) < 1:
        raise StoreError(f"crop rows {y}..{y + h}, columns {x}..{x + w} is outside the {what} frame "
                         f"{size[0]}x{size[1]}")


def open_store(path: str | os.PathLike, engine: str = "zarr", scale: float | None = None) -> Store:
    """Open a store for reading; StoreError if it is not one, SchemaVersionError
    (a StoreError) if it was written with another schema version. ``engine``:
    ``zarr`` or ``tensorstore`` (module docstring). ``scale``: which of the store's LR
    ratios (``Store.scales``) every LR array and ``jitter_px`` come from (default the
    primary one); StoreError if the store has no LR at that scale."""
    return Store(path, engine, scale)

