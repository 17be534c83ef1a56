"""The maths of ``datagen validate``'s motion checks (``motion_warp``, ``motion_camera``,
``motion_lr_hr``: see ``datagen.store.validate``), their thresholds and the measurements
behind them. Pure numpy on one frame's arrays (and the previous frame's): no store
access, so the EXR-folder checks of the tests use them the same way."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from datagen import conventions as cv
from datagen.reproject import bilinear_corners, bilinear_sample

MAX_PIXELS = 250_000
"""``motion_warp`` and ``motion_camera`` look at every k-th HR row and column, k the smallest
that keeps to this many pixels (k = 3 at 1920x1080): about 0.5 s per 1080p frame for both."""

WARP_MIN_MOTION_PX = 0.5
"""``motion_warp`` judges the HR pixels that move at least this far (where leaving the
previous frame in place is visibly wrong), whose warp stays inside the image, and that
frame t-1 saw: ``WARP_OCCLUSION_TOL``."""
WARP_OCCLUSION_TOL = 0.1
"""A pixel was hidden in frame t-1 (disoccluded) when depth_hr of frame t-1 around the
point's previous position (reprojected by depth_hr and the two cameras, as a static
world) is more than 10% nearer than the point was: warping fetches the occluder there,
whatever the motion. Behind a chased car that is up to 9% of a 128x72 frame."""
WARP_MIN_PIXELS = (256, 0.01)
"""...if there are at least 256 of them (a quarter of the pixels looked at in images of
fewer than 1024) and 1% of them; else the frame is not judged. Fewer pixels are too
little evidence: at 64x36, 2-px-wide features moving less than a pixel, bilinear
resampling error alone decided which motion scale looked best."""
WARP_MIN_ERROR = 1e-3
"""...and if the unwarped error there is at least this (else colour does not change: not judged)."""
WARP_MIN_CHANGE = 0.02
"""``WARP_MAX_RATIO`` compares errors on the judged pixels whose value changed by at
least this from frame t-1 to t (on the ``_grey`` scale, 0..1): where it did not,
leaving the frame in place is exact and any warp can only add resampling error
(lines along the motion, sub-pixel motion of pixel-wide detail: a chase camera's lane
lines, a forward flight down a street)."""
WARP_MAX_RATIO = 0.8
"""e(s) is the mean |previous frame sampled bilinearly at pixel + s * motion_hr - current
frame| over the judged pixels, on the mean over RGB of c / (1 + c), c = colour * exposure
(``_grey``). A sequence fails when sum e(1) / sum e(0) over its judged frames, on the
pixels that changed (``WARP_MIN_CHANGE``), is above this: the motion must explain the
change far better than no warp."""
WARP_SCALES = (0.5, 2.0, -1.0)
WARP_MIN_MARGIN = 0.8
"""A sequence fails when halving, doubling or flipping its motion explains it better by
this much: sum e(s) < 0.8 sum e(1) over its judged frames and all judged pixels, for
one s of ``WARP_SCALES``; the failure names each frame that fails so on its own.

Measured with 8 spp on every scene (3 sequences each) with no augmentation and with
each augmentation (flips, quarter turns, crop, exposure, white balance, hue, stride 2
and 3), 6 frames, at 64x36 and 128x72 (2 sequences each at 640x360), right motion
against every frame's motion doubled or flipped:

