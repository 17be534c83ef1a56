"""Reprojection with motion vectors, in numpy (conventions in datagen.conventions).

A motion vector points from a pixel to where its surface point was one frame
earlier (``prev_pixel = pixel + motion``, pixels of the buffer's own resolution,
y down), so the previous frame is brought into the current one by a *backward*
warp: every current pixel fetches the previous image at ``centre + motion``.
The tests use it to check motion against colour, and ``datagen validate`` uses
it the same way (its motion_warp check).
"""

from __future__ import annotations

import numpy as np

from datagen import conventions as cv


def bilinear_corners(positions: np.ndarray, size: tuple[int, int]):
    """The four pixels that bilinear sampling of an image of ``size`` (w, h) reads at
    continuous pixel positions (..., 2) = (x, y), and the weights between them:
    ``((x0, y0, x1, y1), (fx, fy))``, integer index arrays (...) and float64 fractions
    (...). Positions outside the image clamp to the edge pixels."""
    w, h = size
    # continuous index coordinates: pixel centres at integers
    u = np.clip(positions[..., 0] - 0.5, 0.0, w - 1.0)
    v = np.clip(positions[..., 1] - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(u).astype(np.intp), max(w - 2, 0))
    y0 = np.minimum(np.floor(v).astype(np.intp), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    return (x0, y0, x1, y1), (u - x0, v - y0)


def bilinear_sample(image: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``image`` (h, w, c) or (h, w) sampled bilinearly at continuous pixel
    positions (..., 2) = (x, y), y down, where pixel (i, j)'s centre is at
    (i + 0.5, j + 0.5). Positions outside the image clamp to the edge pixels.
    Returns (..., c) or (...), float64.
    """
    img = np.asarray(image, dtype=np.float64)
    (x0, y0, x1, y1), (fx, fy) = bilinear_corners(positions, (img.shape[1], img.shape[0]))
    if img.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def warp_previous(prev: np.ndarray, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward-warp the previous frame into the current one.

    prev:   (h, w, c) or (h, w) image of frame t-1.
    motion: (h, w, 2) motion of frame t (``p_prev - p_cur``, pixels, y down),
            same resolution as ``prev``.
    Returns ``(warped, valid)``: warped (h, w, c) or (h, w) float64, where
    ``warped[y, x] = prev`` sampled at ``(x + 0.5, y + 0.5) + motion[y, x]``;
    valid (h, w) bool, False where that position lies outside the span of the
    previous frame's pixel centres, [0.5, w - 0.5] x [0.5, h - 0.5], where
    bilinear interpolation would have to extrapolate (the warped value there is
    the clamped border pixel: content entering the view has no history).
    """
    h, w = motion.shape[:2]
    if prev.shape[:2] != (h, w):
        raise ValueError(f"prev has shape {prev.shape[:2]} but motion has {(h, w)}; warp at one resolution")
    pos = cv.pixel_centres((w, h)) + np.asarray(motion, dtype=np.float64)
    x, y = pos[..., 0], pos[..., 1]
    valid = (x >= 0.5) & (x <= w - 0.5) & (y >= 0.5) & (y <= h - 0.5)
    return bilinear_sample(prev, pos), valid
