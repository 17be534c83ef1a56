"""Augmentation of rendered sequences: what a recipe's ``[augment]`` table allows
(``AugmentConfig``), the concrete choices drawn for one sequence (``Augmentation``),
and applying them to a ``Frame``.

The choices are drawn in ``plan()`` from generators seeded by the sequence, so they
are a pure function of the build config; the worker only applies them, and the
store records them per sequence (``meta["augmentation"]``).

Geometry, in this order: an aligned crop of HR (LR cropped to the same area), then
a left-right flip, a top-bottom flip, and ``quarter_turns`` x 90 degrees
counter-clockwise as seen on screen (``np.rot90``). Every per-pixel array moves;
motion vectors and jitter turn with the image (``conventions.transform_px_vector``),
and ``proj`` is left-multiplied by the matching NDC transform (``ndc_matrix``), so
that projecting a world point with the stored view and proj lands on the augmented
pixel grid. World normals stay world-space. Colour: white balance and a hue rotation
about the grey axis in linear RGB, then the exposure scale, on ``color_lr`` and
``color_hr`` only (albedo is material data); the stored ``exposure`` is divided by
the same 2**ev so that exposure * colour displays as before.

Temporal stride k renders every stored frame k frame intervals apart (``with_stride``:
the scene's fps divided by k), never by dropping frames, so motion still points at
the previous stored frame and camera cuts land on stored frames.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from datagen import conventions as cv
from datagen.errors import ConfigError
from datagen.frame import Frame
from datagen.scene import Scene
from datagen.scenes.params import is_number

LUMA = np.array([0.2126, 0.7152, 0.0722])
"""Rec.709 luminance weights: white-balance gains keep the luminance of grey."""

FLOAT16_MAX = 65504.0
MAX_EV = 8.0
MAX_STRIDE = 16


@dataclass(frozen=True)
class AugmentConfig:
    """The recipe's ``[augment]`` table: what may be drawn per sequence. The defaults
    change nothing."""

    hflip: float = 0.0
    """probability of a left-right flip (motion.x and jitter.x negated)."""
    vflip: float = 0.0
    """probability of a top-bottom flip (motion.y and jitter.y negated)."""
    rot90: float | tuple[int, ...] = 0.0
    """a probability p of a counter-clockwise quarter-turn rotation, by a number of turns
    drawn from those the frame allows (1, 2, 3 if the stored frame is square, else 2);
    or a list of allowed quarter turns (0-3) drawn uniformly. Odd turns swap width and
    height, so they need a square stored frame (``res`` or ``crop``)."""
    exposure_ev: tuple[float, float] = (0.0, 0.0)
    """[lo, hi]: colour scaled by 2**ev, ev uniform in [lo, hi]; ``exposure`` divided by it."""
    white_balance: float = 0.0
    """max per-channel gain deviation: gains 1 +- this, normalised to keep grey's luminance."""
    hue_deg: float = 0.0
    """max hue rotation about the grey axis in linear RGB, degrees (uniform in +-this)."""
    stride: tuple[int, ...] = (1,)
    """temporal strides to choose from: stored frames are rendered k frame intervals apart."""
    crop: tuple[int, int] | None = None
    """(width, height), written "WxH" in a recipe: an aligned HR crop of this size at a
    random offset (on the steps where the HR and LR grids line up, ``conventions.grid_step``,
    so that LR is whole pixels and keeps the frame's exact HR / LR ratio); the store holds
    the crop size. None ("" in a recipe) = no crop."""

    def __post_init__(self) -> None:
        crop = None if self.crop in ("", None) else cv.parse_size(self.crop, "augment.crop")
        object.__setattr__(self, "crop", crop)

    def crop_size(self) -> tuple[int, int] | None:
        return self.crop

    def recorded(self) -> dict:
        """The table as recorded in a store's attrs (crop as "WxH", "" for none)."""
        return {**dataclasses.asdict(self), "crop": cv.format_size(self.crop) if self.crop else ""}

    def allowed_turns(self, stored_size: tuple[int, int],
                      stored_lr: tuple[int, int] | None = None) -> tuple[int, ...]:
        """The quarter turns that can be drawn (0 included): odd ones only where the
        stored HR frame and its LR are both square."""
        square = stored_size[0] == stored_size[1] and (stored_lr is None or stored_lr[0] == stored_lr[1])
        if isinstance(self.rot90, tuple):
            return self.rot90
        return (0, 1, 2, 3) if square else (0, 2)

    def check(self, render_size: tuple[int, int], scale: float) -> None:
        """ConfigError naming the ``augment.`` key of the first bad value."""
        for key in ("hflip", "vflip"):
            _probability(key, getattr(self, key))
        lo, hi = self.exposure_ev
        if not -MAX_EV <= lo <= hi <= MAX_EV:
            raise ConfigError(f"augment.exposure_ev must be [lo, hi] with -{MAX_EV:g} <= lo <= hi <= "
                              f"{MAX_EV:g} (stops), got {list(self.exposure_ev)}")
        if not 0 <= self.white_balance <= 0.5:
            raise ConfigError(f"augment.white_balance must be a gain deviation in [0, 0.5], "
                              f"got {self.white_balance!r}")
        if not 0 <= self.hue_deg <= 180:
            raise ConfigError(f"augment.hue_deg must be in [0, 180] degrees, got {self.hue_deg!r}")
        if not self.stride or any(not 1 <= k <= MAX_STRIDE for k in self.stride):
            raise ConfigError(f"augment.stride must be a list of strides 1..{MAX_STRIDE}, e.g. [1, 2], "
                              f"got {list(self.stride)}")
        stored, stored_lr = render_size, cv.lr_size(render_size, scale)
        size = self.crop_size()
        if size is not None:
            steps = crop_steps(render_size, scale)
            w, h = size
            if not (0 < w <= render_size[0] and 0 < h <= render_size[1]):
                raise ConfigError(f"augment.crop {w}x{h} does not fit in res "
                                  f"{render_size[0]}x{render_size[1]}; choose a smaller crop")
            if w % steps[0] or h % steps[1]:
                lr = cv.lr_size(render_size, scale)
                raise ConfigError(
                    f"augment.crop {w}x{h}: width must be a multiple of {steps[0]} and height of "
                    f"{steps[1]}, where the HR and LR grids line up at res {render_size[0]}x"
                    f"{render_size[1]}, scale {scale:g} (LR {lr[0]}x{lr[1]}, rounded), so that the LR "
                    "crop is whole pixels; choose such a crop, or a res divisible by the scale")
            stored = size
            stored_lr = lr_crop((0, 0, w, h), render_size, cv.lr_size(render_size, scale))[2:]
        if isinstance(self.rot90, tuple):
            if not self.rot90 or any(k not in (0, 1, 2, 3) for k in self.rot90):
                raise ConfigError(f"augment.rot90 must be a probability or a list of quarter turns "
                                  f"0-3, got {list(self.rot90)}")
            if any(k % 2 for k in self.rot90):
                _check_square("augment.rot90: quarter turns 1 and 3", stored, stored_lr)
        else:
            _probability("rot90", self.rot90)