- sum e(1) / sum e(0) on changed pixels: right <= 0.74 (64x36), <= 0.52 (128x72);
- min over s of sum e(s) / sum e(1): right >= 0.85 (64x36), >= 1.10 (128x72);
  doubled or flipped <= 0.81 (64x36, where the ratio catches it), <= 0.66 (128x72)."""

CAMERA_TOL_PX = (0.05, 0.01)
"""``motion_camera``: a pixel agrees with the camera when |motion_hr - camera motion|
<= 0.05 px + 1% of |camera motion| (float32 maths on both sides: measured < 1e-3 px)."""
CAMERA_MIN_AGREE = 0.25
"""Fail when fewer than this fraction of the finite pixels (sky included) agree. Moving
objects disagree by design, so the check only needs part of the view to be static
world; a frame more than 75% covered by moving objects would fail it wrongly. Measured
on the scenes of ``WARP_MIN_MARGIN``: right motion 0.90 (forest) to 1.00 (city);
doubled or flipped motion 0.00."""

LR_HR_TOL_PX = (0.05, 0.05)
"""``motion_lr_hr``: an LR pixel agrees when |motion_lr - motion_hr(s * ratio) / ratio|
<= 0.05 LR px + 5% of |motion_lr|, motion_hr sampled bilinearly at the LR sample
position s = centre + jitter (measured: 99% of pixels within 0.07 px)."""
LR_HR_SMOOTH = (0.10, 0.01)
"""...on LR pixels away from depth edges: the four HR depths around the sample position
are all sky, or finite and within 10% of each other with depth_lr within 1% of their range."""
LR_HR_MIN_AGREE = 0.9
"""Fail when fewer than this fraction of those pixels (at least 16) agree. Measured on the
scenes of ``WARP_MIN_MARGIN``: right motion 0.99 to 1.00 of the pixels."""


@dataclass(frozen=True)
class WarpErrors:
    """The ``motion_warp`` errors of one frame (``warp_errors``): e(s) for s in 1, 0 and
    ``WARP_SCALES`` (see ``WARP_MAX_RATIO``)."""

    all: dict[float, float]
    """e(s) over the judged pixels."""
    changed: dict[float, float] | None
    """e(s) over those of them that changed (``WARP_MIN_CHANGE``); None if none did."""
    pixels: int
    """pixels judged."""


def _grey(color: np.ndarray, exposure: float) -> np.ndarray:
    """(H, W) mean of c / (1 + c) over RGB, c = colour * exposure: HDR highlights cannot
    dominate the error, and one channel warps three times faster than three."""
    c = np.maximum(np.asarray(color, np.float32) * np.float32(exposure), 0.0)
    return (c / (1.0 + c)).mean(-1)


def _stride(shape: tuple[int, ...]) -> int:
    """k such that every k-th row and column of an (H, W, ...) image is <= ``MAX_PIXELS``."""
    return max(1, math.ceil(math.sqrt(shape[0] * shape[1] / MAX_PIXELS)))


def warp_errors(prev_hr: np.ndarray, cur_hr: np.ndarray, motion_hr: np.ndarray, prev_exposure: float,
                cur_exposure: float, hidden: np.ndarray | None = None) -> WarpErrors | None:
    """The warp errors of one frame, or None when it cannot be judged (``WARP_MIN_*``).
    Colours (H, W, 3) of frames t-1 and t, motion (H, W, 2) of frame t; ``hidden`` (every
    ``_stride``-th row and column) marks the pixels frame t-1 did not see
    (``hidden_in_previous``), left out."""
    H, W = motion_hr.shape[:2]
    step = _stride((H, W))
    prev = np.nan_to_num(_grey(prev_hr, prev_exposure))
    cur = _grey(cur_hr[::step, ::step], cur_exposure)
    motion = np.asarray(motion_hr[::step, ::step], np.float64)
    centres = cv.pixel_centres((W, H))[::step, ::step]
    target = centres + motion
    with np.errstate(invalid="ignore"):
        sel = (np.isfinite(motion).all(-1) & np.isfinite(cur)
               & (np.hypot(motion[..., 0], motion[..., 1]) >= WARP_MIN_MOTION_PX)
               & (target[..., 0] >= 0.5) & (target[..., 0] <= W - 0.5)
               & (target[..., 1] >= 0.5) & (target[..., 1] <= H - 0.5))
    if hidden is not None:
        sel &= ~hidden
    count = int(sel.sum())
    if count < max(min(WARP_MIN_PIXELS[0], sel.size // 4), WARP_MIN_PIXELS[1] * sel.size, 16):
        return None
    centres, motion, cur = centres[sel], motion[sel], cur[sel]
    still = prev[::step, ::step][sel]
    changed = np.abs(still - cur) >= WARP_MIN_CHANGE
    errors = {s: np.abs(bilinear_sample(prev, centres + s * motion) - cur) for s in (1.0, 0.0, *WARP_SCALES)}
    if float(errors[0.0].mean()) < WARP_MIN_ERROR:
        return None
    return WarpErrors(all={s: float(e.mean()) for s, e in errors.items()},
                      changed={s: float(e[changed].mean()) for s, e in errors.items()} if changed.any()
                      else None,
                      pixels=count)


def warp_sequence_problems(judged: list[tuple[int, WarpErrors]]) -> Iterator[tuple[int | None, str]]:
    """(frame or None for the whole sequence, message) of the ``motion_warp`` failures of a
    sequence, from (frame, ``warp_errors``) of its judged frames: the frames that a halved,
    doubled or flipped motion explains better (when it does so over the sequence), then
    the sequence if its motion does not explain what changed."""
    if not judged:
        return
    totals = {s: sum(e.all[s] for _, e in judged) for s in (1.0, *WARP_SCALES)}
    best = min(WARP_SCALES, key=lambda s: totals[s])
    if totals[best] < WARP_MIN_MARGIN * totals[1.0]:
        named = False
        for t, e in judged:
            frame_best = min(WARP_SCALES, key=lambda s: e.all[s])
            if e.all[frame_best] < WARP_MIN_MARGIN * e.all[1.0]:
                named = True
                share = e.all[frame_best] / e.all[1.0]
                yield t, (f"motion_hr x {frame_best:g} explains the frame from frame t-1 better than "
                          f"motion_hr itself (error {share:.2f} of it; need >= {WARP_MIN_MARGIN}) on "
                          f"{e.pixels} moving pixels: sign, scale or units are wrong")
        if not named:
            yield None, (f"motion_hr x {best:g} explains the sequence's frames from their previous frames "
                         f"better than motion_hr itself (error {totals[best] / totals[1.0]:.2f} of it over "
                         f"{len(judged)} frames; need >= {WARP_MIN_MARGIN}): sign, scale or units are wrong")
    changed = [(t, e.changed) for t, e in judged if e.changed is not None]
    if changed:
        ratio = sum(e[1.0] for _, e in changed) / sum(e[0.0] for _, e in changed)
        if ratio > WARP_MAX_RATIO:
            worst = sorted(changed, key=lambda j: j[1][0.0] / j[1][1.0])[:3]
            yield None, (f"warping frame t-1 by motion_hr leaves {ratio:.2f} of the error of no warp "
                         f"where the image changed, over {len(changed)} frames (need <= {WARP_MAX_RATIO}); "
                         "worst frames " + ", ".join(f"{t} ({e[1.0] / e[0.0]:.2f})" for t, e in worst)
                         + ": motion vectors do not follow the image")


def _reproject(depth_hr: np.ndarray, view: np.ndarray, proj: np.ndarray, view_prev: np.ndarray,
               proj_prev: np.ndarray, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(motion (h, w, 2), previous depth (h, w)) of a static world: every HR pixel centre
    (every ``step``-th row and column) unprojected at its depth with frame t's camera and
    projected with frame t-1's, minus the centre; and its depth along frame t-1's view
    axis (+inf for sky, whose pixels are directions moved by the camera rotation only)."""
    H, W = depth_hr.shape
    centres = cv.pixel_centres((W, H))[::step, ::step]
    depth_hr = depth_hr[::step, ::step]
    ndc_x, ndc_y = 2.0 * centres[..., 0] / W - 1.0, 1.0 - 2.0 * centres[..., 1] / H
    P, V = np.asarray(proj, np.float64), np.asarray(view, np.float64)
    sky = np.isposinf(depth_hr)
    z_eye = -np.where(sky | ~np.isfinite(depth_hr), 1.0, depth_hr).astype(np.float64)
    ndc_z = np.where(sky, 1.0, (P[2, 2] * z_eye + P[2, 3]) / (P[3, 2] * z_eye + P[3, 3]))
    ndc = np.stack([ndc_x, ndc_y, ndc_z, np.ones_like(ndc_z)], -1)
    world = ndc @ np.linalg.inv(P @ V).T
    point = world[..., :3] / world[..., 3:]
    eye = ndc @ np.linalg.inv(P).T
    direction = (eye[..., :3] / eye[..., 3:]) @ V[:3, :3]  # eye -> world rotation: R^T
    P_prev, V_prev = np.asarray(proj_prev, np.float64), np.asarray(view_prev, np.float64)
    p_point = cv.project_px(P_prev @ V_prev, point, (W, H))
    clip = direction @ (P_prev[:, :3] @ V_prev[:3, :3]).T
    p_sky = cv.ndc_to_pixel(clip[..., :2] / clip[..., 3:4], (W, H))
    depth_prev = np.where(sky, np.inf, -(point @ V_prev[2, :3] + V_prev[2, 3]))
    return np.where(sky[..., None], p_sky, p_point) - centres, depth_prev


