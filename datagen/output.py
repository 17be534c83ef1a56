"""The on-disk output of ``datagen render`` (SPEC §3): one sequence as a directory.

::

    DIR/lr/NNNN.exr       LR colour + G-buffer (datagen.exr.LR_LAYOUT)
    DIR/hr/NNNN.exr       HR colour, depth, motion (datagen.exr.HR_LAYOUT)
    DIR/preview/NNNN.png  2x2 sheet at HR size: LR (nearest), HR, motion_hr, depth_hr
    DIR/sequence.json     per-frame cameras and timing, conventions, resolved config

Frames are consumed one at a time and written as they arrive; sequence.json is
written last, atomically, so a directory without it is incomplete.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from datagen.exr import HR_CHANNELS, LR_CHANNELS, write_hr, write_lr
from datagen.frame import Frame
from datagen.images import TONEMAP, contact_sheet, depth_to_rgb, motion_to_rgb, tonemap, upscale_nearest

log = logging.getLogger(__name__)

SEQUENCE_JSON = "sequence.json"
PREVIEW_LABELS = ("LR", "HR", "motion_hr", "depth_hr")


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
                       progress: Callable[[], object] | None = None, previews: bool = True) -> Path:
    """Write a sequence directory (module docstring) and return its sequence.json path.

    ``frames`` is consumed lazily, one frame at a time; frame numbers start at
    0000. ``meta`` must hold ``conventions`` (``conventions.conventions_block``)
    and ``config`` (the resolved config, JSON-ready); every key of it goes to
    the top level of sequence.json. ``progress`` is called with no argument
    after each frame (e.g. a tqdm bar's ``update``). An old sequence.json is
    removed before the first frame is written.
    """
    missing = [key for key in ("conventions", "config") if key not in meta]
    if missing:
        raise ValueError(f"write_sequence_dir: meta lacks {missing}; pass the resolved config as "
                         "'config' and conventions.conventions_block(...) as 'conventions'")
    out_dir = Path(out_dir)
    for sub in ("lr", "hr", "preview") if previews else ("lr", "hr"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    final = out_dir / SEQUENCE_JSON
    final.unlink(missing_ok=True)

    records, lr_size, hr_size = [], None, None
    for index, frame in enumerate(frames):
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
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, final)
    log.info("wrote %d frames to %s", len(records), out_dir)
    return final
