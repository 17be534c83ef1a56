"""Several LR ratios beside one HR reference (``build --scale 2,1.5,1.7``).

The first ratio (the primary, ``store.scale``) is stored exactly as in a
single-ratio store. Each extra ratio R has a subgroup ``SPLIT/lr_xR`` (``lr_x1.5``,
``lr_x1.7``) holding that ratio's LR arrays (``RATIO_ARRAYS``: the ``*_lr`` pixel
arrays and ``jitter_px``) with the same names, dims, dtypes and layout as the
split's own, at that ratio's LR size; everything else (HR arrays, matrices,
exposure, cut flags, times, sequence metadata and ``complete``) is shared with the
split. The root attrs list the ratios (``store.scales``, ``store.extra_lr``) and
each subgroup's attrs describe its own (scale, lr_size, ratio, jitter phases, mip
bias). ``open_store(path, scale=R)`` reads a store at ratio R.

A sequence's extra ratios are written with the sequence, by its writer thread
(``writer.write_sequence`` given each frame's Frames at every ratio, ``extra_blocks``),
before its ``complete`` flag is set.
"""

from __future__ import annotations

from collections.abc import Iterable

import zarr

from datagen import conventions as cv
from datagen.errors import StoreError
from datagen.store import schema
from datagen.store.location import StorePath
from datagen.store.schema import FRAME_ARRAYS, STEP_ARRAYS, ArraySpec, Layout
from datagen.store.writer import ShardBlocks

RATIO_PIXELS: tuple[ArraySpec, ...] = tuple(spec for spec in FRAME_ARRAYS if spec.name.endswith("_lr"))
RATIO_STEPS: tuple[ArraySpec, ...] = tuple(spec for spec in STEP_ARRAYS if spec.name == "jitter_px")
RATIO_ARRAYS: tuple[ArraySpec, ...] = RATIO_PIXELS + RATIO_STEPS
RATIO_NAMES: tuple[str, ...] = tuple(spec.name for spec in RATIO_ARRAYS)
"""The arrays each ratio has its own of; every other array is shared by all ratios."""


def group_name(scale: float) -> str:
    """The subgroup of an extra ratio: 1.5 -> ``lr_x1.5``, 2 -> ``lr_x2``."""
    return f"lr_x{scale:g}"


def describe(hr_size: tuple[int, int], scale: float) -> dict:
    """JSON-ready facts of one ratio: its subgroup, LR size, exact ratio, jitter phase
    count and LR mip bias (both from the exact x ratio, ``conventions``)."""
    lr = cv.lr_size(hr_size, scale)
    ratio = cv.ratio_of(hr_size, lr)
    return {"scale": float(scale), "group": group_name(scale), "lr_size": [int(lr[0]), int(lr[1])],
            "ratio": [float(r) for r in ratio], "jitter_phase_count": cv.jitter_phase_count(ratio[0]),
            "mip_bias_lr": cv.mip_bias(ratio[0])}


def extra_lr(hr_size: tuple[int, int], scales: Iterable[float]) -> list[dict]:
    """``describe`` of each extra ratio, in order (the root attrs' ``store.extra_lr``)."""
    return [describe(hr_size, s) for s in scales]


def create_groups(split: zarr.Group, count: int, frames: int, hr_size: tuple[int, int],
                  extra: list[dict], layout: Layout) -> None:
    """The subgroups of ``extra`` (``extra_lr``) in a new split of ``count`` sequences."""
    for entry in extra:
        group = split.create_group(entry["group"], attributes=entry)
        sizes = schema.dim_sizes(frames, hr_size, tuple(entry["lr_size"]))
        for spec in RATIO_ARRAYS:
            schema.create_array(group, spec, count, sizes, layout)


def find(attrs: dict, scale: float) -> dict | None:
    """The ``extra_lr`` entry of ``scale`` in a store's root attrs; None for the primary
    ratio; StoreError naming the stored ratios for another."""
    shape = attrs["store"]
    if float(scale) == float(shape["scale"]):
        return None
    for entry in shape.get("extra_lr", []):
        if float(entry["scale"]) == float(scale):
            return entry
    stored = ", ".join(f"{s:g}" for s in scales_of(attrs))
    raise StoreError(f"the store has no LR at scale {scale:g}; its scales: {stored}")


def scales_of(attrs: dict) -> tuple[float, ...]:
    """Every ratio of a store, the primary first."""
    shape = attrs["store"]
    return (float(shape["scale"]), *(float(e["scale"]) for e in shape.get("extra_lr", [])))


def extra_blocks(group: zarr.Group, split_path: StorePath, index: int, shape: dict) -> list[ShardBlocks]:
    """One ShardBlocks per extra ratio of sequence ``index`` of the split ``group`` at
    ``split_path`` (``shape``: the root attrs' ``store``), writing that ratio's LR arrays
    into its subgroup: ``writer.write_sequence`` feeds them each frame's Frame of their
    ratio on its writer thread, beside the split's own."""
    return [ShardBlocks(group[e["group"]], split_path / e["group"], index, shape["frames"],
                        shape["layout"]["frames_per_shard"], RATIO_PIXELS, RATIO_STEPS)
            for e in shape.get("extra_lr", [])]
