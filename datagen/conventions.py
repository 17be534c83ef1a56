"""Pixel, motion, depth, jitter and matrix conventions (SPEC §4), in one place.

Every module that produces or consumes a buffer takes its conventions from here,
and docs/conventions.md restates them with a worked example.

- Arrays are (y, x, channel) per frame; row 0 is the top of the image. Pixel
  (x, y) covers [x, x+1) x [y, y+1); its centre is (x + 0.5, y + 0.5); x right,
  y down.
- Matrices are numpy (4, 4) float arrays for column vectors (``p' = M @ p``),
  OpenGL clip space (NDC z in [-1, 1]); world is metres, y up, and a camera looks
  down its -z axis. Upload to GLSL with ``gl_bytes(M)`` (column-major).
- LR size is HR / scale rounded to whole pixels on each axis, as upscalers do
  (1.7x of 1920x1080 is 1129x635); the exact per-axis ratio HR / LR (``ratio``) is
  what every LR <-> HR mapping uses, and its x component sets the jitter phase
  count and the mip bias (as FSR 2 and DLSS take the width ratio).
- Jitter is Halton(2, 3) in LR pixels with ``ceil(8 * ratio_x**2)`` phases; the LR
  sample of pixel (x, y) is taken at (x + 0.5 + jx, y + 0.5 + jy).
- Motion is ``p_prev - p_cur`` in pixels of the buffer's own resolution, y down,
  for the surface point seen at the pixel, both positions unjittered, so that
  ``prev_pixel = pixel + motion``.
- Depth is the linear eye-space distance along the view axis (``-z_eye``), metres;
  the sky is +inf.
"""

from __future__ import annotations

import math
import re

import numpy as np

from datagen.errors import ConfigError

SCALES: tuple[float, ...] = (1.3, 1.5, 1.7, 2.0, 3.0, 4.0)
"""LR = HR / scale rounded (``lr_size``), one of these: the DLSS/FSR/XeSS quality modes
1.5 (Quality), 1.7 (Balanced), 2 (Performance), 3 (Ultra Performance), plus 1.3 and 4."""

SPP_RANGE: tuple[int, int] = (8, 256)
"""Samples per HR pixel a user may ask for (tests may go lower)."""

REFERENCE_RESOLVES: tuple[str, ...] = ("box", "karis")
"""How the HR samples of a pixel are resolved: their mean, or Karis's (NSS's) mean."""

MOTION_SIGN = "p_prev - p_cur"
MOTION_UNITS = "pixels of the buffer's own resolution, y down"
DEPTH_KIND = "linear eye-space depth along the view axis (-z_eye), metres; sky = +inf"


def halton(index: int, base: int) -> float:
    """Radical inverse of ``index`` (>= 1 for a non-zero value) in ``base``."""
    result, f = 0.0, 1.0
    while index > 0:
        f /= base
        result += f * (index % base)
        index //= base
    return result


def jitter_phase_count(ratio: float) -> int:
    """N = ceil(8 * ratio^2) for the x ratio HR width / LR width: 14 at 1.3, 18 at 1.5,
    24 at 1.7, 32 at 2, 72 at 3, 128 at 4 when the ratio is exact (a rounded LR size
    moves it: 1280 / 853 gives 19)."""
    return math.ceil(8.0 * ratio * ratio - 1e-9)


def jitter_px(frame_index: int, ratio: float) -> tuple[float, float]:
    """Sub-pixel jitter (jx, jy) of frame ``frame_index``, in LR pixels, y down, for the
    x ratio HR width / LR width (``ratio_of``).

    Each component lies in (-0.5, 0.5) and the pair is never (0, 0).
    """
    k = frame_index % jitter_phase_count(ratio) + 1
    return halton(k, 2) - 0.5, halton(k, 3) - 0.5


def mip_bias(ratio: float) -> float:
    """Texture LOD bias for the LR pass: log2(1 / ratio) - 1 (sharper than LR alone), for
    the x ratio HR width / LR width."""
    return math.log2(1.0 / ratio) - 1.0