def camera_motion(depth_hr: np.ndarray, view: np.ndarray, proj: np.ndarray, view_prev: np.ndarray,
                  proj_prev: np.ndarray, step: int = 1) -> np.ndarray:
    """(H, W, 2) motion a static world would have: every HR pixel centre unprojected at
    its depth with frame t's camera and projected with frame t-1's, minus the centre.
    Sky (+inf depth) pixels are directions, moved by the camera rotation only. With
    ``step``, only every step-th row and column: (ceil(H / step), ceil(W / step), 2)."""
    return _reproject(depth_hr, view, proj, view_prev, proj_prev, step)[0]


def hidden_in_previous(depth_hr: np.ndarray, depth_prev_hr: np.ndarray, view, proj, view_prev,
                       proj_prev) -> np.ndarray:
    """(h, w) bool, every ``_stride``-th HR row and column: pixels whose point frame t-1 did
    not see. The point is reprojected as a static world (``_reproject``); it was hidden when
    the nearest of the four depth_hr values of frame t-1 around its previous position is
    more than ``WARP_OCCLUSION_TOL`` nearer than the point was. (Moving objects are judged
    as if static: for them the mask is arbitrary, never a function of motion_hr.)"""
    H, W = depth_hr.shape
    step = _stride((H, W))
    with np.errstate(all="ignore"):
        motion, expected = _reproject(depth_hr, view, proj, view_prev, proj_prev, step)
        pos = cv.pixel_centres((W, H))[::step, ::step] + motion
        (x0, y0, x1, y1), _ = bilinear_corners(np.nan_to_num(pos), (W, H))
        before = np.minimum.reduce([depth_prev_hr[y, x] for y in (y0, y1) for x in (x0, x1)])
        return before < (1.0 - WARP_OCCLUSION_TOL) * expected