def _check_square(what: str, stored: tuple[int, int], stored_lr: tuple[int, int]) -> None:
    """Odd quarter turns swap width and height: HR and LR must both be square (one ratio)."""
    if stored[0] != stored[1]:
        raise ConfigError(
            f"{what} swap width and height, and the stored frame {stored[0]}x{stored[1]} is not "
            f"square; allow only [0, 2], or set augment.crop to a square such as "
            f"\"{min(stored)}x{min(stored)}\"")
    if stored_lr[0] != stored_lr[1]:
        raise ConfigError(
            f"{what} swap width and height: the stored frame {stored[0]}x{stored[1]} is square but "
            f"its LR {stored_lr[0]}x{stored_lr[1]} is not (the LR size was rounded per axis); "
            "allow only [0, 2], or choose a res divisible by the scale")


def crop_steps(render_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """(x, y) HR steps on which crops of a frame rendered at ``render_size`` are aligned."""
    lr = cv.lr_size(render_size, scale)
    return cv.grid_step(render_size[0], lr[0])[0], cv.grid_step(render_size[1], lr[1])[0]


def lr_crop(crop_hr: tuple[int, int, int, int], hr_size: tuple[int, int],
            lr_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The LR (x, y, w, h) covering exactly the aligned HR crop (x, y, w, h)."""
    (W, H), (w, h) = hr_size, lr_size
    out = tuple(v * n // N for v, n, N in zip(crop_hr, (w, h, w, h), (W, H, W, H), strict=True))
    if any(v * n % N for v, n, N in zip(crop_hr, (w, h, w, h), (W, H, W, H), strict=True)):
        raise ConfigError(f"crop {crop_hr} of a {W}x{H} frame is not aligned to its {w}x{h} LR grid")
    return out


def _probability(key: str, value) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ConfigError(f"augment.{key} must be a probability in [0, 1], got {value!r}")


def augment_from_dict(table: dict, where: str) -> AugmentConfig:
    """An AugmentConfig from a recipe's ``[augment]`` table (types checked, ranges not:
    see ``AugmentConfig.check``); unknown keys are a ConfigError listing the valid ones."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: augment must be a table, e.g. [augment] hflip = 0.5")
    valid = [f.name for f in dataclasses.fields(AugmentConfig)]
    unknown = set(table) - set(valid)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) augment.{', augment.'.join(sorted(unknown))}; "
                          f"valid: {', '.join(valid)}")
    values = dict(table)

    def bad(key: str, expected: str):
        return ConfigError(f"{where}: augment.{key} must be {expected}, got {values[key]!r}")

    for key in ("hflip", "vflip", "white_balance", "hue_deg"):
        if key in values:
            if not is_number(values[key]):
                raise bad(key, "a number")
            values[key] = float(values[key])
    if "rot90" in values:
        rot = values["rot90"]
        if isinstance(rot, list | tuple):
            if not all(isinstance(k, int) and not isinstance(k, bool) for k in rot):
                raise bad("rot90", "a probability or a list of quarter turns 0-3")
            values["rot90"] = tuple(rot)
        elif is_number(rot):
            values["rot90"] = float(rot)
        else:
            raise bad("rot90", "a probability or a list of quarter turns 0-3")
    if "exposure_ev" in values:
        ev = values["exposure_ev"]
        if not isinstance(ev, list | tuple) or len(ev) != 2 or not all(is_number(x) for x in ev):
            raise bad("exposure_ev", "[lo, hi] in stops, e.g. [-1.0, 1.0]")
        values["exposure_ev"] = (float(ev[0]), float(ev[1]))
    if "stride" in values:
        stride = values["stride"]
        stride = [stride] if isinstance(stride, int) and not isinstance(stride, bool) else stride
        if not isinstance(stride, list | tuple) or not all(
                isinstance(k, int) and not isinstance(k, bool) for k in stride):
            raise bad("stride", "a list of integer strides, e.g. [1, 2]")
        values["stride"] = tuple(stride)
    if "crop" in values and not isinstance(values["crop"], str):
        raise bad("crop", "a string \"WxH\" or \"\"")
    try:
        return AugmentConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None



