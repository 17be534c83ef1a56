"""A PyTorch Dataset over one split of a store: windows of K consecutive frames
with an aligned random crop.

    from torch.utils.data import DataLoader
    from datagen.train.data import WindowDataset

    ds = WindowDataset("storage/racing.zarr", "train", window=8, crop_hr=128, augment=True)
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=4, pin_memory=True)
    for batch in loader:
        batch["color_lr"]  # (B, K, 3, h, w) float32, h ~ crop_hr / ratio_y

Item i is window ``ds.windows[i]`` = (sequence, first frame) over the complete
sequences of the split, every start 0 .. T - K. Each item is a dict of float32
tensors (bool for ``camera_cut``), K = window, h, w = LR crop, H, W = HR crop:

    color_lr (K, 3, h, w)  depth_lr (K, 1, h, w)  motion_lr (K, 2, h, w)
    jitter   (K, 2)        color_hr (K, 3, H, W)  motion_hr (K, 2, H, W)
    exposure (K,)          camera_cut (K,)        lr_offset (2,)

Colour is linear HDR, depth in metres with +inf for sky, motion p_prev - p_cur in
pixels of its own buffer, jitter in LR pixels (SPEC §4). The crop origin (and the
optional flips) are drawn from ``seed``, the epoch (``set_epoch``) and the item
index, so a run's data is reproducible whatever the worker count.

``keys=`` picks what an item holds, from every per-frame array of the store (the
rest of the G-buffer: ``normal_lr`` (K, 3, h, w), ``albedo_lr`` (K, 3, h, w),
``material_lr`` (K, 2, h, w) roughness and metallic, ``object_id_lr`` (K, 1, h, w)
int64, ``depth_hr`` (K, 1, H, W); and ``view``, ``proj`` (K, 4, 4), ``time_s`` (K,)
float64); the jitter is ``jitter``. ``scale=`` picks which LR ratio of a store of
several (``build --scale 2,1.5,1.7``) the LR arrays and jitter come from; the HR
arrays are the same for all. ``proj`` is the one that projects onto the
item's HR pixels: the crop and flips are folded into it (as the build's augmentation
does), while ``view`` and world-space normals stay as stored.

Crops keep the store's exact HR / LR ratio ``ds.ratio`` (per axis; not the nominal
scale where the LR size was rounded). Where the crop size is a multiple of the step
on which the two grids line up (``conventions.grid_step``: 2 HR pixels at scale 2 of
even sizes), the LR crop covers exactly the HR crop and ``lr_offset`` is 0. Else
(1.7x of 1080p lines up only over the whole width) the LR crop is ceil(crop / ratio)
+ 1 pixels, starts on a whole LR pixel, and the HR crop starts at the first HR pixel
inside it: ``lr_offset`` (x, y) is where the HR crop's top-left corner lies in the LR
crop, in LR pixels, in [0, 1). The model then takes ``jitter - lr_offset``
(``model_jitter``): the LR sample positions relative to the HR crop's grid.

The store is opened lazily in each process that reads (each DataLoader worker),
never pickled, and opened again in a process forked from one that had it open.
The tensorstore engine cannot be used in a process forked from one that had read
with it (tensorstore aborts); such a worker reads with zarr-python instead (the
same values; logged once). Works with a DistributedSampler (it only needs ``len``
and indices).

Flips (``augment=True``): horizontal and vertical, each with probability 1/2; a
flip about x negates motion x and jitter x (pixel x -> W - 1 - x maps the sample
at x + 0.5 + jx to (W - 1 - x) + 0.5 - jx), likewise for y, and ``lr_offset`` x
moves to w - W / ratio_x - lr_offset x (the HR crop's other edge); every other image
is mirrored, with its values as they are.

Bad data: every window is checked before it is yielded (``window_problem``): NaN
anywhere, or an infinity anywhere but +inf in depth (the sky), makes it bad, as
does a chunk that does not decode. A bad window is a ``BadDataError`` naming the
store, split, sequence and frame, unless ``skip_bad``: then it is replaced by the
next good window (i + 1, i + 2, ...), a warning names it, and the item's extra
``skipped`` (only with ``skip_bad``) counts the windows passed over, so that the
trainer reports them.
(NaN motion must never reach ``grid_sample``: on the CPU it can crash the process.)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from datagen import conventions as cv
from datagen.errors import BadDataError, ConfigError, StoreError
from datagen.store.reader import Store, open_store, tensorstore_usable
from datagen.store.schema import FRAME_NAMES, PER_FRAME

log = logging.getLogger(__name__)

KEYS: tuple[str, ...] = tuple("jitter" if name == "jitter_px" else name for name in PER_FRAME)
"""every key an item may hold: the store's per-frame arrays (``jitter_px`` as ``jitter``)."""
DEFAULT_KEYS = ("color_lr", "depth_lr", "motion_lr", "jitter", "color_hr", "motion_hr", "exposure",
                "camera_cut")