def camera_agreement(motion_hr: np.ndarray, depth_hr: np.ndarray, view, proj, view_prev,
                     proj_prev) -> tuple[float, int] | None:
    """(fraction of pixels whose motion_hr is the camera's, pixels compared), or None
    when fewer than 16 pixels have finite motion and depth (or sky). Looks at every
    k-th row and column, as ``warp_errors`` does."""
    step = _stride(depth_hr.shape)
    with np.errstate(all="ignore"):
        expected = camera_motion(depth_hr, view, proj, view_prev, proj_prev, step)
        motion_hr, depth_hr = motion_hr[::step, ::step], depth_hr[::step, ::step]
        ok = (np.isfinite(motion_hr).all(-1) & (np.isfinite(depth_hr) | np.isposinf(depth_hr))
              & np.isfinite(expected).all(-1))
        count = int(ok.sum())
        if count < 16:
            return None
        err = np.linalg.norm(np.asarray(motion_hr, np.float64) - expected, axis=-1)
        tol = CAMERA_TOL_PX[0] + CAMERA_TOL_PX[1] * np.linalg.norm(expected, axis=-1)
        return float((err <= tol)[ok].mean()), count


def lr_hr_agreement(motion_lr: np.ndarray, motion_hr: np.ndarray, depth_lr: np.ndarray, depth_hr: np.ndarray,
                    jitter_px: np.ndarray, ratio) -> tuple[float, int] | None:
    """(fraction of smooth LR pixels whose motion matches HR's, pixels compared), or
    None when fewer than 16 LR pixels are away from depth edges (``LR_HR_*``). ``ratio``:
    HR / LR, a number or per axis (x, y)."""
    h, w = depth_lr.shape
    H, W = depth_hr.shape
    ratio = np.broadcast_to(np.asarray(ratio, np.float64), (2,))
    pos = (cv.pixel_centres((w, h)) + np.asarray(jitter_px, np.float64)) * ratio
    (x0, y0, x1, y1), _ = bilinear_corners(pos, (W, H))  # the four HR pixels bilinear_sample reads
    around = np.stack([depth_hr[y, x] for y in (y0, y1) for x in (x0, x1)], -1).astype(np.float64)
    d_lr = np.asarray(depth_lr, np.float64)
    with np.errstate(all="ignore"):
        lo, hi = around.min(-1), around.max(-1)
        sky = np.isposinf(d_lr) & np.isposinf(around).all(-1)
        surface = (np.isfinite(around).all(-1) & np.isfinite(d_lr) & (hi - lo <= LR_HR_SMOOTH[0] * lo)
                   & (np.abs(np.clip(d_lr, lo, hi) - d_lr) <= LR_HR_SMOOTH[1] * d_lr))
        m_hr = bilinear_sample(np.nan_to_num(np.asarray(motion_hr, np.float64)), pos) / ratio
        m_lr = np.asarray(motion_lr, np.float64)
        hr_ok = np.isfinite(motion_hr).all(-1)
        ok = ((sky | surface) & np.isfinite(m_lr).all(-1)
              & hr_ok[y0, x0] & hr_ok[y0, x1] & hr_ok[y1, x0] & hr_ok[y1, x1])
        count = int(ok.sum())
        if count < 16:
            return None
        err = np.linalg.norm(m_lr - m_hr, axis=-1)
        tol = LR_HR_TOL_PX[0] + LR_HR_TOL_PX[1] * np.linalg.norm(m_lr, axis=-1)
        return float((err <= tol)[ok].mean()), count


