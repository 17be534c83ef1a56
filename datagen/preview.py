"""``datagen preview``: pictures of a stored sequence for people.

Each frame is one row of four tiles at HR size: LR colour upscaled nearest, HR
colour (both tonemapped with the frame's own exposure, ``images.TONEMAP``),
``motion_hr`` on the colour wheel and ``depth_hr`` on a log ramp (sky blue).
Motion and depth share one scale over the frames shown, so they do not flicker:
the longest motion vector and the finite depth range of those frames.

- ``.png``: a contact sheet of a few frames spread over the sequence, one per row;
- ``.gif``, ``.mp4``: every frame, the four tiles side by side, at the sequence's
  frame rate (from ``time_s``). MP4 needs the ``imageio-ffmpeg`` package.

Frames are read one shard at a time (twice for a video: once for the scales).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from datagen.errors import ConfigError, StoreError
from datagen.images import contact_sheet, depth_to_rgb, motion_to_rgb, tonemap, upscale_nearest
from datagen.output import write_errors
from datagen.store.reader import SequenceInfo, Store

FORMATS = (".png", ".gif", ".mp4")
COLUMNS = ("LR", "HR", "motion_hr", "depth_hr")
ARRAYS = ("color_lr", "color_hr", "motion_hr", "depth_hr", "exposure", "time_s")
PAD = 2
"""grey pixels between and around tiles (``images.contact_sheet``)."""
MP4_BLOCK = 16
"""MP4 frames are padded to multiples of this (what H.264 players expect)."""


def check_format(out: str | os.PathLike) -> str:
    """The suffix of ``out`` if it is one of ``FORMATS``, else ConfigError (also for
    .mp4 when imageio-ffmpeg is missing)."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"--out {os.fspath(out)!r}: unknown preview format {suffix or '(none)'!r}; "
                          f"valid: {', '.join(FORMATS)}")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ConfigError("MP4 previews need the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                              "or write a .gif") from None
    return suffix


def shrink_factor(hr_size: tuple[int, int], max_width: int | None) -> int:
    """Every k-th HR pixel is shown, the smallest k that fits four tiles in ``max_width``."""
    if not max_width:
        return 1
    return max(1, math.ceil(4 * (hr_size[0] + PAD) / max(max_width - PAD, 1)))


def frame_tiles(data: dict[str, np.ndarray], t: int, hr_size: tuple[int, int], motion_max: float,
                depth_range: tuple[float, float] | None, step: int = 1) -> list[np.ndarray]:
    """The four uint8 (H, W, 3) tiles of frame ``t`` of a window ``data`` (every
    ``step``-th HR pixel)."""
    exposure = float(data["exposure"][t])
    near, far = depth_range if depth_range else (None, None)
    tiles = [upscale_nearest(tonemap(data["color_lr"][t], exposure), hr_size),
             tonemap(data["color_hr"][t], exposure),
             motion_to_rgb(data["motion_hr"][t], motion_max),
             depth_to_rgb(data["depth_hr"][t], near, far)]
    return [tile[::step, ::step] for tile in tiles]


def _windows(store: Store, info: SequenceInfo, arrays: Sequence[str],
             frames: Sequence[int] | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(first frame, window) for every shard-sized block of the sequence, or for each
    frame of ``frames`` alone."""
    if frames is not None:
        for t in frames:
            yield t, store.read_window(info.split, info.index, t, 1, arrays)
        return
    block = store.layout.frames_per_shard
    for start in range(0, store.frames, block):
        length = min(block, store.frames - start)
        yield start, store.read_window(info.split, info.index, start, length, arrays)


def scales(store: Store, info: SequenceInfo,
           frames: Sequence[int] | None = None) -> tuple[float, tuple[float, float] | None]:
    """(longest finite motion_hr vector, (min, max) finite positive depth_hr or None)."""
    motion_max, lo, hi = 0.0, math.inf, -math.inf
    for _, data in _windows(store, info, ("motion_hr", "depth_hr"), frames):
        m = data["motion_hr"].astype(np.float64)
        length = np.hypot(m[..., 0], m[..., 1])
        if np.isfinite(length).any():
            motion_max = max(motion_max, float(np.nanmax(np.where(np.isfinite(length), length, np.nan))))
        d = data["depth_hr"]
        d = d[np.isfinite(d) & (d > 0)]
        if d.size:
            lo, hi = min(lo, float(d.min())), max(hi, float(d.max()))
    return motion_max, ((lo, hi) if lo <= hi else None)


def sheet_frames(count: int, rows: int) -> list[int]:
    """``rows`` frame indices spread evenly over ``count`` frames, first and last included."""
    rows = max(1, min(rows, count))
    return sorted({round(i * (count - 1) / max(rows - 1, 1)) for i in range(rows)})


def contact(store: Store, info: SequenceInfo, rows: int = 4, max_width: int | None = 3840) -> np.ndarray:
    """The PNG picture: one row of four tiles per frame of ``sheet_frames``."""
    frames = sheet_frames(store.frames, rows)
    motion_max, depth_range = scales(store, info, frames)
    step = shrink_factor(store.hr_size, max_width)
    tiles, labels = [], []
    for t, data in _windows(store, info, ARRAYS, frames):
        tiles += frame_tiles(data, 0, store.hr_size, motion_max, depth_range, step)
        labels += [f"{t:04d} {COLUMNS[0]}", *COLUMNS[1:]]
    return contact_sheet(tiles, labels, cols=4, pad=PAD)


def frame_rate(store: Store, info: SequenceInfo) -> float:
    """Frames per second from ``time_s`` (10 if it does not say), within [1, 60]."""
    times = store.read_window(info.split, info.index, arrays=["time_s"])["time_s"]
    steps = np.diff(times)
    steps = steps[np.isfinite(steps) & (steps > 0)]
    return float(np.clip(1.0 / np.median(steps), 1.0, 60.0)) if steps.size else 10.0


def video_frames(store: Store, info: SequenceInfo, max_width: int | None = 3840) -> Iterator[np.ndarray]:
    """Every frame of the sequence as one uint8 (H, 4W, 3) row of tiles."""
    motion_max, depth_range = scales(store, info)
    step = shrink_factor(store.hr_size, max_width)
    for start, data in _windows(store, info, ARRAYS):
        for t in range(len(data["exposure"])):
            labels = [f"{start + t:04d} {COLUMNS[0]}", *COLUMNS[1:]]
            yield contact_sheet(frame_tiles(data, t, store.hr_size, motion_max, depth_range, step), labels,
                                cols=4, pad=PAD)


def _pad_to(image: np.ndarray, block: int, background: int = 32) -> np.ndarray:
    h, w = image.shape[:2]
    out = np.full((math.ceil(h / block) * block, math.ceil(w / block) * block, 3), background, np.uint8)
    out[:h, :w] = image
    return out


def write_preview(store: Store, info: SequenceInfo, out: str | os.PathLike, rows: int = 4,
                  max_width: int | None = 3840,
                  progress: Callable[[], object] | None = None) -> tuple[int, ...]:
    """Write the PNG sheet, GIF or MP4 of one complete sequence; return the image
    shape (height, width, 3) and, for videos, the frame count first."""
    suffix = check_format(out)
    if not info.complete:
        raise StoreError(f"{info.split} sequence {info.index} is not complete; preview a complete one")
    out = Path(out)
    with write_errors(out, "write the preview"):
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".png":
            from PIL import Image

            picture = contact(store, info, rows, max_width)
            Image.fromarray(picture).save(out)
            return picture.shape
        fps = frame_rate(store, info)
        count, shape = 0, ()
        if suffix == ".gif":
            import imageio.v3 as iio

            with iio.imopen(out, "w", extension=".gif") as writer:
                for image in video_frames(store, info, max_width):
                    writer.write(image, duration=round(1000 / fps), loop=0)
                    count, shape = count + 1, image.shape
                    if progress is not None:
                        progress()
        else:
            import imageio.v2 as iio2

            writer = iio2.get_writer(out, format="FFMPEG", fps=fps, codec="libx264", quality=8,
                                     macro_block_size=1, pixelformat="yuv420p", ffmpeg_log_level="error")
            try:
                for image in video_frames(store, info, max_width):
                    image = _pad_to(image, MP4_BLOCK)
                    writer.append_data(image)
                    count, shape = count + 1, image.shape
                    if progress is not None:
                        progress()
            finally:
                writer.close()
        return (count, *shape)