# -- one sequence's choices ---------------------------------------------------------------------


@dataclass(frozen=True)
class Augmentation:
    """The augmentation of one sequence: concrete choices, recorded in its metadata.
    The default is the identity."""

    hflip: bool = False
    vflip: bool = False
    quarter_turns: int = 0
    """counter-clockwise quarter turns as seen on screen, after the flips."""
    exposure_ev: float = 0.0
    """colour x 2**ev; the stored exposure / 2**ev."""
    wb_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """per-channel linear RGB gains (grey keeps its luminance)."""
    hue_deg: float = 0.0
    """hue rotation about the grey axis, degrees, after the gains."""
    stride: int = 1
    """stored frames are rendered this many frame intervals apart."""
    crop: tuple[int, int, int, int] | None = None
    """(x, y, width, height) of the HR crop in the rendered frame, or None."""

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["wb_gains"], d["crop"] = list(self.wb_gains), None if self.crop is None else list(self.crop)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Augmentation:
        """From ``to_json``'s dict (missing keys: identity)."""
        values = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}}
        if values.get("wb_gains") is not None:
            values["wb_gains"] = tuple(values["wb_gains"])
        if values.get("crop") is not None:
            values["crop"] = tuple(values["crop"])
        return cls(**values)

    def stored_size(self, render_size: tuple[int, int]) -> tuple[int, int]:
        """The (width, height) of the augmented HR frame rendered at ``render_size``."""
        w, h = self.crop[2:] if self.crop else render_size
        return (h, w) if self.quarter_turns % 2 else (w, h)

    def vector(self, v) -> np.ndarray:
        """A pixel vector (..., 2) (motion, jitter) in the augmented image."""
        return cv.transform_px_vector(v, self.hflip, self.vflip, self.quarter_turns)

    def colour_matrix(self) -> np.ndarray:
        """(3, 3): linear RGB c -> M @ c, before the exposure scale."""
        theta = math.radians(self.hue_deg)
        n = np.full(3, 1 / math.sqrt(3))
        cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
        hue = math.cos(theta) * np.eye(3) + math.sin(theta) * cross + (1 - math.cos(theta)) * np.outer(n, n)
        return hue @ np.diag(self.wb_gains)

    def ndc_matrix(self, render_size: tuple[int, int]) -> np.ndarray:
        """(4, 4) clip-space transform A such that ``A @ proj`` projects onto the augmented
        pixel grid of a frame rendered at ``render_size`` (any resolution of the same
        aspect: NDC does not depend on it)."""
        turn = np.eye(4)
        turn[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]  # NDC y up: (x, y) -> (-y, x), counter-clockwise
        return (np.linalg.matrix_power(turn, self.quarter_turns % 4)
                @ cv.crop_flip_ndc(render_size, self.crop, self.hflip, self.vflip))

    def pixels(self, array: np.ndarray, crop: tuple[int, int, int, int] | None) -> np.ndarray:
        """A per-pixel array (h, w, ...) cropped to ``crop`` (x, y, w, h at its resolution),
        flipped and turned. Values are not changed (see ``vector`` for vectors)."""
        if crop is not None:
            x, y, w, h = crop
            array = array[y:y + h, x:x + w]
        if self.hflip:
            array = array[:, ::-1]
        if self.vflip:
            array = array[::-1]
        return np.ascontiguousarray(np.rot90(array, self.quarter_turns % 4, axes=(0, 1)))

    def apply(self, frame: Frame) -> Frame:
        """The augmented frame (a new Frame; ``frame`` is not changed, and returned as it
        is when nothing but the stride is drawn)."""
        if self.is_identity():
            return frame
        H, W = frame.color_hr.shape[:2]
        crop = self.crop
        colour = self._colour()

        def geo(name: str) -> np.ndarray:
            return self.pixels(getattr(frame, name), crop)

        return Frame(
            **self._lr_fields(frame, (W, H)), color_hr=_tint(geo("color_hr"), colour),
            depth_hr=geo("depth_hr"), motion_hr=self._motion(geo("motion_hr")),
            view=frame.view,
            proj=(self.ndc_matrix((W, H)) @ np.asarray(frame.proj, np.float64)).astype(np.float32),
            exposure=float(frame.exposure / 2.0 ** self.exposure_ev), camera_cut=frame.camera_cut,
            time_s=frame.time_s)

    def apply_ratio(self, frame: Frame, primary: Frame) -> Frame:
        """The augmented frame of another LR ratio of the same render as ``primary``, which
        is already augmented (``apply``): ``frame``'s LR fields and jitter are augmented,
        and everything else (the HR arrays, matrices, exposure) is ``primary``'s, shared
        rather than augmented again. Equals ``apply(frame)`` when ``frame`` holds the same
        HR as ``primary`` did (``Renderer.render_ratios``)."""
        if self.is_identity():
            return frame
        H, W = frame.color_hr.shape[:2]  # as rendered: ``frame`` is not augmented
        return dataclasses.replace(primary, **self._lr_fields(frame, (W, H)))

    def is_identity(self) -> bool:
        """Whether ``apply`` changes nothing (the stride is not applied to frames)."""
        return dataclasses.replace(self, stride=1) == Augmentation()

    def _colour(self) -> np.ndarray:
        return self.colour_matrix().T * 2.0 ** self.exposure_ev

    def _motion(self, m: np.ndarray) -> np.ndarray:
        return self.vector(m).astype(m.dtype)

    def _lr_fields(self, frame: Frame, render_size: tuple[int, int]) -> dict[str, np.ndarray]:
        """The augmented LR fields and jitter of ``frame``, rendered at HR ``render_size``."""
        crop = None if self.crop is None else lr_crop(self.crop, render_size, frame.color_lr.shape[1::-1])
        colour = self._colour()

        def geo(name: str) -> np.ndarray:
            return self.pixels(getattr(frame, name), crop)

        return {"color_lr": _tint(geo("color_lr"), colour), "depth_lr": geo("depth_lr"),
                "motion_lr": self._motion(geo("motion_lr")), "normal_lr": geo("normal_lr"),
                "albedo_lr": geo("albedo_lr"), "material_lr": geo("material_lr"),
                "object_id_lr": geo("object_id_lr"),
                "jitter_px": self.vector(frame.jitter_px).astype(np.float32)}


