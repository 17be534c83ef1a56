"""What ``datagen validate`` checks (SPEC §6), as a generator of ``Failure`` records.

One record per failed check, naming the split, sequence and frame. The checks
(``CHECKS`` has a line on each):

- ``schema``: root attrs, split groups, and every array's dtype, shape and
  dimension names against ``datagen.store.schema`` (read both from the
  consolidated metadata and from each array's own zarr.json).
- ``complete``: every sequence's ``complete`` flag is true. Sequences that are
  not complete are listed and not read further (they may hold anything).
- ``readable``: every chunk of a complete sequence decodes (a truncated or
  damaged shard fails its index checksum).
- ``nan``, ``inf``: no NaN in any float array; +inf only in ``depth_*``, and
  -inf nowhere.
- ``blank``, ``range``, ``object_id``: a frame of zeros, values out of their range,
  object ids that disagree with depth (``datagen.store.values``).
- ``jitter``: ``jitter_px[t]`` equals ``conventions.jitter_px(t, ratio_x)``, flipped and
  turned as the sequence's recorded augmentation says (``meta["augmentation"]``:
  ``hflip``, ``vflip``, ``quarter_turns``; see ``conventions.transform_px_vector``).
- ``motion_warp``: warping HR frame t-1 by ``motion_hr`` must explain what changed
  from frame t-1 to t far better than no warp, and better than half, twice or minus
  the motion would, judged over the sequence on the static world that both frames
  see (pixels hidden in frame t-1, by depth and the cameras, are left out).
- ``motion_camera``: a good part of every frame moves as depth_hr and the cameras
  of frames t-1 and t say a static world moves (moving objects do not).
- ``motion_lr_hr``: ``motion_lr`` is ``motion_hr / ratio`` at the LR sample positions,
  ratio the exact per-axis HR / LR size ratio (the LR size is HR / scale rounded).

Thresholds and the measurements behind them are the ``WARP_*``, ``CAMERA_*`` and
``LR_HR_*`` constants.

Frame 0 and frames with ``camera_cut`` have no previous frame in the store to
compare with, so the two checks that need one skip them. Sequences are read one
block of ``frames_per_shard`` frames at a time, keeping one previous frame: memory
is bounded whatever the sequence length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import zarr

from datagen import conventions as cv
from datagen.errors import one_line
from datagen.reproject import bilinear_corners, bilinear_sample
from datagen.store import location
from datagen.store.reader import SequenceInfo, Store
from datagen.store.schema import ARRAYS, FRAME_NAMES, SCHEMA_VERSION, STEP_NAMES, ArraySpec
from datagen.store.values import frame_value_problems, range_problems

CHECKS: dict[str, str] = {
    "schema": "root attrs, split groups, array dtypes, shapes and dimension names match the schema",
    "complete": "every sequence's complete flag is true",
    "readable": "every chunk of a complete sequence decodes",
    "nan": "no NaN in any float array",
    "inf": "+inf only in depth (the sky), -inf nowhere",
    "blank": "no colour frame is zero everywhere (a frame never rendered, or wiped)",
    "range": "depth > 0, exposure > 0, unit normals off the sky, invertible view and proj",
    "object_id": "object_id_lr is 0 (sky) exactly where depth_lr is +inf",
    "jitter": "jitter_px equals Halton(2,3) of docs/conventions.md at the store's HR / LR width ratio "
              "(turned by the recorded flips and rotation)",
    "motion_warp": "warping HR frame t-1 by motion_hr explains what changed in frame t far better "
                   "than no warp (and better than half, twice or minus the motion), over the sequence",
    "motion_camera": "motion_hr equals the reprojection by depth_hr and the cameras on the static world",
    "motion_lr_hr": "motion_lr equals motion_hr / ratio (HR / LR per axis) sampled at the LR sample "
                    "positions",
}

MAX_PIXELS = 250_000
"""``motion_warp`` and ``motion_camera`` look at every k-th HR row and column, k the smallest
that keeps to this many pixels (k = 3 at 1920x1080): about 0.5 s per 1080p frame for both."""

JITTER_TOL_PX = 1e-6
"""|jitter_px - Halton| allowed, LR pixels (the stored values are float32)."""

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
class Failure:
    """One failed check; ``frames`` is (first, last) for a block, or None."""

    check: str
    message: str
    split: str | None = None
    sequence: int | None = None
    frames: tuple[int, int] | None = None

    def __str__(self) -> str:
        where = []
        if self.split is not None:
            where.append(self.split if self.sequence is None else f"{self.split} sequence {self.sequence}")
        if self.frames is not None:
            first, last = self.frames
            where.append(f"frame {first}" if first == last else f"frames {first}-{last}")
        return f"{self.check}: {' '.join(where)}: {self.message}" if where else \
            f"{self.check}: {self.message}"


@dataclass
class Tally:
    """What was checked, for the summary line."""

    sequences: int = 0
    """complete sequences read."""
    frames: int = 0
    judged: dict[str, int] = field(default_factory=lambda: {"motion_warp": 0, "motion_camera": 0,
                                                            "motion_lr_hr": 0})
    """frames each motion check could judge (the others had too little motion or no history)."""


def validate(store: Store, sequences: Sequence[SequenceInfo] | None = None,
             progress: Callable[[], object] | None = None, tally: Tally | None = None) -> Iterator[Failure]:
    """Every check on ``store`` (its schema) and on ``sequences`` (default: all of every
    split). ``progress`` is called once per sequence; ``tally`` counts what was read."""
    tally = tally if tally is not None else Tally()
    yield from check_schema(store)
    if sequences is None:
        sequences = [s for split in store.splits for s in store.sequences(split)]
    for info in sequences:
        if not info.complete:
            yield Failure("complete", "not complete (never written, or its write was interrupted); "
                          "run the build again to write it", info.split, info.index)
        else:
            yield from check_sequence(store, info, tally)
        if progress is not None:
            progress()


# -- schema -------------------------------------------------------------------------------------


def check_schema(store: Store) -> Iterator[Failure]:
    attrs = store.attrs
    for key, kind in (("datagen_version", str), ("config", dict), ("conventions", dict)):
        if not isinstance(attrs.get(key), kind):
            yield Failure("schema", f"root attrs lack {key} (a {kind.__name__})")
    conventions = attrs.get("conventions") or {}
    keys = ("scale", "spp", "jitter_phase_count", "filter", "near", "far")
    missing = [k for k in keys if k not in conventions]
    if missing:
        yield Failure("schema", f"root attrs conventions lack {', '.join(missing)}")
    if conventions.get("scale", store.scale) != store.scale:
        yield Failure("schema", f"conventions scale {conventions['scale']} differs from the store's "
                      f"scale {store.scale}")
    want_phases = cv.jitter_phase_count(store.ratio[0])
    if conventions.get("jitter_phase_count", want_phases) != want_phases:
        yield Failure("schema", f"conventions jitter_phase_count {conventions['jitter_phase_count']}, "
                      f"expected ceil(8 * ratio_x^2) = {want_phases} (ratio_x = HR / LR width)")
    pairs = zip(store.lr_size, store.hr_size, strict=True)
    if any(abs(lr - hr / store.scale) > 0.5 + 1e-9 for lr, hr in pairs):
        yield Failure("schema", f"lr_size {list(store.lr_size)} is not HR {list(store.hr_size)} / scale "
                      f"{store.scale:g} rounded to whole pixels")
    recorded = conventions.get("ratio")
    if recorded is not None and not np.allclose(recorded, store.ratio, rtol=1e-9, atol=0):
        yield Failure("schema", f"conventions ratio {recorded} differs from HR / LR {list(store.ratio)}")
    for split in store.splits:
        yield from _check_split(store, split)


def _check_split(store: Store, split: str) -> Iterator[Failure]:
    count = store.attrs["store"]["splits"][split]
    try:
        group = store.group(split)
    except Exception as exc:  # a damaged group: say so and go on with the others
        yield Failure("schema", f"cannot open the group: {one_line(exc)}", split)
        return
    if group.attrs.get("sequences") != count:
        yield Failure("schema", f"group attr sequences = {group.attrs.get('sequences')}, the root attrs "
                      f"say {count}", split)
    present = set(group.array_keys())
    for name in sorted(present - set(ARRAYS)):
        yield Failure("schema", f"array {name} is not in schema version {SCHEMA_VERSION}", split)
    for name, spec in ARRAYS.items():
        if name not in present:
            yield Failure("schema", f"array {name} is missing", split)
            continue
        want_shape = (count, *spec.shape(store.sizes))
        for source, opener in (("", lambda n=name: group[n]),
                               (" (in its zarr.json)", lambda n=name: zarr.open_array(
                                   location.zarr_store(store.path / split / n, read_only=True),
                                   mode="r", use_consolidated=False))):
            try:
                problem = _array_problem(opener(), spec, want_shape)
            except Exception as exc:  # unreadable array metadata
                problem = f"cannot be opened: {one_line(exc)}"
            if problem:
                yield Failure("schema", f"{name}{source} {problem}", split)
                break


def _array_problem(arr, spec: ArraySpec, shape: tuple[int, ...]) -> str | None:
    if spec.dtype == "str":
        dtype_ok = arr.dtype.kind in "OTU"
    else:
        dtype_ok = arr.dtype == np.dtype(spec.dtype)
    if not dtype_ok:
        return f"has dtype {arr.dtype}, expected {spec.dtype}"
    if tuple(arr.shape) != shape:
        return f"has shape {tuple(arr.shape)}, expected {shape}"
    dims = tuple(arr.metadata.dimension_names or ())
    if dims != spec.dimension_names:
        return f"has dimension_names {dims}, expected {spec.dimension_names}"
    return None


# -- one sequence ---------------------------------------------------------------------------------


def _read(store: Store, info: SequenceInfo, name: str, start: int, length: int):
    """(array or None, Failure or None): one array of one block, a decode error reported."""
    try:
        return store.read_window(info.split, info.index, start, length, arrays=[name])[name], None
    except Exception as exc:  # any decode error of damaged data is a finding, not a crash
        cause = getattr(exc, "cause", None) or one_line(exc)  # the reader's BadDataError carries it
        return None, Failure("readable", f"{name} cannot be read: {cause}", info.split, info.index,
                             (start, start + length - 1))


def check_sequence(store: Store, info: SequenceInfo, tally: Tally) -> Iterator[Failure]:
    """Every per-sequence check of one complete sequence."""
    T = store.frames

    def fail(check: str, message: str, t: int | None = None) -> Failure:
        return Failure(check, message, info.split, info.index, None if t is None else (t, t))

    steps = {}
    for name in STEP_NAMES:
        steps[name], failure = _read(store, info, name, 0, T)
        if failure:
            yield failure
    unusable: set[tuple[str, int]] = set()
    """(matrix, frame) pairs the motion checks must not use: not invertible."""
    for t in range(T):
        for name in STEP_NAMES:
            if steps[name] is not None:
                yield from (fail(c, m, t) for c, m in _finite_problems(name, steps[name][t]))
                for c, m in range_problems(name, steps[name][t]):
                    unusable.add((name, t))
                    yield fail(c, m, t)
        if steps["jitter_px"] is not None:
            want = expected_jitter(t, store.ratio[0], info.meta)
            got = steps["jitter_px"][t].astype(np.float64)
            if not np.all(np.abs(got - want) <= JITTER_TOL_PX):
                yield fail("jitter", f"jitter_px ({got[0]:.6f}, {got[1]:.6f}), expected Halton "
                           f"({want[0]:.6f}, {want[1]:.6f}) at scale {store.scale:g} (HR / LR width "
                           f"ratio {store.ratio[0]:.6g})"
                           f"{_augmentation_note(info.meta)}", t)

    block = store.layout.frames_per_shard
    prev: dict | None = None
    warp_judged: list[tuple[int, dict]] = []
    for start in range(0, T, block):
        length = min(block, T - start)
        data = {}
        for name in FRAME_NAMES:
            data[name], failure = _read(store, info, name, start, length)
            if failure:
                yield failure
        for t in range(start, start + length):
            cur = {name: None if arr is None else arr[t - start] for name, arr in data.items()}
            cur.update({name: None if arr is None or (name, t) in unusable else arr[t]
                        for name, arr in steps.items()}, t=t)
            for name in FRAME_NAMES:
                if cur[name] is not None:
                    yield from (fail(c, m, t) for c, m in _finite_problems(name, cur[name]))
            yield from (fail(c, m, t) for c, m in frame_value_problems(cur))
            for check, message in _motion_problems(store.ratio, cur, prev, tally, warp_judged):
                yield fail(check, message, t)
            prev = cur
            tally.frames += 1
    for t, message in _warp_sequence_problems(warp_judged):
        yield fail("motion_warp", message, t)
    tally.sequences += 1


def _geometry(meta: dict) -> tuple[bool, bool, int]:
    aug = meta.get("augmentation") or {}
    return bool(aug.get("hflip", False)), bool(aug.get("vflip", False)), int(aug.get("quarter_turns", 0))


def expected_jitter(t: int, ratio: float, meta: dict) -> np.ndarray:
    """SPEC §4's jitter of frame t at the HR / LR width ratio, flipped and turned by the
    sequence's recorded augmentation."""
    return cv.transform_px_vector(cv.jitter_px(t, ratio), *_geometry(meta))


