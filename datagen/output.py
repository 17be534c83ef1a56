"""The on-disk output of ``datagen render`` (SPEC §3): one sequence as a directory.

::

    DIR/lr/NNNN.exr       LR colour + G-buffer (datagen.exr.LR_LAYOUT)
    DIR/hr/NNNN.exr       HR colour, depth, motion (datagen.exr.HR_LAYOUT)
    DIR/preview/NNNN.png  2x2 sheet at HR size: LR (nearest), HR, motion_hr, depth_hr
    DIR/sequence.json     per-frame cameras and timing, conventions, resolved config

Frames are consumed one at a time and written as they arrive; sequence.json is
written last, atomically, so a directory without it is incomplete. A folder that
holds an earlier sequence (its sequence.json or frame files) is refused unless
``overwrite``, which removes those files first: stale frames never stay beside a
sequence.json that lists fewer. A file, a read-only or full disk is one line
(``write_errors``: ``OutputError``, ``DiskFullError`` for a full disk).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from datagen.errors import ConfigError
from datagen.exr import HR_CHANNELS, LR_CHANNELS, write_hr, write_lr
from datagen.frame import Frame
from datagen.images import TONEMAP, contact_sheet, depth_to_rgb, motion_to_rgb, tonemap, upscale_nearest

log = logging.getLogger(__name__)

SEQUENCE_JSON = "sequence.json"
PREVIEW_LABELS = ("LR", "HR", "motion_hr", "depth_hr")
FRAME_FILES = {"lr": re.compile(r"\d{4,}\.exr"), "hr": re.compile(r"\d{4,}\.exr"),
               "preview": re.compile(r"\d{4,}\.png")}
"""the files of a sequence folder that one sequence writes, by sub-folder."""


def write_errors(out: Path, doing: str) -> contextlib.AbstractContextManager[None]:
    """OSError (and OpenEXR's RuntimeError) while writing under ``out`` as one line:
    ``OutputError``, or ``DiskFullError`` (exit 1) for a full disk (``store.io.io_errors``)."""
    from datagen.store.io import io_errors

    return io_errors(out, doing, write=True, rerun="", exr=True)


def earlier_sequence(out_dir: Path) -> list[Path]:
    """The files of an earlier sequence in ``out_dir``: sequence.json and NNNN frame files."""
    found = [out_dir / SEQUENCE_JSON] if (out_dir / SEQUENCE_JSON).is_file() else []
    for sub, pattern in FRAME_FILES.items():
        folder = out_dir / sub
        if folder.is_dir():
            found += sorted(f for f in folder.iterdir() if pattern.fullmatch(f.name) and f.is_file())
    return found


def check_out_dir(out_dir: Path) -> None:
    """ConfigError, before any work, unless the folder ``out_dir`` (an --out) is there or
    can be made: not a file, not under one, and its nearest existing folder writable."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; give a folder (it is made if missing)")
    base = next(p for p in (out_dir, *out_dir.parents) if p.exists() or p == Path(p.anchor or "."))
    if not base.is_dir():
        raise ConfigError(f"--out {out_dir}: {base} is a file, so no folder can be made under it; "
                          "choose another --out")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out_dir}: {base} is not writable (a read-only file system or no "
                          "permission); choose a writable --out")


