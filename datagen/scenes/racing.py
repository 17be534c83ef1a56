"""``racing``: cars on a closed spline circuit, filmed by chase and trackside cameras.

Content that breaks upscalers: thin lane stripes and curbs, guardrail posts,
chain-link fences (alpha MASK), alpha-masked tree foliage, billboards with fine
glyph-like text, cars with alpha-blended glass and emissive lights passing in
front of fences at speed, and camera cuts.

Layout: a periodic Catmull-Rom spline through seeded control points on a
perturbed ellipse, resampled at ~1 m arc-length steps. A car at arc length
``s(t) = s0 + v t`` and lateral offset ``lane`` sits at ``centre(s) + side(s) *
lane`` with its nose along the tangent; each car has its own lane, so cars at
different speeds overtake without colliding. ``side`` is ``tangent x up`` (the
driver's right); the infield is on the side the loop turns towards.

Object ids: see the ``*_ID`` constants; every part of car i has ``CAR_ID0 + i``.
"""

from __future__ import annotations

import numpy as np

from datagen import conventions as cv
from datagen.errors import ConfigError
from datagen.meshes import box, cylinder, merge, plane, rgba, ribbon, tileable_noise, transformed, with_uvs
from datagen.scene import Camera, Material, Mesh, Node, Scene, Sky, Sun, Texture, static, translation
from datagen.scenes import register
from datagen.scenes.params import Param

GROUND_ID, ROAD_ID, PAINT_ID, CURB_ID = 1, 2, 3, 4
RAIL_ID, RAIL_POST_ID, FENCE_ID, FENCE_POST_ID = 5, 6, 7, 8
FOLIAGE_ID, TRUNK_ID, STAND_ID, BILLBOARD_ID, BILLBOARD_POST_ID = 9, 10, 11, 12, 13
CAR_ID0 = 20
UP = np.array([0.0, 1.0, 0.0])

TRACK_TRIES = 200
"""track layouts drawn at most before giving up (the loop is bounded)."""

MIN_RADIUS = 28.0
"""Metres: the tightest bend of the centre line (the inner lane then turns at >= 23.5 m)."""

SHOTS = ("chase", "trackside")
"""Camera rigs of the alternating shot list; ``first_shot`` picks the one it opens with."""

LANES = (-4.5, -1.5, 1.5, 4.5)
"""Lateral offsets (m, + = driver's right) of the four lanes of a 12 m track."""


# -- the track -------------------------------------------------------------------