def _augmentation_note(meta: dict) -> str:
    hflip, vflip, turns = _geometry(meta)
    return (f" after the recorded hflip={hflip}, vflip={vflip}, quarter_turns={turns}"
            if hflip or vflip or turns else "")


def _finite_problems(name: str, value: np.ndarray) -> Iterator[tuple[str, str]]:
    if value.dtype.kind != "f":
        return
    nan = int(np.isnan(value).sum())
    if nan:
        yield "nan", f"{name} has {nan} NaN value{'s' if nan > 1 else ''}"
    neg = int(np.isneginf(value).sum())
    pos = 0 if name.startswith("depth_") else int(np.isposinf(value).sum())
    if neg or pos:
        what = ", ".join(f"{n} {s}inf" for n, s in ((pos, "+"), (neg, "-")) if n)
        allowed = ("only +inf (sky) is allowed in depth" if name.startswith("depth_")
                   else "inf is only allowed in depth")
        yield "inf", f"{name} has {what}; {allowed}"


# -- motion ---------------------------------------------------------------------------------------


def _motion_problems(ratio: tuple[float, float], cur: dict, prev: dict | None, tally: Tally,
                     warp_judged: list) -> Iterator[tuple[str, str]]:
    """(check, message) for the motion checks of one frame (``ratio``: HR / LR per axis);
    skipped parts pass. Appends (frame, ``warp_errors``) to ``warp_judged`` when the warp
    could judge it (the warp is judged per sequence: ``_warp_sequence_problems``)."""
    need = ("motion_hr", "motion_lr", "depth_lr", "depth_hr", "jitter_px")
    if all(cur[n] is not None for n in need):
        result = lr_hr_agreement(cur["motion_lr"], cur["motion_hr"], cur["depth_lr"], cur["depth_hr"],
                                 cur["jitter_px"], ratio)
        if result is not None:
            tally.judged["motion_lr_hr"] += 1
            agree, count = result
            if agree < LR_HR_MIN_AGREE:
                yield "motion_lr_hr", (f"only {agree:.0%} of {count} LR pixels away from depth edges have "
                                       f"motion_lr = motion_hr / ratio at the sample position "
                                       f"(need {LR_HR_MIN_AGREE:.0%})")
    if prev is None or cur["camera_cut"] is None or bool(cur["camera_cut"]):
        return
    if all(x is not None for x in (cur["color_hr"], prev["color_hr"], cur["motion_hr"], cur["exposure"],
                                   prev["exposure"])):
        hidden = None
        if all(x is not None for x in (cur["depth_hr"], prev["depth_hr"], cur["view"], cur["proj"],
                                       prev["view"], prev["proj"])):
            hidden = hidden_in_previous(cur["depth_hr"], prev["depth_hr"], cur["view"], cur["proj"],
                                        prev["view"], prev["proj"])
        errors = warp_errors(prev["color_hr"], cur["color_hr"], cur["motion_hr"], float(prev["exposure"]),
                             float(cur["exposure"]), hidden)
        if errors is not None:
            tally.judged["motion_warp"] += 1
            warp_judged.append((cur["t"], errors))
    if all(x is not None for x in (cur["motion_hr"], cur["depth_hr"], cur["view"], cur["proj"], prev["view"],
                                   prev["proj"])):
        result = camera_agreement(cur["motion_hr"], cur["depth_hr"], cur["view"], cur["proj"], prev["view"],
                                  prev["proj"])
        if result is not None:
            tally.judged["motion_camera"] += 1
            agree, count = result
            if agree < CAMERA_MIN_AGREE:
                yield "motion_camera", (f"only {agree:.0%} of {count} pixels have the motion that depth_hr "
                                        f"and the cameras of frames t-1, t give a static world (need "
                                        f"{CAMERA_MIN_AGREE:.0%})")


