"""Turning buffers into 8-bit pictures for people: tonemapping, the optical-flow
colour wheel, depth colouring, nearest upscaling and contact sheets.

All outputs are (h, w, 3) uint8 sRGB arrays, row 0 the top, ready for PNG/MP4/GIF.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

TONEMAP = "exposure multiply, ACES filmic fit (Narkowicz 2015), sRGB OETF, 8-bit"
"""What ``tonemap`` does, to be recorded next to any metric computed on its output."""

SKY_RGB = (110, 170, 230)
"""Colour of +inf (sky) depth in ``depth_to_rgb``: outside the depth ramp."""

_DEPTH_RAMP = np.array([  # near -> far, magma-like
    (252, 253, 191), (252, 137, 97), (183, 55, 121), (81, 18, 124), (0, 0, 4)], np.float32)


def _flow_wheel() -> np.ndarray:
    """(55, 3) float32 colour wheel of Baker et al. (Middlebury): R, Y, G, C, B, M."""
    segments = [(15, (1, 0, 0), (1, 1, 0)), (6, (1, 1, 0), (0, 1, 0)), (4, (0, 1, 0), (0, 1, 1)),
                (11, (0, 1, 1), (0, 0, 1)), (13, (0, 0, 1), (1, 0, 1)), (6, (1, 0, 1), (1, 0, 0))]
    rows = []
    for n, start, end in segments:
        t = np.floor(255 * np.arange(n) / n)[:, None] / 255
        rows.append((1 - t) * np.asarray(start) + t * np.asarray(end))
    return np.vstack(rows).astype(np.float32)


_WHEEL = _flow_wheel()


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def srgb_oetf(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB-encoded [0, 1] (IEC 61966-2-1 piecewise curve)."""
    c = np.clip(linear, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def tonemap(color_hdr: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    """(..., 3) linear HDR colour -> (..., 3) uint8 sRGB, as ``TONEMAP`` says.

    ``exposure`` multiplies radiance first (the Frame's ``exposure``). NaN and
    negative values show black, +inf white.
    """
    return _to_u8(display_values(color_hdr, exposure))


def display_values(color_hdr: np.ndarray, exposure: float = 1.0) -> np.ndarray:
    """``tonemap`` before its rounding to 8 bits: float sRGB values in [0, 1]."""
    x = np.nan_to_num(np.asarray(color_hdr, np.float32) * np.float32(exposure),
                      nan=0.0, posinf=65504.0, neginf=0.0)
    x = np.maximum(x, 0.0)
    aces = np.clip(x * (2.51 * x + 0.03) / (x * (2.43 * x + 0.59) + 0.14), 0.0, 1.0)
    return srgb_oetf(aces)


def motion_to_rgb(motion: np.ndarray, max_px: float | None = None) -> np.ndarray:
    """(h, w, 2) motion in pixels (x right, y down) -> (h, w, 3) uint8 flow colours.

    The Middlebury colour wheel: hue is the direction of the stored vector (for
    our backward motion, p_prev - p_cur, a surface moving right shows the hue
    of -x), saturation its length relative to ``max_px`` (default: the longest
    vector in the image); zero motion is white, lengths beyond ``max_px`` are
    darkened. Non-finite vectors show as zero.
    """
    m = np.nan_to_num(np.asarray(motion, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    u, v = m[..., 0], m[..., 1]
    rad = np.hypot(u, v)
    scale = float(rad.max(initial=0.0)) if max_px is None else float(max_px)
    rad = rad / max(scale, 1e-6)
    n = len(_WHEEL)
    fk = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (n - 1)
    k0 = np.floor(fk).astype(np.int64)
    f = (fk - k0)[..., None]
    col = (1 - f) * _WHEEL[k0 % n] + f * _WHEEL[(k0 + 1) % n]
    r = rad[..., None]
    col = np.where(r <= 1, 1 - r * (1 - col), col * 0.75)
    return _to_u8(col)


def depth_to_rgb(depth: np.ndarray, near: float | None = None, far: float | None = None) -> np.ndarray:
    """(h, w) depth in metres -> (h, w, 3) uint8: log depth on a near-bright ramp.

    The ramp spans [near, far] (default: the finite min and max of ``depth``);
    +inf (sky) and any other non-finite value show as ``SKY_RGB``.
    """
    d = np.asarray(depth, np.float32)
    finite = np.isfinite(d) & (d > 0)
    out = np.empty((*d.shape, 3), np.uint8)
    out[:] = SKY_RGB
    if not finite.any():
        return out
    lo = float(d[finite].min()) if near is None else near
    hi = float(d[finite].max()) if far is None else far
    lo, hi = math.log(max(lo, 1e-6)), math.log(max(hi, 1e-6))
    t = (np.log(d[finite]) - lo) / max(hi - lo, 1e-6)
    pos = np.clip(t, 0.0, 1.0) * (len(_DEPTH_RAMP) - 1)
    stops = np.arange(len(_DEPTH_RAMP))
    out[finite] = np.stack([np.interp(pos, stops, _DEPTH_RAMP[:, c]) for c in range(3)], -1).round()
    return out


def upscale_nearest(img: np.ndarray, factor_or_size: float | tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of (h, w, ...) by a factor or to a (width, height).

    Output pixel (x, y) takes the input pixel under its centre, so non-integer
    scales (1.5, 1.7) map pixels as the LR/HR grids do.
    """
    h, w = img.shape[:2]
    if isinstance(factor_or_size, tuple):
        out_w, out_h = factor_or_size
    else:
        out_w, out_h = round(w * factor_or_size), round(h * factor_or_size)
    ys = np.minimum((2 * np.arange(out_h) + 1) * h // (2 * out_h), h - 1)
    xs = np.minimum((2 * np.arange(out_w) + 1) * w // (2 * out_w), w - 1)
    return img[ys][:, xs]


def contact_sheet(tiles: Sequence[np.ndarray], labels: Sequence[str] | None = None,
                  cols: int | None = None, pad: int = 2, background: int = 32) -> np.ndarray:
    """Lay uint8 tiles, (h, w, 3) or (h, w), row by row in a grid -> uint8 (H, W, 3).

    Cells are the size of the largest tile; ``cols`` defaults to ceil(sqrt(n));
    ``pad`` pixels of ``background`` grey go between and around cells, so
    H = rows * (cell_h + pad) + pad. A label is drawn at a tile's top-left
    corner (PIL's default font) when the tile is big enough to hold it.
    """
    if not tiles:
        raise ValueError("contact_sheet needs at least one tile")
    tiles = [np.repeat(t[..., None], 3, -1) if t.ndim == 2 else t for t in tiles]
    if any(t.dtype != np.uint8 or t.shape[-1] != 3 for t in tiles):
        raise ValueError("contact_sheet tiles must be uint8 (h, w, 3) or (h, w)")
    cols = cols or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    cell_h, cell_w = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    sheet = np.full((rows * (cell_h + pad) + pad, cols * (cell_w + pad) + pad, 3), background, np.uint8)
    corners = []
    for i, tile in enumerate(tiles):
        y, x = pad + (i // cols) * (cell_h + pad), pad + (i % cols) * (cell_w + pad)
        sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
        corners.append((x, y, tile.shape[1], tile.shape[0]))
    if labels:
        image = Image.fromarray(sheet)
        draw = ImageDraw.Draw(image)
        for (x, y, w, h), text in zip(corners, labels, strict=False):
            left, top, right, bottom = draw.textbbox((x + 2, y + 1), text)
            if right + 2 <= x + w and 2 * (bottom - y) <= h:
                draw.rectangle((x, y, right + 2, bottom + 1), fill=(0, 0, 0))
                draw.text((x + 2, y + 1), text, fill=(255, 255, 255))
        sheet = np.asarray(image)
    return sheet