def describe_thresholds() -> str:
    """The thresholds, one line each, for ``datagen validate --help``."""
    return "\n".join([
        f"  motion_warp    e(s) = mean |frame t-1 at pixel + s * motion_hr - frame t| on HR pixels moving "
        f">= {WARP_MIN_MOTION_PX} px",
        f"                 that frame t-1 saw (depth {WARP_OCCLUSION_TOL:.0%}), frames of >= "
        f"{WARP_MIN_PIXELS[0]} such pixels (a quarter in tiny images); per sequence:",
        f"                 sum e(1) <= {WARP_MAX_RATIO} sum e(0) where the image changed by >= "
        f"{WARP_MIN_CHANGE}, and sum e(s) >= {WARP_MIN_MARGIN} sum e(1)",
        f"                 for s = {', '.join(f'{x:g}' for x in WARP_SCALES)} (failing frames named)",
        f"  motion_camera  >= {CAMERA_MIN_AGREE:.0%} of pixels within {CAMERA_TOL_PX[0]} px + "
        f"{CAMERA_TOL_PX[1]:.0%} of the static-world reprojection",
        f"  motion_lr_hr   >= {LR_HR_MIN_AGREE:.0%} of LR pixels off depth edges within "
        f"{LR_HR_TOL_PX[0]} px + {LR_HR_TOL_PX[1]:.0%} of motion_hr / ratio at the jittered sample",
    ])