class Track:
    """A closed centre line resampled at equal arc-length steps, with frames.

    centre (n, 3), tangent (n, 3), side (n, 3) = tangent x up, curvature (n,)
    (1/m, > 0 turning towards ``inside``), s (n,) arc length; ``length`` metres.
    ``inside`` (+1 or -1): the sign of the side offset that points into the infield.
    """

    def __init__(self, control: np.ndarray, step: float = 1.0, smooth: int = 8):
        dense = catmull_rom_closed(control, 64)
        seg = np.linalg.norm(np.diff(np.vstack([dense, dense[:1]]), axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        self.length = float(cum[-1])
        n = int(round(self.length / step))
        self.s = np.linspace(0.0, self.length, n, endpoint=False)
        closed = np.vstack([dense, dense[:1]])
        centre = np.stack([np.interp(self.s, cum, closed[:, k]) for k in range(3)], -1)
        for _ in range(smooth):  # periodic box filter: irons out the spline's curvature kinks
            centre = (np.roll(centre, -2, 0) + np.roll(centre, -1, 0) + centre + np.roll(centre, 1, 0)
                      + np.roll(centre, 2, 0)) / 5
        self.centre = centre
        self.length = float(np.linalg.norm(centre - np.roll(centre, 1, 0), axis=1).sum())
        self.s = np.linspace(0.0, self.length, n, endpoint=False)
        fwd = np.roll(self.centre, -1, 0) - np.roll(self.centre, 1, 0)
        self.tangent = fwd / np.linalg.norm(fwd, axis=1, keepdims=True)
        self.side = np.cross(self.tangent, UP)
        self.side /= np.linalg.norm(self.side, axis=1, keepdims=True)
        dt = np.roll(self.tangent, -1, 0) - np.roll(self.tangent, 1, 0)
        turn = -np.einsum("ij,ij->i", dt, self.side) / (2 * self.length / n)  # > 0: turning left
        # signed area (shoelace on x, z): the loop turns left overall when the infield is on the left
        x, z = self.centre[:, 0], self.centre[:, 2]
        area = 0.5 * np.sum(x * np.roll(z, -1) - np.roll(x, -1) * z)
        self.inside = -1.0 if area < 0 else 1.0
        # turning towards the left (side -1) is turning towards the inside when inside == -1
        self.curvature = turn * -self.inside

    def frame(self, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, tangent, side) at arc length s (any real, wraps), interpolated."""
        u = (s % self.length) / self.length * len(self.s)
        i0 = int(np.floor(u)) % len(self.s)
        i1 = (i0 + 1) % len(self.s)
        f = u - np.floor(u)
        p = self.centre[i0] * (1 - f) + self.centre[i1] * f
        t = self.tangent[i0] * (1 - f) + self.tangent[i1] * f
        t /= np.linalg.norm(t)
        side = np.cross(t, UP)
        return p, t, side / np.linalg.norm(side)

    def distance(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Horizontal distance (m) of each (k, 3) point to the centre line samples, and the
        signed side (+1 infield, -1 outside)."""
        d = points[:, None, :] - self.centre[None, :, :]
        d[..., 1] = 0.0
        dist2 = (d ** 2).sum(-1)
        near = dist2.argmin(1)
        k = np.arange(len(points))
        sign = np.sign(np.einsum("ij,ij->i", d[k, near], self.side[near]) * self.inside)
        return np.sqrt(dist2[k, near]), sign

    def offset_line(self, offset: float, y: float, idx=None) -> tuple[np.ndarray, np.ndarray]:
        """(points, sides) of the line at lateral ``offset``, height ``y``, for sample indices ``idx``."""
        idx = np.arange(len(self.s)) if idx is None else idx
        return self.centre[idx] + self.side[idx] * offset + UP * y, self.side[idx]


def catmull_rom_closed(points: np.ndarray, per_segment: int) -> np.ndarray:
    """Uniform Catmull-Rom through the closed polygon ``points`` (k, 3), ``per_segment`` samples each."""
    p = np.asarray(points, dtype=np.float64)
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(len(p)):
        p0, p1, p2, p3 = p[i - 1], p[i], p[(i + 1) % len(p)], p[(i + 2) % len(p)]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    return np.concatenate(out)


def control_points(rng: np.random.Generator, length: float, count: int = 10) -> np.ndarray:
    """Seeded points on a perturbed ellipse whose perimeter is about ``length`` metres."""
    aspect = rng.uniform(1.2, 1.6)
    b = length / (np.pi * (3 * (aspect + 1) - np.sqrt((3 * aspect + 1) * (aspect + 3))))
    a = aspect * b
    ang = (np.arange(count) + rng.uniform(-0.2, 0.2, count)) * 2 * np.pi / count
    r = rng.uniform(0.85, 1.1, count)
    return np.stack([a * r * np.cos(ang), np.zeros(count), b * r * np.sin(ang)], -1)


# -- textures --------------------------------------------------------------------


def asphalt_texture(rng, size: int = 512) -> Texture:
    n = tileable_noise(rng, size, 8, 5)
    grain = rng.random((size, size))
    v = 58 + 40 * (n - 0.5) + 26 * (grain - 0.5) + 45 * (grain > 0.985)
    return Texture(rgba(np.stack([v, v, v * 1.03], -1)))


def grass_texture(rng, size: int = 512) -> Texture:
    n = tileable_noise(rng, size, 4, 5)
    blades = tileable_noise(rng, size, 64, 2)
    g = 0.6 * n + 0.4 * blades
    rgb = np.stack([45 + 50 * g, 85 + 70 * g, 30 + 25 * g], -1)
    return Texture(rgba(rgb))


def curb_texture() -> Texture:
    """Red and white blocks along v (one texture repeat = 2 blocks)."""
    px = np.zeros((64, 16, 3))
    px[:32] = (200, 25, 25)
    px[32:] = (235, 235, 235)
    return Texture(rgba(px))


def chain_link_texture(size: int = 256, cells: int = 12, wire_px: float = 5.0) -> Texture:
    """A diamond chain-link pattern, alpha 255 on the wires and 0 between them."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    period = size / cells
    a = ((x + y) % period)
    b = ((x - y) % period)
    d = np.minimum(np.minimum(a, period - a), np.minimum(b, period - b)) / np.sqrt(2)
    wire = d < wire_px / 2 + 0.5
    shade = 150 + 60 * np.cos((x + y) / period * 2 * np.pi)
    return Texture(rgba(np.stack([shade, shade, shade * 1.05], -1), np.where(wire, 255, 0)))


def leaf_texture(rng, size: int = 256, leaves: int = 900) -> Texture:
    """Small elliptical leaves filling a round canopy; alpha masks everything else."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    rgb = np.zeros((size, size, 3))
    alpha = np.zeros((size, size), np.uint8)
    for _ in range(leaves):
        r = np.sqrt(rng.random()) * 0.46 * size
        a = rng.uniform(0, 2 * np.pi)
        cx, cy = size / 2 + r * np.cos(a), size * 0.5 + r * np.sin(a) * 0.95
        ang = rng.uniform(0, np.pi)
        length, width = rng.uniform(5, 9), rng.uniform(2, 3.5)
        lo_x, hi_x = int(max(cx - 10, 0)), int(min(cx + 10, size))
        lo_y, hi_y = int(max(cy - 10, 0)), int(min(cy + 10, size))
        dx, dy = x[lo_y:hi_y, lo_x:hi_x] - cx, y[lo_y:hi_y, lo_x:hi_x] - cy
        u = dx * np.cos(ang) + dy * np.sin(ang)
        v = -dx * np.sin(ang) + dy * np.cos(ang)
        inside = (u / length) ** 2 + (v / width) ** 2 < 1
        tone = rng.uniform(0.6, 1.2)
        rgb[lo_y:hi_y, lo_x:hi_x][inside] = np.array([40, 95, 30]) * tone
        alpha[lo_y:hi_y, lo_x:hi_x][inside] = 255
    return Texture(rgba(rgb, alpha))


GLYPH_ROWS = 4
"""Billboard designs stacked vertically in one atlas texture."""


def billboard_texture(rng, width: int = 1024, row_h: int = 256) -> Texture:
    """GLYPH_ROWS billboard designs: a coloured panel, a big block 'logo' and lines of
    small random 5x7 glyphs (1-2 px strokes): fine, high-contrast, text-like detail."""
    px = np.zeros((GLYPH_ROWS * row_h, width, 3))
    for r in range(GLYPH_ROWS):
        bg = rng.uniform(0, 255, 3) * np.array([1, 1, 1])
        fg = 255 - bg if rng.random() < 0.5 else np.array([250, 250, 250]) * (bg.mean() < 128)
        panel = np.tile(bg, (row_h, width, 1))
        # logo: a few big blocks on the left third
        for _ in range(6):
            x0, y0 = rng.integers(16, width // 3 - 64), rng.integers(16, row_h - 96)
            panel[y0:y0 + rng.integers(24, 80), x0:x0 + rng.integers(24, 80)] = rng.uniform(0, 255, 3)
        # text lines of 5x7 glyphs at 2 px per dot on the right
        scale = int(rng.integers(1, 3))
        gw, gh = 6 * scale, 9 * scale
        for line_y in range(20, row_h - gh - 10, gh + 4 * scale):
            x = width // 3 + 8
            while x < width - gw - 8:
                if rng.random() < 0.16:  # word gap
                    x += gw
                    continue
                glyph = rng.random((7, 5)) < 0.45
                dots = glyph.repeat(scale, 0).repeat(scale, 1)  # np.kron: 3x slower
                panel[line_y:line_y + 7 * scale, x:x + 5 * scale][dots] = fg
                x += gw
        panel[:4], panel[-4:], panel[:, :4], panel[:, -4:] = 240, 240, 240, 240
        px[r * row_h:(r + 1) * row_h] = panel
    return Texture(rgba(px), wrap="clamp")


def car_light_texture() -> Texture:
    """Left half warm white (head lights), right half red (tail lights)."""
    px = np.zeros((8, 16, 3))
    px[:, :8] = (255, 245, 215)
    px[:, 8:] = (255, 30, 20)
    return Texture(rgba(px), wrap="clamp")


HEAD_UV, TAIL_UV = (0.25, 0.5), (0.75, 0.5)


# -- geometry --------------------------------------------------------------------


def oriented(position, forward) -> np.ndarray:
    """Model matrix: local +x along ``forward`` (horizontal), +y up, +z = forward x up, at ``position``."""
    f = np.asarray(forward, dtype=np.float64).copy()
    f[1] = 0.0
    f /= np.linalg.norm(f)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = f, UP, np.cross(f, UP), position
    return m


def car_meshes() -> dict[str, Mesh]:
    """Car parts in car space (x forward, y up, z right, origin on the ground at the centre)."""
    def bx(size, centre):
        return transformed(box(size), translation(centre))

    body = merge([
        bx((4.5, 0.5, 1.9), (0.0, 0.5, 0.0)),  # tub
        bx((1.3, 0.18, 1.8), (1.55, 0.83, 0.0)),  # bonnet
        bx((1.8, 0.06, 1.45), (-0.35, 1.33, 0.0)),  # roof
        bx((0.35, 0.05, 1.9), (-2.05, 1.12, 0.0)),  # wing
        bx((0.08, 0.3, 0.08), (-2.05, 0.9, 0.6)), bx((0.08, 0.3, 0.08), (-2.05, 0.9, -0.6)),
    ])
    wheel = transformed(cylinder(0.34, 0.28, 14), np.array(
        [[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]))  # axis along z
    dark = merge([transformed(wheel, translation((x, 0.34, z - 0.14))) for x in (1.45, -1.4)
                  for z in (-0.86, 0.86)] + [bx((1.7, 0.45, 1.35), (-0.35, 0.95, 0.0))])  # wheels, interior
    glass = bx((2.0, 0.55, 1.6), (-0.35, 1.03, 0.0))
    lights = merge([with_uvs(bx((0.06, 0.13, 0.4), (2.26, 0.62, z)), HEAD_UV) for z in (-0.62, 0.62)]
                   + [with_uvs(bx((0.06, 0.1, 0.5), (-2.26, 0.66, z)), TAIL_UV) for z in (-0.58, 0.58)])
    return {"body": body, "dark": dark, "glass": glass, "lights": lights}


def crossed_quads(height: float, width: float, count: int = 3) -> Mesh:
    """``count`` vertical quads around the y axis (a billboard-style tree crown)."""
    quad = transformed(plane(width, height), np.array(
        [[1.0, 0, 0, 0], [0, 0, -1, height / 2], [0, 1, 0, 0], [0, 0, 0, 1]]))  # facing +z
    parts = []
    for k in range(count):
        a = np.pi * k / count
        c, s = np.cos(a), np.sin(a)
        parts.append(transformed(quad, np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1]])))
    return merge(parts)


def dashes(track: Track, offset: float, width: float, dash: float, gap: float, y: float) -> Mesh:
    parts = []
    n = len(track.s)
    step = track.length / n
    per = max(int(round(dash / step)), 1)
    every = max(int(round((dash + gap) / step)), per + 1)
    for i0 in range(0, n - every + 1, every):
        idx = np.arange(i0, i0 + per + 1) % n
        c, side = track.offset_line(offset, y, idx)
        parts.append(ribbon(c, side, (-width / 2, width / 2), v=np.linspace(0, 1, len(idx))))
    return merge(parts)


def runs(mask: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the contiguous True runs of a cyclic boolean array."""
    n = len(mask)
    if mask.all():
        return [np.arange(n + 1) % n]
    start = int(np.argmin(mask))  # a False sample: runs never wrap past it
    out, cur = [], []
    for k in range(1, n + 1):
        i = (start + k) % n
        if mask[i]:
            cur.append(i)
        elif cur:
            out.append(np.array(cur))
            cur = []
    if cur:
        out.append(np.array(cur))
    return out


def vertical_strip(points: np.ndarray, bottom: float, top: float, u_scale: float,
                   v_scale: float, facing: np.ndarray) -> Mesh:
    """A wall along ``points`` (n, 3; y ignored) from height bottom to top; u along, v down."""
    base = points.copy()
    base[:, 1] = 0.0
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(base, axis=0), axis=1))])
    sides = np.tile(UP, (len(base), 1))
    m = ribbon(base, sides, (bottom, top), v=along * u_scale, u=(top * v_scale, bottom * v_scale),
               normal=facing)
    return Mesh(m.positions, m.normals, m.uvs[:, ::-1].copy(), m.indices)  # u along, v across


# -- the generator ---------------------------------------------------------------


PARAMS = {
    "track_length": Param("float", 400.0, 3000.0),
    "track_width": Param("float", 12.0, 24.0),
    "cars": Param("int", 1, len(LANES)),
    "speed_min": Param("float", 0.0, 100.0),
    "speed_max": Param("float", 0.0, 100.0),
    "car_colors": Param("rgb_list", 0.0, 1.0, optional=True, count=(1, len(LANES))),
    "trees": Param("int", 0, 500),
    "sun_elevation_deg": Param("float", 0.0, 90.0),
    "sun_azimuth_deg": Param("float", 0.0, 360.0, optional=True),
    "shot_seconds": Param("float", 0.5, 60.0),
    "duration": Param("float", 0.5, 600.0),
    "fov_y_deg": Param("float", 10.0, 120.0),
    "chase_lag": Param("float", 0.0, 2.0),
    "fps": Param("float", 1.0, 240.0),
    "time_of_day": Param("float", 0.0, 24.0, optional=True),
    "first_shot": Param("str", choices=SHOTS),
}
"""Documented ranges (datagen.scenes.params): metres, m/s, seconds, degrees, hours. The
track is at least 400 m (shorter loops cannot keep every bend >= ``MIN_RADIUS``) and 12 m
wide (the four lanes sit at +-1.5 and +-4.5 m)."""


def check(p: dict) -> None:
    """Rules between parameters (ConfigError naming them)."""
    if p["speed_min"] > p["speed_max"]:
        raise ConfigError(f"speed_min = {p['speed_min']} is above speed_max = {p['speed_max']}; "
                          "give speed_min <= speed_max (m/s)")
    if p["car_colors"] is not None and len(p["car_colors"]) < p["cars"]:
        raise ConfigError(f"car_colors has {len(p['car_colors'])} colours for cars = {p['cars']}; "
                          "give one [r, g, b] per car")


CLIP = (0.5, 1000.0)
"""the camera's (near, far) planes in metres."""


@register("racing", PARAMS, check, CLIP)
def racing(seed: int = 0, track_length: float = 520.0, track_width: float = 12.0, cars: int = 4,
           speed_min: float = 38.0, speed_max: float = 62.0, car_colors: list | None = None,
           trees: int = 90, sun_elevation_deg: float = 40.0, sun_azimuth_deg: float | None = None,
           shot_seconds: float = 2.5, duration: float = 30.0, fov_y_deg: float = 45.0,
           chase_lag: float = 0.1, fps: float = 30.0, time_of_day: float | None = None,
           first_shot: str = "chase") -> Scene:
    """Build the circuit. Speeds in m/s; ``car_colors`` linear RGB triples (seeded if None);
    shots alternate chase / trackside every ``shot_seconds`` until ``duration``, starting
    with ``first_shot`` ("chase" or "trackside"). ``time_of_day`` (hours, 0-24), when set,
    places the sun by the clock (``sun_by_clock``) instead of ``sun_elevation_deg`` and
    the seeded or given azimuth."""
    # one generator, drawn from in this order: track, surfaces, trackside, cars, cameras,
    # trees, sun (a reordering changes every scene)
    rng = np.random.default_rng(seed)
    track = _draw_track(rng, track_length, seed)
    half = track_width / 2
    lo = track.centre.min(0) - (70.0, 0.0, 70.0)
    hi = track.centre.max(0) + (70.0, 0.0, 70.0)
    nodes = _track_surfaces(rng, track, track_width, lo, hi)
    nodes += _trackside(rng, track, half)
    car_nodes, car_paths = _cars(rng, track, cars, speed_min, speed_max, car_colors)
    nodes += car_nodes
    view, cuts, cam_points = _cameras(rng, track, half, car_paths, shot_seconds, duration, chase_lag,
                                      first_shot)
    nodes += _trees(rng, track, half, lo, hi, trees, cam_points)
    camera = Camera(view=view, fov_y_deg=fov_y_deg, near=CLIP[0], far=CLIP[1], cuts=cuts)
    azimuth = rng.uniform(0, 360) if sun_azimuth_deg is None else sun_azimuth_deg
    sun, sky = sun_and_sky(*(sun_by_clock(time_of_day) if time_of_day is not None
                             else (sun_elevation_deg, azimuth)))
    # up to 12 m above the ground: trees up to 1.3 * 8.3 m, stand roofs 7.2 m
    bounds = np.stack([lo - (0.0, 0.5, 0.0), hi + (0.0, 12.0, 0.0)])
    return Scene("racing", tuple(nodes), camera, sun=sun, sky=sky, fps=fps, bounds=bounds)


def _fixed(name: str, mesh: Mesh, material: Material, object_id: int) -> Node:
    return Node(name, static(np.eye(4)), mesh, material, object_id)


def _draw_track(rng: np.random.Generator, track_length: float, seed: int) -> Track:
    """A closed loop of ``track_length`` metres, redrawn until no bend is tighter than
    MIN_RADIUS (deterministic per seed)."""
    for _ in range(TRACK_TRIES):
        track = Track(control_points(rng, track_length))
        if np.abs(track.curvature).max() < 1.0 / MIN_RADIUS:
            return track
    raise ConfigError(f"track_length = {track_length}: no loop of that length with every bend >= "
                      f"{MIN_RADIUS:g} m radius in {TRACK_TRIES} draws for seed {seed}; choose a longer "
                      "track_length")


def _track_surfaces(rng: np.random.Generator, track: Track, track_width: float, lo: np.ndarray,
                    hi: np.ndarray) -> list[Node]:
    """The grass over the box ``lo``-``hi``, the road, its paint and the curbs on the bends."""
    half = track_width / 2
    inside = track.inside
    nodes = []
    size = hi - lo
    ground = transformed(plane(size[0], size[2], (size[0] / 6, size[2] / 6)),
                         translation(((lo[0] + hi[0]) / 2, 0.0, (lo[2] + hi[2]) / 2)))
    nodes.append(_fixed("grass", ground, Material(base_color_texture=grass_texture(rng), roughness=0.95),
                        GROUND_ID))
    loop = np.arange(len(track.s) + 1) % len(track.s)
    v_loop = np.concatenate([track.s, [track.length]])
    c, side = track.offset_line(0.0, 0.03, loop)
    road = ribbon(c, side, (-half - 0.3, half + 0.3), v=v_loop / 8.0, u=(0.0, (track_width + 0.6) / 8.0))
    nodes.append(_fixed("road", road, Material(base_color_texture=asphalt_texture(rng), roughness=0.8),
                        ROAD_ID))
    paint = [dashes(track, off, 0.15, 3.0, 4.5, 0.05) for off in (-3.0, 0.0, 3.0)]
    for off in (-half + 0.3, half - 0.3):
        c, side = track.offset_line(off, 0.05, loop)
        paint.append(ribbon(c, side, (-0.1, 0.1), v=v_loop))
    nodes.append(_fixed("paint", merge(paint), Material(base_color=(0.85, 0.85, 0.82, 1.0), roughness=0.6),
                        PAINT_ID))
    bend = np.convolve(np.r_[track.curvature[-4:], track.curvature, track.curvature[:4]],
                       np.ones(9) / 9, "valid") > 1 / 70.0
    curbs = []
    for idx in runs(bend):
        if len(idx) < 4:
            continue
        c, side = track.offset_line(inside * (half + 0.3), 0.06, idx)
        curbs.append(ribbon(c, side * inside, (0.0, 1.2), v=track.s[idx] / 2.0))
    if curbs:
        nodes.append(_fixed("curbs", merge(curbs), Material(base_color_texture=curb_texture(), roughness=0.7),
                            CURB_ID))
    return nodes


def _trackside(rng: np.random.Generator, track: Track, half: float) -> list[Node]:
    """Guardrails both sides, the chain-link fence outside, grandstands and billboards."""
    return [*_guardrails(track, half), *_fence(track, half), *_grandstands(rng, track, half)]


def _guardrails(track: Track, half: float) -> list[Node]:
    """Guardrails both sides, with posts."""
    loop = np.arange(len(track.s) + 1) % len(track.s)
    rails, posts = [], []
    post = box((0.1, 0.75, 0.1))
    for sgn in (-1.0, 1.0):
        off = sgn * (half + 3.0)
        c, _ = track.offset_line(off, 0.0, loop)
        facing = -track.side[loop] * sgn
        rails.append(vertical_strip(c, 0.45, 0.75, 1.0, 1.0, facing))
        for i in range(0, len(track.s), 4):
            p, _ = track.offset_line(off + sgn * 0.1, 0.375, np.array([i]))
            posts.append(transformed(post, oriented(p[0], track.tangent[i])))
    return [_fixed("guardrail", merge(rails), Material(base_color=(0.75, 0.76, 0.78, 1.0), metallic=0.8,
                                                       roughness=0.35, double_sided=True), RAIL_ID),
            _fixed("guardrail_posts", merge(posts), Material(base_color=(0.5, 0.5, 0.52, 1.0), metallic=0.6,
                                                             roughness=0.5), RAIL_POST_ID)]


def _fence(track: Track, half: float) -> list[Node]:
    """Chain-link fence on the outside, posts every 3 m."""
    loop = np.arange(len(track.s) + 1) % len(track.s)
    outside = -track.inside
    c, _ = track.offset_line(outside * (half + 5.5), 0.0, loop)
    fence = vertical_strip(c, 0.0, 3.2, 1.0, 1.0, -track.side[loop] * outside)
    fence_post = cylinder(0.04, 3.3, 6, caps=False)
    fposts = [transformed(fence_post, translation(track.offset_line(outside * (half + 5.55), 0.0,
                                                                    np.array([i]))[0][0]))
              for i in range(0, len(track.s), 3)]
    return [_fixed("fence", fence, Material(base_color_texture=chain_link_texture(), metallic=0.7,
                                            roughness=0.45, alpha_mode="MASK", alpha_cutoff=0.5,
                                            double_sided=True), FENCE_ID),
            _fixed("fence_posts", merge(fposts), Material(base_color=(0.45, 0.47, 0.5, 1.0), metallic=0.7,
                                                          roughness=0.4), FENCE_POST_ID)]


def _grandstands(rng: np.random.Generator, track: Track, half: float) -> list[Node]:
    """Grandstands at the three straightest places, well apart, with billboards on both
    sides, behind the fence and facing the track."""
    outside = -track.inside
    stands, boards, board_posts = [], [], []
    n = len(track.s)
    straight = np.argsort(np.abs(track.curvature))
    picks: list[int] = []
    for i in straight:  # the straightest places, well apart
        if all(min(abs(i - j), n - abs(i - j)) > n // 6 for j in picks):
            picks.append(int(i))
        if len(picks) == 3:
            break
    for k, i in enumerate(picks):
        # grandstand: stepped boxes, 36 m long, stepping up away from the track
        back = track.side[i] * outside
        fwd = np.cross(UP, back)  # stand's local x along the track (facing the track: -back)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2] = fwd, UP, back
        m[:3, 3] = track.centre[i] + back * (half + 12.0)
        steps = [transformed(box((36.0, 0.6 * (j + 1), 1.2)), translation((0.0, 0.3 * (j + 1), 1.2 * j)))
                 for j in range(8)]
        steps.append(transformed(box((36.0, 0.3, 10.6)), translation((0.0, 7.0, 4.5))))  # roof
        steps += [transformed(box((0.3, 7.0, 0.3)), translation((x, 3.5, 9.3))) for x in (-17.5, 0.0, 17.5)]
        stands.append(transformed(merge(steps), m))
        # billboards on both sides of the stand, 8 x 2.5 m, 2.8 m up
        for along in (-30.0, 30.0):
            j = int(i + along) % n
            back_j = track.side[j] * outside
            m = np.eye(4)
            m[:3, 0], m[:3, 1], m[:3, 2] = np.cross(back_j, UP), UP, -back_j  # faces the track
            m[:3, 3] = track.centre[j] + back_j * (half + 8.5)
            row = (k * 2 + (along > 0)) % GLYPH_ROWS
            quad = transformed(plane(8.0, 2.5), np.array(
                [[1.0, 0, 0, 0], [0, 0, -1, 4.05], [0, 1, 0, 0], [0, 0, 0, 1]]))
            uv = quad.uvs.copy()
            uv[:, 1] = (row + uv[:, 1]) / GLYPH_ROWS
            boards.append(transformed(Mesh(quad.positions, quad.normals, uv, quad.indices), m))
            board_posts += [transformed(box((0.12, 2.8, 0.12)), m @ translation((x, 1.4, -0.05)))
                            for x in (-3.5, 3.5)]
            board_posts.append(transformed(box((8.1, 2.6, 0.05)), m @ translation((0.0, 4.05, -0.05))))
    stand_mat = Material(base_color=(0.55, 0.57, 0.62, 1.0), roughness=0.7)
    board_mat = Material(base_color_texture=billboard_texture(rng), roughness=0.5)
    frame_mat = Material(base_color=(0.3, 0.3, 0.32, 1.0), metallic=0.5, roughness=0.5)
    return [_fixed("grandstands", merge(stands), stand_mat, STAND_ID),
            _fixed("billboards", merge(boards), board_mat, BILLBOARD_ID),
            _fixed("billboard_frames", merge(board_posts), frame_mat, BILLBOARD_POST_ID)]


CarPath = tuple[float, float, float]
"""(start arc length m, speed m/s, lane offset m) of a car."""


def _cars(rng: np.random.Generator, track: Track, cars: int, speed_min: float, speed_max: float,
          car_colors: list | None) -> tuple[list[Node], list[CarPath]]:
    """One lane each, seeded speeds and starts, car 0 the fastest (the first shot's hero)."""
    if car_colors is None:
        hues = rng.permutation(8)[:cars]
        palette = np.array([(0.8, 0.05, 0.03), (0.02, 0.15, 0.7), (0.9, 0.6, 0.02), (0.05, 0.5, 0.1),
                            (0.85, 0.85, 0.85), (0.03, 0.03, 0.03), (0.5, 0.05, 0.6), (0.9, 0.25, 0.02)])
        car_colors = [tuple(palette[h]) for h in hues]
    lanes = rng.permutation(LANES)[:cars]
    speeds = np.sort(rng.uniform(speed_min, speed_max, cars))[::-1]  # car 0 fastest
    starts = np.concatenate([[0.0], rng.uniform(8.0, 18.0, cars - 1) * (1 + np.arange(cars - 1))])
    parts = car_meshes()
    light_tex = car_light_texture()
    nodes, car_paths = [], []
    for i in range(cars):
        s0, v, lane = float(starts[i]), float(speeds[i]), float(lanes[i])

        def car_transform(t, s0=s0, v=v, lane=lane):
            p, tan, sd = track.frame(s0 + v * t)
            return oriented(p + sd * lane, tan)

        car_paths.append((s0, v, lane))
        colour = tuple(float(x) for x in car_colors[i][:3])
        cid = CAR_ID0 + i
        children = (
            Node(f"car{i}_dark", static(np.eye(4)), parts["dark"],
                 Material(base_color=(0.03, 0.03, 0.035, 1.0), roughness=0.8), cid),
            Node(f"car{i}_glass", static(np.eye(4)), parts["glass"],
                 Material(base_color=(0.05, 0.07, 0.08, 0.45), roughness=0.05, alpha_mode="BLEND"), cid),
            Node(f"car{i}_lights", static(np.eye(4)), parts["lights"],
                 Material(base_color_texture=light_tex, emissive=(6.0, 6.0, 6.0), emissive_texture=light_tex,
                          roughness=0.2), cid),
        )
        nodes.append(Node(f"car{i}", car_transform, parts["body"],
                          Material(base_color=(*colour, 1.0), metallic=0.3, roughness=0.25), cid, children))
    return nodes, car_paths


def _cameras(rng: np.random.Generator, track: Track, half: float, car_paths: list[CarPath],
             shot_seconds: float, duration: float, chase_lag: float, first_shot: str):
    """(view(t), cut times, (n, 3) trackside camera positions): a chase on car k, then a
    trackside pan as car k passes, alternating every ``shot_seconds``."""
    rigs, cuts = [], []
    n_shots = max(int(np.ceil(duration / shot_seconds)), 1)
    cam_points = []
    first = SHOTS.index(first_shot)
    for k in range(n_shots):
        t0, t1 = k * shot_seconds, (k + 1) * shot_seconds
        if k:
            cuts.append(t0)
        hero = (k // 2) % len(car_paths)
        s0, v, lane = car_paths[hero]
        if (k + first) % 2 == 0:
            rigs.append(_chase_rig(track, s0, v, lane, chase_lag))
        else:
            tm = (t0 + t1) / 2
            p, _, sd = track.frame(s0 + v * tm)
            dist = rng.uniform(4.0, 5.5)  # from the road edge, behind the inner guardrail (3 m)
            eye = p + sd * track.inside * (half + dist) + UP * rng.uniform(1.2, 2.0)
            cam_points.append(eye)
            rigs.append(_pan_rig(track, eye, s0, v, lane))

    def view(t: float) -> np.ndarray:
        k = min(max(int(np.floor(t / shot_seconds + 1e-9)), 0), n_shots - 1)
        return rigs[k](t)

    return view, tuple(cuts), np.array(cam_points).reshape(-1, 3)


def _trees(rng: np.random.Generator, track: Track, half: float, lo: np.ndarray, hi: np.ndarray, trees: int,
           cam_points: np.ndarray) -> list[Node]:
    """Up to ``trees`` trees on the infield and an outer ring, clear of the track, the
    stands and the trackside cameras (a bounded number of tries)."""
    crown = crossed_quads(6.0, 5.0)
    trunk = cylinder(0.18, 3.5, 8, top_radius=0.1)
    foliage, trunks = [], []
    tries = 0
    while len(trunks) < trees and tries < trees * 30:
        tries += 1
        q = np.array([rng.uniform(lo[0] + 5, hi[0] - 5), 0.0, rng.uniform(lo[2] + 5, hi[2] - 5)])
        d, where = (x[0] for x in track.distance(q[None]))
        if not (half + 14.0 < d < 55.0 if where > 0 else half + 27.0 < d < 60.0):
            continue
        if len(cam_points) and np.min(np.linalg.norm(cam_points[:, [0, 2]] - q[[0, 2]], axis=1)) < 12.0:
            continue
        scale = rng.uniform(0.7, 1.3)
        yaw = rng.uniform(0, np.pi)
        c_, s_ = np.cos(yaw), np.sin(yaw)
        m = np.array([[c_ * scale, 0, s_ * scale, q[0]], [0, scale, 0, 0], [-s_ * scale, 0, c_ * scale, q[2]],
                      [0, 0, 0, 1]])
        trunks.append(transformed(trunk, m))
        foliage.append(transformed(crown, m @ translation((0.0, 2.3, 0.0))))
    if not trunks:
        return []
    trunk_mat = Material(base_color=(0.25, 0.17, 0.1, 1.0), roughness=0.9)
    leaf_mat = Material(base_color_texture=leaf_texture(rng), roughness=0.8, alpha_mode="MASK",
                        alpha_cutoff=0.5, double_sided=True)
    return [_fixed("trunks", merge(trunks), trunk_mat, TRUNK_ID),
            _fixed("foliage", merge(foliage), leaf_mat, FOLIAGE_ID)]


def _chase_rig(track: Track, s0: float, v: float, lane: float, lag: float):
    """Behind and above the car, following its path ``lag`` seconds late."""
    def view(t: float) -> np.ndarray:
        p, tan, sd = track.frame(s0 + v * (t - lag) - 6.0)
        eye = p + sd * lane * 0.8 + UP * 2.6
        q, qt, qs = track.frame(s0 + v * t)
        target = q + qs * lane + UP * 0.9 + qt * 3.0
        return cv.look_at(eye, target)
    return view


def _pan_rig(track: Track, eye: np.ndarray, s0: float, v: float, lane: float, lag: float = 0.1):
    """Fixed beside the track, turning to follow the car a little late."""
    def view(t: float) -> np.ndarray:
        q, _, qs = track.frame(s0 + v * (t - lag))
        return cv.look_at(eye, q + qs * lane + UP * 0.8)
    return view


def sun_by_clock(hours: float, noon_elevation_deg: float = 60.0) -> tuple[float, float]:
    """(elevation, azimuth) in degrees of a sun that rises at +x (azimuth 90 in the
    ``sun_and_sky`` convention) at 6:00, culminates at ``noon_elevation_deg`` towards -z
    (azimuth 180) at 12:00 and sets at -x (azimuth 270) at 18:00. Before 6 and after 18
    it stays on the horizon (``sun_and_sky`` lifts it to 2 degrees): dawn and dusk light."""
    day = (hours - 6.0) / 12.0  # 0 at sunrise, 1 at sunset
    elevation = noon_elevation_deg * np.sin(np.pi * np.clip(day, 0.0, 1.0))
    azimuth = 90.0 + 180.0 * float(np.clip(day, 0.0, 1.0))
    return float(elevation), azimuth


def sun_and_sky(elevation_deg: float, azimuth_deg: float) -> tuple[Sun, Sky]:
    """A sun at the given elevation (0 = horizon) and azimuth; lower suns are dimmer and warmer."""
    el, az = np.radians(np.clip(elevation_deg, 2.0, 89.0)), np.radians(azimuth_deg)
    direction = (float(np.cos(el) * np.sin(az)), float(np.sin(el)), float(np.cos(el) * np.cos(az)))
    warm = float(np.clip(1.0 - np.sin(el) / np.sin(np.radians(35.0)), 0.0, 1.0))  # 0 high sun, 1 low
    colour = (1.0, 0.95 - 0.25 * warm, 0.88 - 0.45 * warm)
    irradiance = 3.2 * (0.35 + 0.65 * min(np.sin(el) / np.sin(np.radians(45.0)), 1.0))
    sky = Sky(zenith=(0.22 - 0.08 * warm, 0.42 - 0.12 * warm, 0.88 - 0.3 * warm),
              horizon=(0.78 + 0.17 * warm, 0.84 - 0.1 * warm, 0.95 - 0.35 * warm),
              ground=(0.25, 0.27, 0.2), intensity=1.0 - 0.4 * warm)
    return Sun(direction=direction, color=colour, irradiance=float(irradiance)), sky