def _grey(color: np.ndarray, exposure: float) -> np.ndarray:
    """(H, W) mean of c / (1 + c) over RGB, c = colour * exposure: HDR highlights cannot
    dominate the error, and one channel warps three times faster than three."""
    c = np.maximum(np.asarray(color, np.float32) * np.float32(exposure), 0.0)
    return (c / (1.0 + c)).mean(-1)


def _stride(shape: tuple[int, ...]) -> int:
    """k such that every k-th row and column of an (H, W, ...) image is <= ``MAX_PIXELS``."""
    return max(1, math.ceil(math.sqrt(shape[0] * shape[1] / MAX_PIXELS)))


def warp_errors(prev_hr: np.ndarray, cur_hr: np.ndarray, motion_hr: np.ndarray, prev_exposure: float,
                cur_exposure: float, hidden: np.ndarray | None = None) -> dict | None:
    """The warp errors of one frame, or None when it cannot be judged (``WARP_MIN_*``):
    ``{"all": {s: e(s)}, "changed": {s: e(s)} or None, "pixels": judged}`` for s in 1, 0
    and ``WARP_SCALES`` (e: see ``WARP_MAX_RATIO``), over the judged pixels and over those
    of them that changed (``WARP_MIN_CHANGE``). Colours (H, W, 3) of frames t-1 and t,
    motion (H, W, 2) of frame t; ``hidden`` (every ``_stride``-th row and column) marks the
    pixels frame t-1 did not see (``hidden_in_previous``), left out."""
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
    return {"all": {s: float(e.mean()) for s, e in errors.items()},
            "changed": {s: float(e[changed].mean()) for s, e in errors.items()} if changed.any() else None,
            "pixels": count}


