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

The motion checks' maths, thresholds and the measurements behind them (the ``WARP_*``,
``CAMERA_*`` and ``LR_HR_*`` constants) are in ``datagen.store.validate_motion``.

Frame 0 and frames with ``camera_cut`` have no previous frame in the store to
compare with, so the two checks that need one skip them. Sequences are read one
block of ``frames_per_shard`` frames at a time, keeping one previous frame: memory
is bounded whatever the sequence length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import zarr

from datagen import conventions as cv
from datagen.errors import one_line
from datagen.store import location
from datagen.store.reader import SequenceInfo, Store
from datagen.store.schema import ARRAYS, FRAME_NAMES, SCHEMA_VERSION, STEP_NAMES, ArraySpec
from datagen.store.validate_motion import (
    CAMERA_MIN_AGREE,
    LR_HR_MIN_AGREE,
    WarpErrors,
    camera_agreement,
    hidden_in_previous,
    lr_hr_agreement,
    warp_errors,
    warp_sequence_problems,
)
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

JITTER_TOL_PX = 1e-6
"""|jitter_px - Halton| allowed, LR pixels (the stored values are float32)."""

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
    extra = extra_ratio_stores(store)
    for at in extra:
        yield from at_scale(at, check_extra_schema(at))
    if sequences is None:
        sequences = [s for split in store.splits for s in store.sequences(split)]
    for info in sequences:
        if not info.complete:
            yield Failure("complete", "not complete (never written, or its write was interrupted); "
                          "run the build again to write it", info.split, info.index)
        else:
            yield from check_sequence(store, info, tally)
            for at in extra:
                yield from at_scale(at, check_ratio_sequence(at, info, Tally()))
        if progress is not None:
            progress()


# -- several ratios -------------------------------------------------------------------------------


def extra_ratio_stores(store: Store) -> list[Store]:
    """``store`` opened at each of its extra LR ratios (none for a single-ratio store)."""
    return [Store(store.path, store.engine, scale) for scale in store.scales[1:]]


def at_scale(store: Store, failures: Iterable[Failure]) -> Iterator[Failure]:
    """``failures`` of ``store`` opened at an extra ratio, each naming that ratio (``[scale 1.5]``
    at the end of the message)."""
    for failure in failures:
        yield dataclasses.replace(failure, message=f"{failure.message} [scale {store.scale:g}]")


def check_ratio_sequence(store: Store, info: SequenceInfo, tally: Tally) -> Iterator[Failure]:
    """``check_sequence``'s checks of what an extra ratio has of its own, on ``store``
    opened at that ratio: its jitter, the values of its LR arrays and their agreement
    with the (shared) HR motion. The HR checks ran once, at the primary ratio."""
    from datagen.store import ratios

    T = store.frames

    def fail(check: str, message: str, t: int | None = None) -> Failure:
        return Failure(check, message, info.split, info.index, None if t is None else (t, t))

    jitter, failure = _read(store, info, "jitter_px", 0, T)
    if failure:
        yield failure
    for t in range(T if jitter is not None else 0):
        yield from (fail(c, m, t) for c, m in _finite_problems("jitter_px", jitter[t]))
        want, got = expected_jitter(t, store.ratio[0], info.meta), jitter[t].astype(np.float64)
        if not np.all(np.abs(got - want) <= JITTER_TOL_PX):
            yield fail("jitter", f"jitter_px ({got[0]:.6f}, {got[1]:.6f}), expected Halton ({want[0]:.6f}, "
                       f"{want[1]:.6f}) at scale {store.scale:g} (HR / LR width ratio {store.ratio[0]:.6g})"
                       f"{_augmentation_note(info.meta)}", t)
    own = [name for name in FRAME_NAMES if name in ratios.RATIO_NAMES]
    block = store.layout.frames_per_shard
    for start in range(0, T, block):
        length = min(block, T - start)
        data = {}
        for name in (*own, "motion_hr", "depth_hr"):
            data[name], failure = _read(store, info, name, start, length)
            if failure:
                yield failure
        for t in range(start, start + length):
            cur = {name: None if arr is None else arr[t - start] for name, arr in data.items()}
            for name in own:
                if cur[name] is not None:
                    yield from (fail(c, m, t) for c, m in _finite_problems(name, cur[name]))
            yield from (fail(c, m, t) for c, m in frame_value_problems({n: cur[n] for n in own}))
            cur.update(jitter_px=None if jitter is None else jitter[t], camera_cut=None, t=t)
            for check, message in _motion_problems(store.ratio, cur, None, tally, []):
                yield fail(check, message, t)


def check_extra_schema(store: Store) -> Iterator[Failure]:
    """The conventions and arrays of the extra ratio ``store`` is opened at: its recorded
    jitter phases, LR size and ratio, and every array of its subgroup in every split."""
    from datagen.store import ratios

    entry = ratios.find(store.attrs, store.scale)
    want_phases = cv.jitter_phase_count(store.ratio[0])
    if entry.get("jitter_phase_count") != want_phases:
        yield Failure("schema", f"jitter_phase_count {entry.get('jitter_phase_count')}, expected "
                      f"ceil(8 * ratio_x^2) = {want_phases}")
    if tuple(entry.get("lr_size", ())) != cv.lr_size(store.hr_size, store.scale):
        yield Failure("schema", f"lr_size {entry.get('lr_size')} is not HR {list(store.hr_size)} / "
                      f"{store.scale:g} rounded to whole pixels")
    for split in store.splits:
        count = store.attrs["store"]["splits"][split]
        try:
            group = store.group(split)[entry["group"]]
        except Exception as exc:
            yield Failure("schema", f"cannot open the group {entry['group']}: {one_line(exc)}", split)
            continue
        present = set(group.array_keys())
        for spec in ratios.RATIO_ARRAYS:
            if spec.name not in present:
                yield Failure("schema", f"array {entry['group']}/{spec.name} is missing", split)
                continue
            problem = _array_problem(group[spec.name], spec, (count, *spec.shape(store.sizes)))
            if problem:
                yield Failure("schema", f"{entry['group']}/{spec.name} {problem}", split)


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
    warp_judged: list[tuple[int, WarpErrors]] = []
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
    for t, message in warp_sequence_problems(warp_judged):
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
    could judge it (the warp is judged per sequence: ``warp_sequence_problems``)."""
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
