"""The store schema as code: array names, dimension names, dtypes,
chunking, sharding, codecs and ``SCHEMA_VERSION``, in one place.

A store is a Zarr v3 group with one subgroup per split (``train``, ``val``,
``test``). Every array in a split has a leading ``sequence`` dimension; the
per-sequence shape of each is given by its dimension names and
``dim_sizes(frames, hr_size, lr_size)`` (LR is HR / scale rounded:
``conventions.lr_size``). Channel axes are named by meaning, so that
``xarray.open_zarr(store, group=split)`` opens a split as one Dataset.

Three kinds of array:

- ``FRAME_ARRAYS`` (pixels): chunked one frame at a time, either the whole frame
  or square tiles, and sharded so that one shard holds ``frames_per_shard``
  frames of one sequence and the whole image. A shard is written whole by the
  one task that writes its sequence (a shard is read-modify-write: two writers
  of one shard lose data).
- ``STEP_ARRAYS`` (per-frame scalars and matrices): one chunk per sequence, no
  sharding; written once, when the sequence is finished.
- ``SEQUENCE_ARRAYS`` (per-sequence metadata and the ``complete`` flag): one
  chunk per element along ``sequence``, so concurrent writers of different
  sequences never share a file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import zarr

from datagen import __version__
from datagen.errors import SchemaVersionError, StoreError

SCHEMA_VERSION = 1
"""Bump whenever an array, dimension, dtype or attribute changes meaning."""

SPLITS: tuple[str, ...] = ("train", "val", "test")

NAN = float("nan")


@dataclass(frozen=True)
class ArraySpec:
    """One array of a split: ``(sequence, *dims)`` of ``dtype``."""

    name: str
    dims: tuple[str, ...]
    """dimension names after the leading ``sequence``."""
    dtype: str
    doc: str
    fill_value: object = 0
    """what unwritten elements read as: NaN for floats, so gaps show."""

    @property
    def dimension_names(self) -> tuple[str, ...]:
        return ("sequence", *self.dims)

    def shape(self, sizes: dict[str, int]) -> tuple[int, ...]:
        """Per-sequence shape (without the leading ``sequence``)."""
        return tuple(sizes[d] for d in self.dims)


CHANNEL_DIMS: dict[str, tuple[str, ...]] = {
    "rgb": ("R", "G", "B"),
    "uv": ("dx", "dy"),
    "xyz": ("X", "Y", "Z"),
    "material": ("roughness", "metallic"),
    "jitter": ("jx", "jy"),
    "row": ("0", "1", "2", "3"),
    "col": ("0", "1", "2", "3"),
}
"""Channel axes and what their entries mean, in order. ``uv`` is a motion vector
(p_prev - p_cur, x right, y down); ``row``/``col`` index a 4x4 matrix."""

LR, HR = ("frame", "y_lr", "x_lr"), ("frame", "y_hr", "x_hr")

FRAME_ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("color_lr", (*LR, "rgb"), "float16", "linear HDR, 1 jittered sample per pixel", NAN),
    ArraySpec("depth_lr", LR, "float32", "metres along the view axis, sky +inf", NAN),
    ArraySpec("motion_lr", (*LR, "uv"), "float32", "p_prev - p_cur, LR pixels, y down", NAN),
    ArraySpec("normal_lr", (*LR, "xyz"), "float16", "world space, unit; 0 on sky", NAN),
    ArraySpec("albedo_lr", (*LR, "rgb"), "float16", "linear base colour; 0 on sky", NAN),
    ArraySpec("material_lr", (*LR, "material"), "float16", "roughness, metallic", NAN),
    ArraySpec("object_id_lr", LR, "uint32", "object id, 0 = sky", 0),
    ArraySpec("color_hr", (*HR, "rgb"), "float16", "linear HDR reference, spp samples, box filter", NAN),
    ArraySpec("depth_hr", HR, "float32", "metres along the view axis at HR pixel centres, sky +inf", NAN),
    ArraySpec("motion_hr", (*HR, "uv"), "float32", "p_prev - p_cur, HR pixels, y down", NAN),
)
"""Motion is float32: float16 has 11 significant bits, so a 300 px vector would
carry ~0.1 px of rounding, and the renderer's motion is exact to < 0.01 px."""

