"""Rigid object animations and camera rigs for composed scenes (``datagen.scenes.compose``).

Each builder draws its parameters from a ``np.random.Generator`` once and returns
a pure function of time t (seconds): an object motion ``t -> (4, 4)`` local
matrix, or a camera view ``t -> (4, 4)`` world-to-camera matrix (looking down -z,
see ``datagen.conventions.look_at``). Every motion is bounded for all t (paths
go back and forth or round), so a scene's bounds hold however long it plays.
Quaternions come from pyrr (its 3x3 matrices are for column vectors, as here).
"""

from __future__ import annotations

import math

import numpy as np
import pyrr

from datagen import conventions as cv
from datagen.scene import TransformFn, translation
from datagen.scenes.racing import catmull_rom_closed

ANIMATIONS = ("static", "spin", "linear", "curve", "bounce")
RIGS = ("orbit", "dolly", "flythrough", "handheld", "pan", "cuts")
UP = np.array([0.0, 1.0, 0.0])


def quaternion_matrix(q) -> np.ndarray:
    """(4, 4) rotation of the unit quaternion ``q`` = (x, y, z, w)."""
    m = np.eye(4)
    m[:3, :3] = pyrr.matrix33.create_from_quaternion(np.asarray(q, dtype=np.float64))
    return m