def _warp_sequence_problems(judged: list[tuple[int, dict]]) -> Iterator[tuple[int | None, str]]:
    """(frame or None for the whole sequence, message) of the ``motion_warp`` failures of a
    sequence, from (frame, ``warp_errors``) of its judged frames: the frames that a halved,
    doubled or flipped motion explains better (when it does so over the sequence), then
    the sequence if its motion does not explain what changed."""
    if not judged:
        return
    totals = {s: sum(e["all"][s] for _, e in judged) for s in (1.0, *WARP_SCALES)}
    best = min(WARP_SCALES, key=lambda s: totals[s])
    if totals[best] < WARP_MIN_MARGIN * totals[1.0]:
        named = False
        for t, e in judged:
            frame_best = min(WARP_SCALES, key=lambda s: e["all"][s])
            if e["all"][frame_best] < WARP_MIN_MARGIN * e["all"][1.0]:
                named = True
                share = e["all"][frame_best] / e["all"][1.0]
                yield t, (f"motion_hr x {frame_best:g} explains the frame from frame t-1 better than "
                          f"motion_hr itself (error {share:.2f} of it; need >= {WARP_MIN_MARGIN}) on "
                          f"{e['pixels']} moving pixels: sign, scale or units are wrong")
        if not named:
            yield None, (f"motion_hr x {best:g} explains the sequence's frames from their previous frames "
                         f"better than motion_hr itself (error {totals[best] / totals[1.0]:.2f} of it over "
                         f"{len(judged)} frames; need >= {WARP_MIN_MARGIN}): sign, scale or units are wrong")
    changed = [(t, e["changed"]) for t, e in judged if e["changed"] is not None]
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

