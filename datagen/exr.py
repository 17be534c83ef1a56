"""OpenEXR files of one frame (SPEC §3), written and read with the OpenEXR 3.5 bindings.

LR files hold colour and the G-buffer, HR files colour, depth and motion; the
channel names and pixel types are the tables ``LR_LAYOUT`` and ``HR_LAYOUT``.
Files are single-part scanline images with ZIP compression (lossless, readable
everywhere). Row 0 of every array is the top of the image, which is also how
EXR stores rows (y grows downwards, line order INCREASING_Y).

Header attributes, beside the standard ones (all names start ``datagen:``):
``buffer`` ("lr"/"hr"), ``motion``, ``depth``, ``color`` (conventions as
strings), ``jitter_px`` (V2f, LR pixels; (0, 0) in HR files, which are
unjittered), ``exposure`` (float), ``frame`` (int), ``view`` and ``proj``
(M44f). Element [i][j] of a stored matrix is numpy's ``M[i, j]`` for column
vectors (p' = M @ p), the transpose of Imath's row-vector habit.

Beside them, the standard OpenEXR attributes that Nuke and OpenImageIO read,
``worldToCamera`` and ``worldToNDC`` (M44f), in OpenEXR's own row-vector
convention (``conventions.exr_world_to_camera``, ``exr_world_to_ndc``): camera
space left-handed with +z forward, NDC (0, 0) top-left to (1, 1) bottom-right.
An LR file's ``worldToNDC`` uses the jittered projection it was rendered with.

Binding behaviour this module works around (OpenEXR 3.5.3, measured):

- ``File(header, channels)`` replaces the arrays of ``channels`` by Channel
  objects and adds dataWindow/displayWindow to ``header``: both get copies.
- arrays that are not C-contiguous (a channel sliced out of (h, w, 3), a
  flipped view, a transposed matrix attribute) are written as their raw
  buffer, silently wrong: we copy.
- only float16 (HALF), float32 (FLOAT) and uint32 (UINT) pixels are accepted;
  paths must be ``str`` (a ``Path`` is taken for a stream and fails).
- scalar float attributes are stored as 32-bit floats, even from float64;
  ``np.float32`` scalars are refused.
- channels are listed (and read back) in alphabetical order, as EXR requires.
"""

from __future__ import annotations

import os

import numpy as np
import OpenEXR

from datagen import conventions as cv
from datagen.frame import Frame

Layout = tuple[tuple[str, str, int | None, type], ...]
"""(channel, Frame field, component or None for a 2-D field, dtype) per channel."""


def _colour_depth_motion(res: str) -> Layout:
    """The channels LR and HR files share, from the fields ending in ``_{res}``."""
    return (
        ("R", f"color_{res}", 0, np.float16),
        ("G", f"color_{res}", 1, np.float16),
        ("B", f"color_{res}", 2, np.float16),
        ("Z", f"depth_{res}", None, np.float32),
        ("backward.u", f"motion_{res}", 0, np.float32),
        ("backward.v", f"motion_{res}", 1, np.float32),
    )


LR_LAYOUT: Layout = _colour_depth_motion("lr") + (
    ("N.X", "normal_lr", 0, np.float16),
    ("N.Y", "normal_lr", 1, np.float16),
    ("N.Z", "normal_lr", 2, np.float16),
    ("albedo.R", "albedo_lr", 0, np.float16),
    ("albedo.G", "albedo_lr", 1, np.float16),
    ("albedo.B", "albedo_lr", 2, np.float16),
    ("roughness", "material_lr", 0, np.float16),
    ("metallic", "material_lr", 1, np.float16),
    ("objectId", "object_id_lr", None, np.uint32),
)
HR_LAYOUT: Layout = _colour_depth_motion("hr")
LR_CHANNELS = tuple(row[0] for row in LR_LAYOUT)
HR_CHANNELS = tuple(row[0] for row in HR_LAYOUT)
PIXEL_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.uint32))

MOTION_ATTR = (f"backward.u, backward.v = {cv.MOTION_SIGN}, {cv.MOTION_UNITS}; "
               "prev_pixel = pixel + motion; unjittered pixel centres")
COLOR_ATTR = "R,G,B linear scene-referred HDR, Rec.709 primaries, not exposure-scaled"