def axis_rotation(axis, angle_rad: float) -> np.ndarray:
    """(4, 4) rotation by ``angle_rad`` about the unit vector ``axis`` (right-handed)."""
    q = pyrr.quaternion.create_from_axis_rotation(np.asarray(axis, dtype=np.float64), float(angle_rad))
    return quaternion_matrix(q)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A (4, 4) rotation uniform over SO(3) (a normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    return quaternion_matrix(pyrr.quaternion.normalise(q / max(np.linalg.norm(q), 1e-12)))


def random_axis(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def triangle_wave(x: float) -> float:
    """Period 1, range [-1, 1], slope +-4: constant speed back and forth."""
    f = x - math.floor(x)
    return 4 * f - 1 if f < 0.5 else 3 - 4 * f


def object_motion(kind: str, rng: np.random.Generator, *, speed: float, spin_rps: float, reach: float,
                  air: bool, bounce_height: float) -> TransformFn:
    """A bounded local motion (translation @ rotation about the object's origin):

    static: identity; spin: about y (on the ground) or a random axis (in the air) at
    ``spin_rps`` turns a second; linear: back and forth along a horizontal segment of
    half-length ``reach`` at ``speed`` m/s; curve: round an ellipse of radii up to
    ``reach`` (bobbing in the air) at ``speed``; bounce: parabolic hops of
    ``bounce_height`` metres. Phases and directions are drawn from ``rng``.
    """
    phase = float(rng.uniform(0, 1))
    if kind == "static":
        m = np.eye(4)
        return lambda t: m
    if kind == "spin":
        axis = random_axis(rng) if air else UP
        omega = 2 * math.pi * spin_rps * float(rng.choice([-1.0, 1.0]))
        return lambda t: axis_rotation(axis, omega * t + 2 * math.pi * phase)
    if kind == "linear":
        a = rng.uniform(0, 2 * math.pi)
        d = np.array([math.cos(a), 0.0, math.sin(a)]) * reach
        period = 4 * reach / max(speed, 1e-6)  # out and back: 4 reach at speed
        return lambda t: translation(d * triangle_wave(t / period + phase))
    if kind == "curve":
        rx, rz = reach * rng.uniform(0.5, 1.0), reach * rng.uniform(0.5, 1.0)
        omega = speed / max((rx + rz) / 2, 1e-6) * float(rng.choice([-1.0, 1.0]))
        bob = 0.25 * reach if air else 0.0
        p0 = 2 * math.pi * phase

        def ellipse(t: float) -> np.ndarray:
            a = omega * t + p0
            return translation((rx * (math.cos(a) - math.cos(p0)), bob * math.sin(2 * omega * t),
                                rz * (math.sin(a) - math.sin(p0))))
        return ellipse
    if kind == "bounce":
        period = 2 * math.sqrt(2 * bounce_height / 9.81)  # a free-fall hop of that height
        yaw = 2 * math.pi * spin_rps * 0.5

        def hop(t: float) -> np.ndarray:
            f = t / period + phase
            f -= math.floor(f)
            return translation((0.0, 4 * bounce_height * f * (1 - f), 0.0)) @ axis_rotation(UP, yaw * t)
        return hop
    raise ValueError(f"unknown animation {kind!r}; valid: {', '.join(ANIMATIONS)}")


class Spline:
    """A closed Catmull-Rom loop through control points, evaluated by arc length (m)."""

    def __init__(self, control: np.ndarray):
        self.points = catmull_rom_closed(control, 48)
        closed = np.vstack([self.points, self.points[:1]])
        self.cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
        self.closed = closed
        self.length = float(self.cum[-1])

    def __call__(self, s: float) -> np.ndarray:
        s = s % self.length
        return np.array([np.interp(s, self.cum, self.closed[:, k]) for k in range(3)])


def shake(rng: np.random.Generator, amount: float) -> TransformFn:
    """Handheld shake: t -> a small camera-space rotation (``amount`` degrees at most per axis)
    and translation (``amount`` cm), sums of three incommensurate sines per axis."""
    freqs = rng.uniform(0.6, 7.0, (6, 3))
    phases = rng.uniform(0, 2 * math.pi, (6, 3))
    amps = rng.uniform(0.3, 1.0, (6, 3)) / 3

    def offset(t: float) -> np.ndarray:
        w = (amps * np.sin(2 * math.pi * freqs * t + phases)).sum(1)  # (6,) each in [-1, 1]
        m = axis_rotation((1.0, 0.0, 0.0), math.radians(amount * w[0]))
        m = axis_rotation((0.0, 1.0, 0.0), math.radians(amount * w[1])) @ m
        m = axis_rotation((0.0, 0.0, 1.0), math.radians(0.5 * amount * w[2])) @ m
        return translation(0.01 * amount * w[3:]) @ m

    return offset


def camera_rig(kind: str, rng: np.random.Generator, *, centre, radius: float, min_height: float,
               speed: float = 1.0, cut_seconds: float = 2.0, shake_deg: float = 0.0,
               max_cuts: int = 64) -> tuple[TransformFn, tuple[float, ...]]:
    """(view(t), cut times) of a rig around a layout of ``radius`` metres about ``centre``:

    orbit: circles at 1.6 radius; dolly: trucks sideways and pushes in and out while
    looking one way; flythrough: a closed spline weaving through the layout at
    ``min_height`` and above, looking ahead; handheld: a slow drift; pan: whips
    +-50 degrees about a fixed point; cuts: a new viewpoint every ``cut_seconds``
    (``max_cuts`` cut times are listed, then the shots repeat without a cut flag).
    ``speed`` scales every rig's pace; ``shake_deg`` adds handheld shake to any rig.
    """
    c = np.asarray(centre, dtype=np.float64)
    az0 = float(rng.uniform(0, 2 * math.pi))
    turn = float(rng.choice([-1.0, 1.0]))
    elevation = math.radians(rng.uniform(12.0, 30.0))
    dist = 1.6 * radius

    def around(az: float, d: float = dist, el: float = elevation) -> np.ndarray:
        return c + d * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])

    cuts: tuple[float, ...] = ()
    if kind == "orbit":
        period = 2 * math.pi * dist / (3.0 * speed)  # 3 m/s along the circle at speed 1

        def view(t: float) -> np.ndarray:
            return cv.look_at(around(az0 + turn * 2 * math.pi * t / period), c)
    elif kind == "dolly":
        eye0 = around(az0)
        fwd = (c - eye0) / np.linalg.norm(c - eye0)
        side = np.cross(fwd, UP)
        side /= np.linalg.norm(side)
        period = 6.0 / speed

        def view(t: float) -> np.ndarray:
            eye = (eye0 + side * 0.5 * radius * math.sin(2 * math.pi * t / period)
                   + fwd * 0.35 * radius * (1 - math.cos(2 * math.pi * t / (1.7 * period))))
            return cv.look_at(eye, eye + fwd)
    elif kind == "flythrough":
        k = 6
        angles = az0 + turn * np.linspace(0, 2 * math.pi, k, endpoint=False)
        r = radius * rng.uniform(0.6, 1.2, k)
        h = min_height + rng.uniform(0.5, 2.5, k)
        spline = Spline(np.stack([c[0] + r * np.sin(angles), h, c[2] + r * np.cos(angles)], -1))
        s0, v = float(rng.uniform(0, spline.length)), 3.0 * speed

        def view(t: float) -> np.ndarray:
            s = s0 + v * t
            eye = spline(s)
            return cv.look_at(eye, spline(s + 3.0) - (0.0, 0.3, 0.0))
    elif kind == "handheld":
        drift = rng.uniform(0.05, 0.15) * speed

        def view(t: float) -> np.ndarray:
            return cv.look_at(around(az0 + turn * drift * math.sin(0.3 * t), 1.3 * radius), c)
        shake_deg = max(shake_deg, 1.0)
    elif kind == "pan":
        eye = around(az0, 1.4 * radius)
        base = math.atan2(*(c - eye)[[0, 2]])
        period = 2.5 / speed

        def view(t: float) -> np.ndarray:
            yaw = base + math.radians(50.0) * math.sin(2 * math.pi * t / period)
            return cv.look_at(eye, eye + np.array([math.sin(yaw), -0.25, math.cos(yaw)]))
    elif kind == "cuts":
        shots = [(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(1.1, 1.9)),
                  math.radians(rng.uniform(8.0, 40.0))) for _ in range(8)]
        drift = 0.15 * speed

        def view(t: float) -> np.ndarray:
            az, d, el = shots[int(math.floor(t / cut_seconds)) % len(shots)]
            return cv.look_at(around(az + turn * drift * t, d * radius, el), c)
        cuts = tuple(cut_seconds * i for i in range(1, max_cuts + 1))
    else:
        raise ValueError(f"unknown camera rig {kind!r}; valid: {', '.join(RIGS)}")
    if shake_deg <= 0:
        return view, cuts
    jitter = shake(rng, shake_deg)
    return (lambda t: jitter(t) @ view(t)), cuts