"""what an item holds unless ``keys=`` says otherwise: what the model and trainer use."""
ITEM_ARRAYS = tuple("jitter_px" if key == "jitter" else key for key in DEFAULT_KEYS)
"""the store arrays a default item reads."""


def store_arrays(keys: Sequence[str]) -> tuple[str, ...]:
    """The store arrays behind item ``keys``."""
    return tuple("jitter_px" if key == "jitter" else key for key in keys)


class WindowDataset(Dataset):
    """Windows of ``window`` frames of the complete sequences of ``split`` (module docstring)."""

    def __init__(self, store_path: str | os.PathLike, split: str = "train", window: int = 8,
                 crop_hr: int | tuple[int, int] | None = 128, augment: bool = False, seed: int = 0,
                 engine: str = "zarr", keys: Sequence[str] = DEFAULT_KEYS, skip_bad: bool = False,
                 scale: float | None = None):
        self.store_path, self.split, self.window = str(store_path), split, window
        self.augment, self.seed, self.engine, self.epoch = augment, seed, engine, 0
        self.skip_bad = skip_bad
        """replace a bad window by the next good one (counted in ``skipped``) instead of raising."""
        bad = [k for k in keys if k not in KEYS]
        if bad or not keys:
            raise ConfigError(f"WindowDataset keys {bad or list(keys)} are not per-frame arrays of a store; "
                              f"valid: {', '.join(KEYS)}")
        self.keys = tuple(dict.fromkeys(keys))
        store = open_store(store_path, engine="zarr", scale=scale)
        self.scale = store.scale
        """the LR ratio read: ``scale=`` (one of the store's ``scales``), default the primary one."""
        self.ratio: tuple[float, float] = store.ratio
        """(rx, ry): the store's exact HR / LR ratio per axis."""
        self.hr_size = (store.hr_size[1], store.hr_size[0])
        """(H, W) of the stored frames."""
        self.lr_size = (store.lr_size[1], store.lr_size[0])
        """(h, w) of the stored frames."""
        if split not in store.splits:
            raise StoreError(f"{store_path}: no split {split!r}; valid: {', '.join(store.splits)}")
        self.sequences = store.sequences(split, complete_only=True)
        if not self.sequences:
            raise StoreError(f"{store_path}: split {split!r} has no complete sequence; build some "
                             "sequences into it or choose another split")
        if not 1 <= window <= store.frames:
            raise ConfigError(f"window {window} frames does not fit the store's {store.frames} frames "
                              f"per sequence; use --window 1..{store.frames}")
        self.crop = self._check_crop(crop_hr)
        self.windows = [(s.index, t) for s in self.sequences for t in range(store.frames - window + 1)]
        self._store: Store | None = None
        self._store_pid: int | None = None

    def _check_crop(self, crop_hr) -> tuple[int, int]:
        H, W = self.hr_size
        if crop_hr is None:
            return H, W
        ch, cw = (crop_hr, crop_hr) if isinstance(crop_hr, int) else tuple(crop_hr)
        if ch > H or cw > W:
            raise ConfigError(f"crop {cw}x{ch} is larger than the store's HR frames {W}x{H}; "
                              f"use --crop <= {min(H, W)}")
        if ch < 1 or cw < 1:
            raise ConfigError(f"crop {cw}x{ch} must be positive")
        return ch, cw

    @property
    def store(self) -> Store:
        """This process's open store (opened on first use, e.g. inside a worker, and again
        after a fork: handles do not cross processes)."""
        if self._store is None or self._store_pid != os.getpid():
            engine = self.engine
            if engine == "tensorstore" and not tensorstore_usable():
                log.warning("process %d was forked from one that had read with tensorstore, which "
                            "would abort here; reading with zarr-python (same values, slower). Read "
                            "only in DataLoader workers, or give the DataLoader "
                            "multiprocessing_context='forkserver'", os.getpid())
                engine = "zarr"
            self._store = open_store(self.store_path, engine=engine, scale=self.scale)
            self._store_pid = os.getpid()
        return self._store

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None, "_store_pid": None}

    def set_epoch(self, epoch: int) -> None:
        """Crops and flips depend on the epoch; call before iterating (as with a DistributedSampler)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """Window ``i`` with the crops and flips of ``self.epoch``, or of ``epoch`` where
        ``i`` is (epoch, i) (as ``EpochSampler`` gives them, to a loader's workers)."""
        epoch, i = i if isinstance(i, tuple) else (self.epoch, i)
        for skipped in range(len(self.windows)):
            j = (i + skipped) % len(self.windows)
            try:
                item = self._read(j, epoch)
            except BadDataError as exc:
                if not self.skip_bad:
                    raise BadDataError(f"{exc} (or pass --skip-bad-windows to train on the other "
                                       "windows)") from None
                log.warning("skipped a bad window: %s", exc)
                continue
            if self.skip_bad:
                item["skipped"] = torch.tensor(skipped)
            return item
        raise BadDataError(f"{self.store_path}: every window of split {self.split!r} is bad; run "
                           "`datagen validate` on the store and build it again")

    def _read(self, i: int, epoch: int) -> dict[str, torch.Tensor]:
        """Window i, cropped and flipped as (seed, epoch, i) draw; BadDataError if it is bad."""
        seq, start = self.windows[i]
        rng = np.random.default_rng([self.seed, epoch, i])
        (y, y_lr, h, off_y), (x, x_lr, w, off_x) = (
            crop_window(rng, self.hr_size[a], self.lr_size[a], self.crop[a]) for a in (0, 1))
        flip_x, flip_y = (rng.random(2) < 0.5) if self.augment else (False, False)
        arrays = store_arrays(self.keys)
        data = self.store.read_crop(self.split, seq, start, self.window, y, x, self.crop, arrays,
                                    lr_box=(y_lr, x_lr, h, w))
        check_window(data, f"{self.store_path}: {self.split} sequence {seq}", start)
        if "proj" in data:  # project onto the crop's pixels, as the build's crop augmentation does
            (H, W), (ch, cw) = self.hr_size, self.crop
            data["proj"] = cv.crop_flip_ndc((W, H), (x, y, cw, ch)) @ data["proj"].astype(np.float64)
        item = to_tensors(data, self.keys)
        item["lr_offset"] = torch.tensor([off_x, off_y], dtype=torch.float32)
        slack = (w - self.crop[1] / self.ratio[0], h - self.crop[0] / self.ratio[1])
        return flip(item, bool(flip_x), bool(flip_y), slack)


class EpochSampler(Sampler):
    """Items (epoch, window) for ``batch``-sized batches of every epoch from batch
    ``start`` on, forever, for one DataLoader whose workers then live across epochs
    (a loader per epoch restarts its workers, and the first batch of every epoch
    waits for them): epoch e is the DistributedSampler order of (``seed``, e) for
    ``rank`` of ``world``, its last partial batch dropped. A run resumed at batch
    ``start`` gets the batches it would have had."""

    def __init__(self, ds: Dataset, batch: int, seed: int = 0, start: int = 0, rank: int = 0,
                 world: int = 1):
        self.sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.batch, self.start = batch, start
        self.per_epoch = len(self.sampler) // batch
        """whole batches in an epoch."""
        if self.per_epoch == 0:
            raise ConfigError(f"batch {batch} is larger than the {len(self.sampler)} windows of the "
                              f"split; use --batch <= {len(self.sampler)} or a store with more "
                              "sequences/frames")

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = divmod(self.start, self.per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            for i in list(self.sampler)[skip * self.batch:self.per_epoch * self.batch]:
                yield epoch, i
            epoch, skip = epoch + 1, 0


def crop_window(rng: np.random.Generator, n_hr: int, n_lr: int, crop: int) -> tuple[int, int, int, float]:
    """One axis of a crop of ``crop`` HR pixels from a frame of ``n_hr`` HR and ``n_lr`` LR
    pixels: (HR origin, LR origin, LR size, offset of the HR origin in LR pixels), drawn
    from ``rng`` (module docstring)."""
    hr_step, lr_step = cv.grid_step(n_hr, n_lr)
    if crop % hr_step == 0:  # the grids line up: the LR crop covers exactly the HR crop
        k = int(rng.integers(0, (n_hr - crop) // hr_step + 1))
        return k * hr_step, k * lr_step, crop // hr_step * lr_step, 0.0
    ratio = n_hr / n_lr
    size_lr = min(n_lr, math.ceil(crop / ratio) + 1)
    x_lr = int(rng.integers(0, n_lr - size_lr + 1))
    x_hr = min(math.ceil(x_lr * ratio - 1e-9), n_hr - crop)
    return x_hr, x_lr, size_lr, x_hr / ratio - x_lr


def model_jitter(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(..., K, 2): the jitter the model takes for a batch or item: ``jitter - lr_offset``
    (the LR sample positions relative to the HR crop's grid)."""
    offset = batch.get("lr_offset")
    return batch["jitter"] if offset is None else batch["jitter"] - offset[..., None, :]


def window_problem(data: dict[str, np.ndarray]) -> tuple[int, str] | None:
    """(first bad frame of the window, what is wrong) or None: NaN in any float array, or
    an infinity anywhere but +inf in ``depth_*`` (the sky). Arrays are (K, ...)."""
    for name, values in data.items():
        if values.dtype.kind != "f":
            continue
        with np.errstate(invalid="ignore"):
            bad = np.isnan(values) | (np.isneginf(values) if name.startswith("depth_") else np.isinf(values))
        if bad.any():
            per_frame = bad.reshape(len(bad), -1).sum(1)
            k = int(np.argmax(per_frame > 0))
            found = values[k][bad[k]]
            kinds = " and ".join(kind for kind, hit in (("NaN", np.isnan(found).any()),
                                                        ("inf", np.isinf(found).any())) if hit)
            sky = " (only +inf, the sky, is allowed in depth)" if name.startswith("depth_") else ""
            return k, f"{name} has {int(per_frame[k])} {kinds} value(s){sky}"
    return None


def check_window(data: dict[str, np.ndarray], where: str, start: int) -> None:
    """BadDataError naming ``where`` ("STORE: SPLIT sequence I") and the frame if ``data``
    (a window read from frame ``start``) holds values no training should see."""
    problem = window_problem(data)
    if problem is not None:
        k, what = problem
        raise BadDataError(f"{where} frame {start + k}: {what}; the store is damaged or was never fully "
                           "written: run `datagen validate` on it and build the sequence again")


def to_tensors(data: dict[str, np.ndarray], keys: Sequence[str] = DEFAULT_KEYS) -> dict[str, torch.Tensor]:
    """Store arrays (K, y, x, C) / (K, y, x) / (K, ...) -> item tensors named by ``keys``:
    images (K, C, y, x) float32 (object ids int64), jitter, matrices and exposure float32,
    camera_cut bool, time_s float64."""
    def image(a: np.ndarray, dtype=np.float32) -> torch.Tensor:
        a = a[..., None] if a.ndim == 3 else a
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=dtype))

    out = {}
    for key, name in zip(keys, store_arrays(keys), strict=True):
        a = data[name]
        if name in FRAME_NAMES:
            out[key] = image(a, np.int64 if name == "object_id_lr" else np.float32)
        else:
            dtype = {"camera_cut": bool, "time_s": np.float64}.get(name, np.float32)
            out[key] = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))
    return out


def flip(item: dict[str, torch.Tensor], flip_x: bool, flip_y: bool,
         slack: tuple[float, float] = (0.0, 0.0)) -> dict[str, torch.Tensor]:
    """Mirror an item about x and/or y: every image, negating motion and jitter along the
    flipped axis, ``proj`` mirrored in NDC, and ``lr_offset`` moved to the HR crop's other
    edge (``slack`` - offset, ``slack`` the LR crop's size less the HR crop's / ratio, per
    axis x, y); normals (world space), ``view`` and the per-frame scalars stay as they are."""
    out = dict(item)
    for axis, on in ((0, flip_x), (1, flip_y)):
        if not on:
            continue
        dim = -1 if axis == 0 else -2
        sign = torch.ones(2)
        sign[axis] = -1
        for name in [name for name in out if name in FRAME_NAMES]:
            out[name] = out[name].flip(dim)
            if name.startswith("motion_"):
                out[name] = out[name] * sign[:, None, None]
        if "jitter" in out:
            out["jitter"] = out["jitter"] * sign
        if "lr_offset" in out:
            offset = out["lr_offset"].clone()
            offset[axis] = slack[axis] - offset[axis]
            out["lr_offset"] = offset
        if "proj" in out:
            mirror = torch.ones(4)
            mirror[axis] = -1
            out["proj"] = mirror[:, None] * out["proj"]  # diag(mirror) @ proj: NDC x (or y) negated
    return out