def frame_channels(frame: Frame, layout: Layout = LR_LAYOUT) -> dict[str, np.ndarray]:
    """The 2-D, C-contiguous arrays of ``frame`` named and typed as ``layout`` says."""
    out = {}
    for name, field, comp, dtype in layout:
        arr = getattr(frame, field)
        arr = arr if comp is None else arr[..., comp]
        out[name] = np.ascontiguousarray(arr, dtype=dtype)
    return out


def frame_attrs(frame: Frame, buffer: str, frame_index: int | None = None) -> dict:
    """The ``datagen:*`` header attributes of one frame's ``buffer`` ("lr" or "hr")."""
    jitter = frame.jitter_px if buffer == "lr" else np.zeros(2)
    h, w = getattr(frame, f"color_{buffer}").shape[:2]
    rendered_with = cv.jittered(frame.proj, jitter, (w, h))  # the identity shear on HR
    attrs = {
        "datagen:buffer": buffer,
        "datagen:motion": MOTION_ATTR,
        "datagen:depth": f"Z = {cv.DEPTH_KIND}",
        "datagen:color": COLOR_ATTR,
        "datagen:jitter_px": np.asarray(jitter, np.float32),
        "datagen:exposure": float(frame.exposure),
        "datagen:view": np.asarray(frame.view, np.float32),
        "datagen:proj": np.asarray(frame.proj, np.float32),
        "worldToCamera": cv.exr_world_to_camera(frame.view).astype(np.float32),
        "worldToNDC": cv.exr_world_to_ndc(rendered_with, frame.view).astype(np.float32),
    }
    if frame_index is not None:
        attrs["datagen:frame"] = int(frame_index)
    return attrs


def write_exr(path: str | os.PathLike, channels: dict[str, np.ndarray], attrs: dict | None = None) -> None:
    """Write 2-D arrays of one shape as a ZIP-compressed scanline EXR.

    float16 -> HALF, float32 -> FLOAT, uint32 -> UINT; other dtypes raise
    ValueError. ``attrs`` are extra header attributes (str, int, float, 2-vectors
    and 4x4 float32 arrays). Neither argument is modified.
    """
    shapes = {name: a.shape for name, a in channels.items()}
    if not channels or any(len(s) != 2 for s in shapes.values()) or len(set(shapes.values())) != 1:
        raise ValueError(f"EXR channels must be 2-D arrays of one shape; got {shapes}")
    bad = {name: str(a.dtype) for name, a in channels.items() if a.dtype not in PIXEL_DTYPES}
    if bad:
        raise ValueError(f"EXR channels must be float16, float32 or uint32; got {bad}")
    # matrices too are taken as their raw buffer: a transposed (Fortran-order) one would come out transposed
    attrs = {k: np.ascontiguousarray(v) if isinstance(v, np.ndarray) else v for k, v in (attrs or {}).items()}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **attrs}
    pixels = {name: np.array(a, order="C") for name, a in channels.items()}
    OpenEXR.File(header, pixels).write(os.fspath(path))


def write_lr(path: str | os.PathLike, frame: Frame, frame_index: int | None = None) -> None:
    """LR colour and G-buffer: the channels of ``LR_LAYOUT`` plus ``frame_attrs``."""
    write_exr(path, frame_channels(frame, LR_LAYOUT), frame_attrs(frame, "lr", frame_index))


def write_hr(path: str | os.PathLike, frame: Frame, frame_index: int | None = None) -> None:
    """HR reference colour, depth and motion: the channels of ``HR_LAYOUT``."""
    write_exr(path, frame_channels(frame, HR_LAYOUT), frame_attrs(frame, "hr", frame_index))


def read_exr(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every channel of a single-part EXR as a 2-D array (row 0 the top), by name.

    Dtypes follow the pixel type (HALF float16, FLOAT float32, UINT uint32);
    names come in the file's (alphabetical) order.
    """
    f = OpenEXR.File(os.fspath(path), separate_channels=True)
    return {name: ch.pixels for name, ch in f.channels().items()}


def read_exr_header(path: str | os.PathLike) -> dict:
    """The header attributes of an EXR (standard ones and ``datagen:*``)."""
    return dict(OpenEXR.File(os.fspath(path), header_only=True).header())
