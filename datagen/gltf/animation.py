"""Node animation: TRS tracks sampled with LINEAR, STEP or CUBICSPLINE interpolation.

Only the first animation of a file (by index) is played. Time loops over the
animation's duration (the last key time of any of its channels): ``t`` is taken
modulo the duration, so sequences longer than the animation repeat it, and
frame 0's previous state (t = -1/fps) is the end of the loop. Before a track's
first key and after its last, the first and last values hold.

Quaternions are (x, y, z, w) as glTF stores them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from datagen.gltf.accessors import Accessors
from datagen.gltf.document import Document

INTERPOLATIONS = ("LINEAR", "STEP", "CUBICSPLINE")
PATH_WIDTHS = {"translation": 3, "rotation": 4, "scale": 3}
CHANNEL_PATHS = (*PATH_WIDTHS, "weights", "pointer")  # "pointer": KHR_animation_pointer
MIN_SCALE = 1e-6
"""|scale| components are kept at least this, so that every node matrix stays invertible
(glTF allows zero scale, e.g. to hide a part; the renderer inverts model matrices)."""


def quat_to_matrix(q) -> np.ndarray:
    """(3, 3) rotation of a unit quaternion (x, y, z, w)."""
    x, y, z, w = np.asarray(q, dtype=np.float64)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def trs_matrix(translation, rotation, scale) -> np.ndarray:
    """(4, 4) matrix T @ R @ S of a glTF node's TRS properties (|scale| at least MIN_SCALE)."""
    scale = np.asarray(scale, dtype=np.float64)
    scale = np.where(scale < 0, -1.0, 1.0) * np.maximum(np.abs(scale), MIN_SCALE)
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(rotation) * scale[None, :]
    m[:3, 3] = translation
    return m