STEP_ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("jitter_px", ("frame", "jitter"), "float32", "LR sample offset from pixel centre, LR px", NAN),
    ArraySpec("view", ("frame", "row", "col"), "float32", "world-to-camera, OpenGL, column vectors", NAN),
    ArraySpec("proj", ("frame", "row", "col"), "float32", "unjittered OpenGL projection", NAN),
    ArraySpec("exposure", ("frame",), "float32", "exposure multiplier for viewing (not applied)", NAN),
    ArraySpec("camera_cut", ("frame",), "bool", "true on the first frame after a cut", False),
    ArraySpec("time_s", ("frame",), "float64", "scene time of the frame, seconds", NAN),
)

SEQUENCE_ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("complete", (), "bool", "true once every array of the sequence is written; set last", False),
    ArraySpec("scene", (), "str", "scene recipe name", ""),
    ArraySpec("seed", (), "int64", "scene seed", 0),
    ArraySpec("meta", (), "str", "JSON object: scene, seed, camera rig, augmentation, ...", ""),
)

ARRAYS: dict[str, ArraySpec] = {a.name: a for a in FRAME_ARRAYS + STEP_ARRAYS + SEQUENCE_ARRAYS}
FRAME_NAMES = tuple(a.name for a in FRAME_ARRAYS)
STEP_NAMES = tuple(a.name for a in STEP_ARRAYS)
SEQUENCE_NAMES = tuple(a.name for a in SEQUENCE_ARRAYS)
PER_FRAME: tuple[str, ...] = FRAME_NAMES + STEP_NAMES
"""The arrays with a ``frame`` axis: those a window read returns (the ``Frame`` fields)."""


def dim_sizes(frames: int, hr_size: tuple[int, int], lr_size: tuple[int, int]) -> dict[str, int]:
    """Size of every named dimension but ``sequence``; sizes are (width, height)."""
    sizes = {name: len(entries) for name, entries in CHANNEL_DIMS.items()}
    sizes.update(frame=frames, y_hr=hr_size[1], x_hr=hr_size[0], y_lr=lr_size[1], x_lr=lr_size[0])
    return sizes


# -- layout -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How pixel arrays are chunked, sharded and compressed."""

    tile_hr: int | None = 256
    """square HR chunk side in pixels (LR chunks: tile_hr / ratio), or None for one
    chunk per whole frame."""
    frames_per_shard: int = 4
    """frames in one shard file (and in one write block of the writer: a worker holds
    this many frames of every pixel array in memory)."""
    codec: str = "blosc-zstd"
    """``zstd`` or ``blosc-zstd`` (blosc with byte shuffle)."""
    level: int = 2
    """compression level: 2 writes 1.4-1.5x faster than 3 for 1-3% more bytes, and
    reads as fast (measured, docs/store.md)."""

    def to_json(self) -> dict:
        return asdict(self)


CODECS = ("zstd", "blosc-zstd")
DEFAULT_LAYOUT = Layout()
"""Chosen by measurement: docs/store.md has the table."""


def compressors(layout: Layout) -> list:
    if layout.codec == "zstd":
        return [zarr.codecs.ZstdCodec(level=layout.level)]
    if layout.codec == "blosc-zstd":
        return [zarr.codecs.BloscCodec(cname="zstd", clevel=layout.level, shuffle="shuffle")]
    raise StoreError(f"unknown store codec {layout.codec!r}; valid: {', '.join(CODECS)}")