def check_sequence_dir(out_dir: Path, overwrite: bool = False) -> list[Path]:
    """Raise unless a sequence may be written to ``out_dir``: ``check_out_dir``, and an
    earlier sequence there is a ConfigError without ``overwrite``. Returns the earlier
    sequence's files (for ``overwrite`` to remove)."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    with write_errors(out_dir, "read the output folder"):
        earlier = earlier_sequence(out_dir) if out_dir.is_dir() else []
    if earlier and not overwrite:
        raise ConfigError(f"--out {out_dir} already holds a sequence ({len(earlier)} file(s): "
                          f"{earlier[0].relative_to(out_dir)}, ...); pass --overwrite to replace it, or "
                          "choose another --out")
    return earlier


def frame_name(index: int) -> str:
    """File stem of frame ``index``: 0 -> "0000"."""
    return f"{index:04d}"


def frame_record(frame: Frame, index: int) -> dict:
    """The JSON-ready per-frame entry of sequence.json (matrices row-major, column vectors)."""
    name = frame_name(index)
    return {
        "index": index,
        "lr": f"lr/{name}.exr",
        "hr": f"hr/{name}.exr",
        "preview": f"preview/{name}.png",
        "jitter_px": np.asarray(frame.jitter_px, np.float64).tolist(),
        "view": np.asarray(frame.view, np.float64).tolist(),
        "proj": np.asarray(frame.proj, np.float64).tolist(),
        "exposure": float(frame.exposure),
        "camera_cut": bool(frame.camera_cut),
        "time_s": float(frame.time_s),
    }


def preview_image(frame: Frame) -> np.ndarray:
    """(2H + 6, 2W + 6, 3) uint8 sheet: LR upscaled nearest | HR / motion_hr | depth_hr."""
    hr_h, hr_w = frame.color_hr.shape[:2]
    lr = upscale_nearest(tonemap(frame.color_lr, frame.exposure), (hr_w, hr_h))
    tiles = [lr, tonemap(frame.color_hr, frame.exposure), motion_to_rgb(frame.motion_hr),
             depth_to_rgb(frame.depth_hr)]
    return contact_sheet(tiles, PREVIEW_LABELS, cols=2)


def write_frame(out_dir: Path, frame: Frame, index: int, preview: bool = True) -> dict:
    """Write one frame's EXR files (and PNG preview); return its sequence.json record."""
    name = frame_name(index)
    write_lr(out_dir / "lr" / f"{name}.exr", frame, index)
    write_hr(out_dir / "hr" / f"{name}.exr", frame, index)
    record = frame_record(frame, index)
    if preview:
        Image.fromarray(preview_image(frame)).save(out_dir / "preview" / f"{name}.png")
    else:
        del record["preview"]
    return record


def write_sequence_dir(out_dir: Path, frames: Iterable[Frame], meta: dict,
                       progress: Callable[[], object] | None = None, previews: bool = True,
                       overwrite: bool = False) -> Path:
    """Write a sequence directory (module docstring) and return its sequence.json path.

    ``frames`` is consumed lazily, one frame at a time; frame numbers start at
    0000. ``meta`` must hold ``conventions`` (``conventions.conventions_block``)
    and ``config`` (the resolved config, JSON-ready); every key of it goes to
    the top level of sequence.json. ``progress`` is called with no argument
    after each frame (e.g. a tqdm bar's ``update``). An earlier sequence in
    ``out_dir`` is refused unless ``overwrite``, which removes its files first
    (``check_sequence_dir``). Write failures are ``write_errors``.
    """
    missing = [key for key in ("conventions", "config") if key not in meta]
    if missing:
        raise ValueError(f"write_sequence_dir: meta lacks {missing}; pass the resolved config as "
                         "'config' and conventions.conventions_block(...) as 'conventions'")
    out_dir = Path(out_dir)
    earlier = check_sequence_dir(out_dir, overwrite)
    final = out_dir / SEQUENCE_JSON
    with write_errors(out_dir, "write the sequence"):
        final.unlink(missing_ok=True)  # first: a folder without it is incomplete
        for path in earlier:
            path.unlink(missing_ok=True)
        for sub in ("lr", "hr", "preview") if previews else ("lr", "hr"):
            (out_dir / sub).mkdir(parents=True, exist_ok=True)

    records, lr_size, hr_size = [], None, None
    for index, frame in enumerate(frames):  # frames are made outside write_errors: theirs are theirs
        with write_errors(out_dir, "write the sequence"):
            records.append(write_frame(out_dir, frame, index, previews))
        lr_size = [frame.color_lr.shape[1], frame.color_lr.shape[0]]
        hr_size = [frame.color_hr.shape[1], frame.color_hr.shape[0]]
        del frame  # hold one frame at a time while the next is made
        log.debug("wrote frame %d to %s", index, out_dir)
        if progress is not None:
            progress()

    doc = {
        **meta,
        "frame_count": len(records),
        "lr_size": lr_size,
        "hr_size": hr_size,
        "ratio": None if lr_size is None else [hr_size[0] / lr_size[0], hr_size[1] / lr_size[1]],
        "exr_channels": {"lr": list(LR_CHANNELS), "hr": list(HR_CHANNELS)},
        "preview_tonemap": TONEMAP if previews else None,
        "frames": records,
    }
    tmp = final.with_name(SEQUENCE_JSON + ".tmp")
    with write_errors(out_dir, "write the sequence"):
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, final)
    log.info("wrote %d frames to %s", len(records), out_dir)
    return final
