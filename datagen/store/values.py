"""Value checks of one stored frame that need no other frame: what ``datagen validate``
reports as ``blank``, ``range`` and ``object_id`` (see ``validate.CHECKS``).

A frame that was never rendered, or was wiped, reads back as zeros (or as the fill
value of a deleted shard: NaN for floats, 0 for object ids). NaN is the ``nan``
check's; these catch the zeros, which are finite and so pass it:

- ``blank``: a colour frame that is zero everywhere. A rendered frame never is: the
  sky, or any lit surface, has radiance.
- ``range``: depth > 0 where finite (a distance in front of the camera; +inf is the
  sky), exposure > 0, normals of unit length wherever depth is finite (0 on the sky),
  view and proj invertible.
- ``object_id``: object ids agree with depth: 0 (sky) exactly where depth_lr is +inf.
  A deleted object_id_lr shard reads back as 0 everywhere and fails here.

Each function returns (check, message) pairs; the caller names split, sequence and frame.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from datagen.store.schema import FRAME_NAMES

NORMAL_TOL = 0.02
"""|normal| must be within this of 1 off the sky (stored as float16: measured within 0.001)."""
MIN_DET = 1e-12
"""|det| below this makes a view or proj matrix not invertible."""


def blank_problems(name: str, value: np.ndarray) -> Iterator[tuple[str, str]]:
    """``blank`` for a colour array (h, w, 3) that is zero everywhere."""
    if name.startswith("color_") and value.size and not np.any(value):
        yield "blank", (f"{name} is zero everywhere: a frame that was never rendered or was wiped "
                        "(a rendered frame always has some radiance); build the sequence again")


def range_problems(name: str, value: np.ndarray,
                   depth: np.ndarray | None = None) -> Iterator[tuple[str, str]]:
    """``range`` for one frame of array ``name``: depth_* > 0, exposure > 0, view and proj
    invertible, and, given the frame's ``depth`` (depth_lr), unit normal_lr off the sky."""
    with np.errstate(invalid="ignore"):
        if name.startswith("depth_"):
            bad = int((value <= 0).sum())
            if bad:
                yield "range", (f"{name} has {bad} value(s) <= 0; depth is a distance in front of the "
                                "camera (sky = +inf)")
        elif name == "exposure":
            if not float(value) > 0:
                yield "range", f"exposure is {float(value):g}; it must be > 0"
        elif name in ("view", "proj"):
            m = np.asarray(value, np.float64)
            if np.isfinite(m).all() and abs(np.linalg.det(m)) < MIN_DET:
                yield "range", f"{name} is not invertible (det {np.linalg.det(m):.3g}); not a camera matrix"
        elif name == "normal_lr" and depth is not None:
            length = np.linalg.norm(np.asarray(value, np.float32), axis=-1)
            solid = np.isfinite(depth)
            bad = int((np.abs(length[solid] - 1.0) > NORMAL_TOL).sum())
            if bad:
                yield "range", (f"normal_lr has {bad} pixel(s) off the sky whose normal is not of unit "
                                f"length (within {NORMAL_TOL})")


def object_id_problems(object_id_lr: np.ndarray, depth_lr: np.ndarray) -> Iterator[tuple[str, str]]:
    """``object_id`` where object_id_lr (h, w) and depth_lr (h, w) disagree about the sky."""
    sky = np.isposinf(depth_lr)
    hole = int(((object_id_lr == 0) & ~sky & ~np.isnan(depth_lr)).sum())
    ghost = int(((object_id_lr != 0) & sky).sum())
    if hole or ghost:
        parts = [f"{hole} pixel(s) of id 0 (sky) where depth_lr is finite"] if hole else []
        parts += [f"{ghost} pixel(s) of a nonzero id where depth_lr is +inf (sky)"] if ghost else []
        yield "object_id", (f"object_id_lr disagrees with depth_lr: {' and '.join(parts)}; the ids must "
                            "be 0 exactly on the sky (a deleted object_id_lr shard reads as 0)")


def frame_value_problems(frame: dict) -> Iterator[tuple[str, str]]:
    """``blank``, ``range`` and ``object_id`` of one frame's pixel arrays (``FRAME_NAMES``;
    an array that could not be read is None and skipped)."""
    depth_lr = frame.get("depth_lr")
    for name in FRAME_NAMES:
        if frame.get(name) is not None:
            yield from blank_problems(name, frame[name])
            yield from range_problems(name, frame[name], depth_lr)
    if frame.get("object_id_lr") is not None and depth_lr is not None:
        yield from object_id_problems(frame["object_id_lr"], depth_lr)