def _tint(c: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Linear RGB ``c`` through ``colour`` (3x3, transposed, exposure in), as stored: float16
    clipped to [0, FLOAT16_MAX]."""
    c = c.astype(np.float32) @ colour.astype(np.float32)
    return np.clip(c, 0.0, FLOAT16_MAX).astype(np.float16)


def draw(config: AugmentConfig, render_size: tuple[int, int], scale: float, rng_for) -> Augmentation:
    """One sequence's augmentation. ``rng_for(key)`` gives the np.random.Generator of one
    key, so enabling a key never changes what the others draw."""
    crop, stored = None, render_size
    size = config.crop_size()
    if size is not None:
        step_x, step_y = crop_steps(render_size, scale)
        rng = rng_for("crop")
        x = step_x * int(rng.integers(0, (render_size[0] - size[0]) // step_x + 1))
        y = step_y * int(rng.integers(0, (render_size[1] - size[1]) // step_y + 1))
        crop, stored = (x, y, *size), size
    render_lr = cv.lr_size(render_size, scale)
    stored_lr = lr_crop((0, 0, *stored), render_size, render_lr)[2:] if crop else render_lr
    turns = config.allowed_turns(stored, stored_lr)
    rng = rng_for("rot90")
    if isinstance(config.rot90, tuple):
        quarter_turns = int(turns[rng.integers(len(turns))])
    else:
        nonzero = [k for k in turns if k]
        hit = rng.random() < config.rot90
        quarter_turns = int(nonzero[rng.integers(len(nonzero))]) if hit else 0
    lo, hi = config.exposure_ev
    deviation = config.white_balance
    gains = 1.0 + rng_for("white_balance").uniform(-deviation, deviation, 3)
    gains = gains / float(LUMA @ gains)
    return Augmentation(
        hflip=bool(rng_for("hflip").random() < config.hflip),
        vflip=bool(rng_for("vflip").random() < config.vflip),
        quarter_turns=quarter_turns,
        exposure_ev=float(rng_for("exposure_ev").uniform(lo, hi)) if hi > lo else float(lo),
        wb_gains=tuple(float(g) for g in gains) if deviation else (1.0, 1.0, 1.0),
        hue_deg=float(rng_for("hue_deg").uniform(-config.hue_deg, config.hue_deg)) if config.hue_deg else 0.0,
        stride=int(config.stride[rng_for("stride").integers(len(config.stride))]),
        crop=crop,
    )


def with_stride(scene: Scene, stride: int) -> Scene:
    """``scene`` with frames ``stride`` frame intervals apart: frame i is rendered at
    i * stride / fps, its motion reaches back to frame i-1's instant, and a cut is
    flagged on the first stored frame at or after it (``Scene.is_cut``)."""
    return scene if stride == 1 else dataclasses.replace(scene, fps=scene.fps / stride)