_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def parse_size(text: str | tuple[int, int], what: str = "size") -> tuple[int, int]:
    """A frame size (width, height) from "WIDTHxHEIGHT" ("640x360") or a (width, height)
    pair; ConfigError naming ``what`` (a flag or key, e.g. "--res") unless both are
    integers >= 1. The one parser of sizes: flags, recipe keys and tool options."""
    if isinstance(text, str):
        match = _SIZE.fullmatch(text)
        size = (int(match[1]), int(match[2])) if match else None
    elif isinstance(text, tuple | list) and len(text) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in text):
        size = (text[0], text[1])
    else:
        size = None
    if size is None or min(size) < 1:
        raise ConfigError(f"{what} {text!r} is not WIDTHxHEIGHT of positive integers, e.g. 640x360")
    return size


def format_size(size: tuple[int, int]) -> str:
    """(640, 360) -> "640x360": how sizes are written in recipes, flags and store attrs."""
    return f"{size[0]}x{size[1]}"


def lr_size(hr_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """LR (width, height) for an HR (width, height): HR / scale rounded half up on each
    axis, at least 1 (1.7x of 1920x1080 is 1129x635). FSR 2's helper truncates instead,
    which gives one pixel less where the fraction is >= 0.5 (1.3x of 1280x720: ours
    985x554, FSR 2 984x553)."""
    return tuple(max(1, math.floor(n / scale + 0.5)) for n in hr_size)


def ratio_of(hr_size: tuple[int, int], lr_size: tuple[int, int]) -> tuple[float, float]:
    """The exact per-axis ratio (HR width / LR width, HR height / LR height): what maps
    LR pixel positions and motion to HR ones (``p_hr = p_lr * ratio``). Equal to the
    nominal scale only where HR / scale is whole."""
    return hr_size[0] / lr_size[0], hr_size[1] / lr_size[1]


def grid_step(hr: int, lr: int) -> tuple[int, int]:
    """(HR step, LR step) along one axis of ``hr`` HR and ``lr`` LR pixels: the smallest
    spans on which the two grids line up (HR / gcd, LR / gcd): (2, 1) for 640 -> 320,
    (3, 2) for 1920 -> 1280, (1920, 1129) for 1920 -> 1129 (only the whole axis).
    Aligned crops start and end on multiples of them."""
    g = math.gcd(hr, lr)
    return hr // g, lr // g


def transform_px_vector(v, hflip: bool = False, vflip: bool = False, quarter_turns: int = 0) -> np.ndarray:
    """A pixel-space vector (..., 2) (x right, y down: motion, jitter) under the image
    transform "flip left-right if ``hflip``, then top-bottom if ``vflip``, then turn
    ``quarter_turns`` x 90 degrees counter-clockwise as seen on screen" (``np.rot90``).

    A flip negates its component; one counter-clockwise quarter turn maps (vx, vy) to
    (vy, -vx): right becomes up, down becomes right.
    """
    out = np.array(v, dtype=np.float64)
    if hflip:
        out[..., 0] = -out[..., 0]
    if vflip:
        out[..., 1] = -out[..., 1]
    for _ in range(quarter_turns % 4):
        out = np.stack([out[..., 1], -out[..., 0]], -1)
    return out


def perspective(fov_y_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    """OpenGL perspective projection (like gluPerspective), float64 (4, 4)."""
    f = 1.0 / math.tan(math.radians(fov_y_deg) / 2.0)
    m = np.zeros((4, 4))
    m[0, 0] = f / aspect
    m[1, 1] = f
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2.0 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def device_depth(depth, near: float, far: float) -> np.ndarray:
    """Linear depth (metres along the view axis) to the window-space depth-buffer
    value that ``perspective(..., near, far)`` gives with glDepthRange(0, 1):
    ``ndc_z * 0.5 + 0.5`` with ``ndc_z = (f + n) / (f - n) - 2 f n / ((f - n) depth)``.

    0 at ``near``, 1 at ``far``; depths beyond ``far``, the sky's +inf included,
    give 1.0 (the cleared far plane, where the renderer draws the sky).
    """
    d = np.asarray(depth, dtype=np.float64)
    ndc_z = (far + near) / (far - near) - 2.0 * far * near / ((far - near) * d)
    return np.minimum(ndc_z * 0.5 + 0.5, 1.0)


def linear_depth(device, near: float, far: float) -> np.ndarray:
    """Inverse of ``device_depth`` for values in [0, 1]: metres along the view axis
    (1.0 gives ``far``: the depth buffer cannot tell the sky from the far plane)."""
    ndc_z = np.asarray(device, dtype=np.float64) * 2.0 - 1.0
    return 2.0 * far * near / ((far + near) - ndc_z * (far - near))


def nss_motion_uv(motion_px, size: tuple[int, int]) -> np.ndarray:
    """datagen motion (``p_prev - p_cur`` in pixels of a (w, h) buffer, y down) to Arm
    NSS motion: UV units of that buffer, **current minus previous**, y down, i.e.
    ``-motion / (w, h)``. (..., 2) float64."""
    w, h = size
    return -np.asarray(motion_px, dtype=np.float64) / np.array([w, h], dtype=np.float64)


def normalized_jitter(jitter, lr_size: tuple[int, int]) -> np.ndarray:
    """Jitter in LR pixels (..., 2) divided by the LR (w, h): NSS's
    ``NormalizedPerRatioJitter``. float64."""
    w, h = lr_size
    return np.asarray(jitter, dtype=np.float64) / np.array([w, h], dtype=np.float64)


def fov_rad(proj: np.ndarray) -> tuple[float, float]:
    """(horizontal, vertical) full field of view of a ``perspective`` projection, radians,
    as seen on the image: also for a projection that augmentation flipped (a diagonal
    term negated), turned by quarter turns (x and y rows swapped) or cropped (scaled)."""
    p = np.asarray(proj, dtype=np.float64)
    return (2.0 * math.atan(1.0 / math.hypot(p[0, 0], p[0, 1])),
            2.0 * math.atan(1.0 / math.hypot(p[1, 0], p[1, 1])))


def near_far(proj: np.ndarray) -> tuple[float, float]:
    """(near, far) plane distances, metres, of a ``perspective`` projection."""
    p = np.asarray(proj, dtype=np.float64)
    return p[2, 3] / (p[2, 2] - 1.0), p[2, 3] / (p[2, 2] + 1.0)


def view_projection_rows(proj: np.ndarray, view: np.ndarray) -> list[float]:
    """``proj @ view`` (column vectors, world to clip) flattened row by row: element
    ``[4 i + j]`` is ``M[i, j]``. That is the same 16 numbers as the column-major
    data of the row-vector matrix ``M.T`` (DirectX/Unreal habit), which NSS's
    ``ViewProjection`` holds."""
    m = np.asarray(proj, dtype=np.float64) @ np.asarray(view, dtype=np.float64)
    return m.reshape(-1).tolist()


def jittered(proj: np.ndarray, jitter: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    """``proj`` sheared so that pixel centres sample at centre + jitter.

    A point whose unjittered projection lands at pixel position p appears at
    p - jitter, so the rasteriser's sample at centre c sees the point at c + jitter.
    In NDC (y up) that is a shift of (-2 jx / w, +2 jy / h), applied in clip space
    so that it survives the perspective divide.
    """
    jx, jy = jitter
    w, h = size
    shift = np.eye(4)
    shift[0, 3] = -2.0 * jx / w
    shift[1, 3] = 2.0 * jy / h
    return shift @ proj


def exr_world_to_camera(view: np.ndarray) -> np.ndarray:
    """OpenEXR's standard ``worldToCamera`` attribute of a camera with world-to-camera
    ``view`` (ours: column vectors, looking down -z): a (4, 4) float64 matrix for Imath's
    **row** vectors (``p_cam = p_world @ M``) into a left-handed camera space with x
    right, y up and +z the viewing direction (so ``z`` = our ``depth``). Stored as an
    M44f, element [i][j] = ``M[i, j]``, which OpenImageIO reads as ``worldtocamera``."""
    flip_z = np.diag([1.0, 1.0, -1.0, 1.0])
    return (flip_z @ np.asarray(view, dtype=np.float64)).T


def exr_world_to_ndc(proj: np.ndarray, view: np.ndarray) -> np.ndarray:
    """OpenEXR's standard ``worldToNDC`` attribute (RenderMan NDC): a (4, 4) float64
    matrix for row vectors such that ``h = p_world @ M`` and ``h[:2] / h[3]`` is the
    point's image position with (0, 0) the top-left and (1, 1) the bottom-right corner
    of the image, y down; times (w, h) it is our pixel position. ``z`` is to be
    discarded. Pass the projection the image was rendered with (for an LR image the
    jittered one, ``jittered(proj, jitter_px, lr_size)``)."""
    to_unit = np.eye(4)  # NDC x, y in [-1, 1] (y up) to [0, 1] (y down), on homogeneous clip coordinates
    to_unit[0], to_unit[1] = (0.5, 0.0, 0.0, 0.5), (0.0, -0.5, 0.0, 0.5)
    return (to_unit @ np.asarray(proj, dtype=np.float64) @ np.asarray(view, dtype=np.float64)).T


def crop_flip_ndc(size: tuple[int, int], crop: tuple[int, int, int, int] | None = None,
                  hflip: bool = False, vflip: bool = False) -> np.ndarray:
    """(4, 4) clip-space transform A such that ``A @ proj`` projects onto the pixel grid
    of a (W, H) = ``size`` image cropped to ``crop`` = (x, y, width, height) (pixels, y
    down) and then flipped left-right and/or top-bottom. Any resolution of the same
    aspect gives the same A for the same crop fractions."""
    W, H = size
    a = np.eye(4)
    if crop:
        x0, y0, w, h = crop
        a[0, 0], a[0, 3] = W / w, (W - 2 * x0 - w) / w
        a[1, 1], a[1, 3] = H / h, (h - H + 2 * y0) / h
    return np.diag([-1.0 if hflip else 1.0, -1.0 if vflip else 1.0, 1.0, 1.0]) @ a


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World-to-camera (view) matrix of a camera at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    if np.linalg.norm(right) < 1e-9:  # looking straight along `up`: pick any right
        right = np.cross(fwd, (1.0, 0.0, 0.0) if abs(fwd[0]) < 0.9 else (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    true_up = np.cross(right, fwd)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = right, true_up, -fwd
    view[:3, 3] = -view[:3, :3] @ eye
    return view


def ndc_to_pixel(ndc_xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """NDC (x right, y up, [-1, 1]) to pixel coordinates (x right, y down, [0, size])."""
    w, h = size
    ndc_xy = np.asarray(ndc_xy, dtype=np.float64)
    return np.stack([(ndc_xy[..., 0] + 1.0) * 0.5 * w, (1.0 - ndc_xy[..., 1]) * 0.5 * h], -1)


def project_px(view_proj: np.ndarray, points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """World points (..., 3) to pixel coordinates (..., 2) through ``proj @ view``."""
    p = np.asarray(points, dtype=np.float64)
    clip = p @ view_proj[:3, :3].T + view_proj[:3, 3]
    w = p @ view_proj[3, :3] + view_proj[3, 3]
    return ndc_to_pixel(clip[..., :2] / w[..., None], size)


def pixel_centres(size: tuple[int, int]) -> np.ndarray:
    """(h, w, 2) array of pixel centres (x + 0.5, y + 0.5)."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    return np.stack([xs, ys], -1)


def stratified_offsets(spp: int, seed: int = 0) -> np.ndarray:
    """(spp, 2) sample offsets in [0, 1)^2 inside a pixel: a rows x cols grid
    (rows = largest divisor of spp <= sqrt(spp)) with one jittered sample per cell.

    The pattern is fixed for a given (spp, seed), so references are deterministic.
    """
    rows = max(d for d in range(1, math.isqrt(spp) + 1) if spp % d == 0)
    cols = spp // rows
    rng = np.random.default_rng(seed)
    gy, gx = np.divmod(np.arange(spp), cols)
    u = rng.random((spp, 2))
    return np.stack([(gx + u[:, 0]) / cols, (gy + u[:, 1]) / rows], -1)


def gl_bytes(m: np.ndarray) -> bytes:
    """A (4, 4) matrix as the column-major float32 bytes a GLSL mat4 expects."""
    return np.ascontiguousarray(np.asarray(m, dtype=np.float32).T).tobytes()


def karis(color) -> np.ndarray:
    """Karis's tonemap as Arm's NSS ground truth uses it: ``c / (1 + max(r, g, b))`` of
    (..., 3) linear colour (negative values clamped to 0), float64, each channel < 1."""
    c = np.maximum(np.asarray(color, dtype=np.float64), 0.0)
    return c / (1.0 + c.max(axis=-1, keepdims=True))


def karis_inverse(mapped) -> np.ndarray:
    """Inverse of ``karis``: ``m / (1 - max(r, g, b))``."""
    m = np.asarray(mapped, dtype=np.float64)
    return m / np.maximum(1.0 - m.max(axis=-1, keepdims=True), 1.0 / 65504.0)


def resolve_samples(samples, resolve: str = "box") -> np.ndarray:
    """The reference of (spp, ..., 3) samples of a pixel: their mean ("box"), or
    ``karis_inverse`` of the mean of their ``karis`` ("karis"). What the renderer's
    accumulation pass computes, in numpy."""
    samples = np.asarray(samples, dtype=np.float64)
    if resolve == "box":
        return samples.mean(axis=0)
    return karis_inverse(karis(samples).mean(axis=0))


def conventions_block(scale: float, spp: int, near: float, far: float, reference_resolve: str = "box",
                      *, ratio: tuple[float, float] | None = None) -> dict:
    """The §4 conventions restated for store attrs and sequence.json; ``ratio`` is the
    exact per-axis HR / LR ratio (``ratio_of``; default (scale, scale))."""
    ratio = (float(scale), float(scale)) if ratio is None else tuple(float(r) for r in ratio)
    resolved = ("box filter (mean)" if reference_resolve == "box" else
                "Karis resolve: mean of c / (1 + max(r,g,b)) over the pixel's samples, then m / (1 - max(m))")
    return {
        "array_layout": "(frame, y, x, channel); row 0 is the top; pixel centre (x+0.5, y+0.5)",
        "color": "linear scene-referred HDR RGB, Rec.709 primaries, not exposure-scaled",
        "jitter": "Halton(2,3), jitter_px = (halton(i % N + 1, 2) - 0.5, "
        "halton(i % N + 1, 3) - 0.5) in LR pixels; LR sample at (x+0.5+jx, y+0.5+jy)",
        "jitter_phase_count": jitter_phase_count(ratio[0]),
        "mip_bias_lr": mip_bias(ratio[0]),
        "ratio": list(ratio),
        "lr_size_rule": "LR = floor(HR / scale + 0.5) per axis, at least 1; ratio = HR / LR per axis, "
                        "used for every LR <-> HR mapping; jitter phases and mip bias from ratio x",
        "motion": f"{MOTION_SIGN}, {MOTION_UNITS}; prev_pixel = pixel + motion; unjittered",
        "depth": DEPTH_KIND,
        "matrices": "OpenGL, column vectors, unjittered; view = world-to-camera",
        "reference": f"{spp} stratified samples per pixel, {resolved}, float32 accumulation",
        "scale": scale,
        "spp": spp,
        "filter": "box",
        "reference_resolve": reference_resolve,
        "near": near,
        "far": far,
    }