def normalize_quat(q: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    return q / np.where(norm > 0, norm, 1.0)


def slerp(q0, q1, s: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions along the shorter arc, normalised."""
    q0, q1 = np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64)
    d = float(q0 @ q1)
    if d < 0.0:  # q and -q are the same rotation: take the shorter way round
        q1, d = -q1, -d
    if d > 0.9995:  # nearly parallel: lerp is exact enough and avoids 0/0
        return normalize_quat(q0 + s * (q1 - q0))
    theta = np.arccos(min(d, 1.0))
    return normalize_quat((np.sin((1 - s) * theta) * q0 + np.sin(s * theta) * q1) / np.sin(theta))


@dataclass(frozen=True, eq=False)
class Track:
    """One animated property of one node.

    times:  (k,) float64 key times, seconds, non-decreasing.
    values: (k, n) key values, or (k, 3, n) for CUBICSPLINE: in-tangent, value, out-tangent.
    """

    times: np.ndarray
    values: np.ndarray
    interpolation: str = "LINEAR"
    rotation: bool = False

    def sample(self, t: float) -> np.ndarray:
        """(n,) value at time t (seconds, not looped)."""
        times = self.times
        cubic = self.interpolation == "CUBICSPLINE"
        keys = self.values[:, 1] if cubic else self.values
        if t <= times[0]:
            return keys[0].copy()
        if t >= times[-1]:
            return keys[-1].copy()
        k = int(np.searchsorted(times, t, side="right")) - 1  # times[k] <= t < times[k + 1]
        if self.interpolation == "STEP":
            return keys[k].copy()
        dt = times[k + 1] - times[k]
        s = (t - times[k]) / dt
        if cubic:
            s2, s3 = s * s, s * s * s
            out = ((2 * s3 - 3 * s2 + 1) * keys[k] + dt * (s3 - 2 * s2 + s) * self.values[k, 2]
                   + (-2 * s3 + 3 * s2) * keys[k + 1] + dt * (s3 - s2) * self.values[k + 1, 0])
            return normalize_quat(out) if self.rotation else out
        if self.rotation:
            return slerp(keys[k], keys[k + 1], s)
        return (1 - s) * keys[k] + s * keys[k + 1]


@dataclass(frozen=True, eq=False)
class AnimatedTRS:
    """A node transform t -> (4, 4): its rest TRS with some properties driven by tracks."""

    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]
    scale: tuple[float, float, float]
    tracks: dict[str, Track] = field(default_factory=dict)
    period: float = 0.0
    """seconds; t is taken modulo this (0: the tracks are sampled at t = 0 only)."""

    def __call__(self, t: float) -> np.ndarray:
        local = float(t) % self.period if self.period > 0 else 0.0
        trs = {"translation": self.translation, "rotation": self.rotation, "scale": self.scale}
        for path, track in self.tracks.items():
            trs[path] = track.sample(local)
        return trs_matrix(trs["translation"], trs["rotation"], trs["scale"])


@dataclass(frozen=True)
class Animation:
    """The tracks of one glTF animation, by node index and path, and its duration in seconds."""

    tracks: dict[int, dict[str, Track]]
    duration: float


def read_first_animation(doc: Document, acc: Accessors) -> Animation:
    """Animation 0 of the file (none: no tracks). Morph-weight channels are skipped
    with a warning; channels without a target node (extensions) are ignored."""
    if not doc.array("animations"):
        return Animation({}, 0.0)
    anim = doc.item("animations", 0)
    samplers = anim.list("samplers", required=True)
    tracks: dict[int, dict[str, Track]] = {}
    for i, channel in enumerate(anim.list("channels", required=True)):
        c = doc.fields(channel, f"animation 0 channel {i}")
        sampler = c.int("sampler", required=True, lo=0)
        if sampler >= len(samplers):
            doc.fail(f"{c.where} refers to sampler {sampler}, but animation 0 has {len(samplers)}")
        target = c.sub("target", required=True)
        path = target.enum("path", CHANNEL_PATHS, required=True)
        node = target.ref("node", "nodes")
        if path == "weights":
            doc.warn("skin", "skins and morph targets are not supported: rendered in the bind pose")
        if node is None or path not in PATH_WIDTHS:
            continue
        if path in tracks.get(node, {}):
            doc.fail(f"{c.where} animates node {node}'s {path} a second time")
        tracks.setdefault(node, {})[path] = read_track(doc, acc, samplers[sampler], sampler, path)
    ends = [float(tr.times[-1]) for by_path in tracks.values() for tr in by_path.values()]
    return Animation(tracks, max([0.0, *ends]))


def read_track(doc: Document, acc: Accessors, sampler_json, index: int, path: str) -> Track:
    s = doc.fields(sampler_json, f"animation 0 sampler {index}")
    interpolation = s.enum("interpolation", INTERPOLATIONS, "LINEAR")
    times = acc.floats(s.ref("input", "accessors", required=True), f"{s.where} input",
                       ("SCALAR",))[:, 0].astype(np.float64)
    if np.any(np.diff(times) < 0):
        doc.fail(f"{s.where} input times are not increasing")
    width = PATH_WIDTHS[path]
    values = acc.floats(s.ref("output", "accessors", required=True), f"{s.where} output ({path})",
                        (f"VEC{width}",)).astype(np.float64)
    per_key = 3 if interpolation == "CUBICSPLINE" else 1
    if len(values) != per_key * len(times):
        doc.fail(f"{s.where} has {len(times)} key times but {len(values)} output values; {interpolation} "
                 f"needs {per_key * len(times)}")
    if per_key == 3:
        values = values.reshape(len(times), 3, width)
    rotation = path == "rotation"
    if rotation:
        keys = values[:, 1] if per_key == 3 else values
        if np.any(np.linalg.norm(keys, axis=-1) < 1e-6):
            doc.fail(f"{s.where} output has a zero-length rotation quaternion")
        keys[...] = normalize_quat(keys)
    return Track(times, values, interpolation, rotation)