def tile_side(n: int, target: int) -> int:
    """Chunk side along an image axis of ``n`` pixels: the largest divisor of ``n``
    in [target / 2, target], so that no chunk is padded (1080 -> 216 for 256), else
    ``target`` itself (the edge chunk is padded), never more than ``n``."""
    if target >= n:
        return n
    for side in range(target, (target + 1) // 2 - 1, -1):
        if n % side == 0:
            return side
    return target


def chunking(spec: ArraySpec, sizes: dict[str, int],
             layout: Layout) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """(chunks, shards or None) of ``spec``, both including the ``sequence`` axis.

    Pixel arrays: chunks of one frame and one tile (``tile_side``; LR tiles aim at
    ``tile_hr`` over that axis's HR / LR ratio) or the whole image; shards of
    ``frames_per_shard`` frames and the whole image (padded up to whole tiles), so a
    sequence owns its shards.
    """
    shape = spec.shape(sizes)
    if spec.name in SEQUENCE_NAMES:
        return (1,), None
    if spec.name in STEP_NAMES:
        return (1, *shape), None
    chunks, shards = [1, 1], [1, min(layout.frames_per_shard, sizes["frame"])]
    for dim, n in zip(spec.dims[1:3], shape[1:3], strict=True):
        if layout.tile_hr is None:
            tile = n
        else:
            axis = dim[0]  # "y" or "x"
            ratio = sizes[f"{axis}_hr"] / sizes[f"{axis}_lr"]
            target = layout.tile_hr if dim.endswith("_hr") else max(1, round(layout.tile_hr / ratio))
            tile = tile_side(n, target)
        chunks.append(tile)
        shards.append(math.ceil(n / tile) * tile)
    extra = list(shape[3:])
    return tuple(chunks + extra), tuple(shards + extra)


def create_array(group: zarr.Group, spec: ArraySpec, count: int, sizes: dict[str, int],
                 layout: Layout) -> zarr.Array:
    """Create ``spec`` in ``group`` for ``count`` sequences (count may be 0)."""
    chunks, shards = chunking(spec, sizes, layout)
    kwargs = {} if spec.dtype in ("str", "bool") else {"compressors": compressors(layout)}
    return group.create_array(
        spec.name, shape=(count, *spec.shape(sizes)), dtype=spec.dtype, chunks=chunks, shards=shards,
        fill_value=spec.fill_value, dimension_names=spec.dimension_names,
        attributes={"description": spec.doc}, **kwargs)


# -- version ------------------------------------------------------------------------------------


def check_version(root_attrs: dict, path: object) -> None:
    """Raise unless ``root_attrs`` are those of a store of ``SCHEMA_VERSION``."""
    found = root_attrs.get("schema_version")
    if found is None:
        raise StoreError(f"{path}: not a datagen store (its root attrs have no schema_version); "
                         "give the path of a store made by `datagen build`")
    if found != SCHEMA_VERSION:
        wrote = root_attrs.get("datagen_version", "unknown")
        raise SchemaVersionError(
            f"{path}: store schema version {found} (written by datagen {wrote}) is not supported; "
            f"datagen {__version__} reads schema version {SCHEMA_VERSION}. Rebuild the store with "
            f"this version (`datagen build --overwrite`), or install datagen {wrote} to read it")


def check_root(root_attrs: dict, path: object) -> None:
    """Raise unless ``root_attrs`` are those of a store of ``SCHEMA_VERSION`` with the
    fields every reader relies on (so a damaged zarr.json is one line, not a KeyError)."""
    check_version(root_attrs, path)
    shape = root_attrs.get("store")

    def ints(value, n: int) -> bool:
        return (isinstance(value, list) and len(value) == n
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value))

    problem = None
    if not isinstance(shape, dict):
        problem = "no 'store' table"
    elif not (isinstance(shape.get("splits"), dict) and set(shape["splits"]) <= set(SPLITS)
              and all(isinstance(n, int) and n >= 0 for n in shape["splits"].values())):
        problem = f"store.splits is {shape.get('splits')!r}"
    elif not ints([shape.get("frames")], 1) or not ints(shape.get("hr_size"), 2) \
            or not ints(shape.get("lr_size"), 2):
        problem = "store.frames, hr_size or lr_size is missing or not positive integers"
    elif not isinstance(shape.get("scale"), int | float) or not shape["scale"] > 0:
        problem = f"store.scale is {shape.get('scale')!r}"
    elif not isinstance(shape.get("layout"), dict) or set(shape["layout"]) != set(asdict(DEFAULT_LAYOUT)):
        problem = f"store.layout is {shape.get('layout')!r}"
    elif not all(isinstance(root_attrs.get(key), dict) for key in ("config", "conventions")):
        problem = "config or conventions is missing"
    if problem:
        raise StoreError(f"{path}: not a datagen store: its root attrs are damaged ({problem[:120]}); "
                         "build it again (`datagen build --overwrite`)")
