"""The renderer against analytic answers, on a real GL context (llvmpipe in CI).

Every scene here is made of flat rectangles (``Rect``) whose twin ray caster
(``cast``) gives the exact surface point, object id, depth and previous position
for any sample position, so jitter, motion, depth and ids are checked against
closed-form values rather than against another render. Sizes are tiny, odd
and non-square so that a transpose or a y-flip cannot pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from datagen import conventions as cv
from datagen.frame import Frame
from datagen.meshes import box, checker_texture, plane, sphere
from datagen.render import PREPASS_MAX_TRIANGLES, RenderConfig
from datagen.reproject import warp_previous
from datagen.scene import (
    Camera,
    Material,
    Node,
    Scene,
    Sky,
    Sun,
    Texture,
    TransformFn,
    rotation_x,
    rotation_y,
    rotation_z,
    static,
    translation,
)

FPS = 30.0
NO_SUN_DISC = Sky(sun_disc=0.0)  # keep a 50x-bright sun disc out of colour comparisons
MOTION_TOL_PX = 0.01


FACING_Z = rotation_x(np.pi / 2)
"""Turns the y-up plane mesh to face +z (towards a camera looking down -z), texture upright."""


# -- analytic scenes -------------------------------------------------------------


@dataclass(frozen=True)
class Rect:
    """A double-sided ``meshes.plane`` (local y = 0, |x| <= size_x/2, |z| <= size_z/2)
    on a path: drawn by the renderer and intersected exactly by ``cast``."""

    object_id: int
    transform: TransformFn
    size: tuple[float, float]
    material: Material = Material()

    def node(self) -> Node:
        material = dataclasses.replace(self.material, double_sided=True)
        return Node(f"rect{self.object_id}", self.transform, plane(*self.size), material, self.object_id)


def make_scene(rects: list[Rect], view: TransformFn, fov_y_deg: float = 50.0) -> Scene:
    camera = Camera(view=view, fov_y_deg=fov_y_deg, near=0.1, far=500.0)
    return Scene("analytic", tuple(r.node() for r in rects), camera, sky=NO_SUN_DISC, fps=FPS,
                 bounds=np.array([[-30.0, -1.0, -30.0], [30.0, 10.0, 30.0]]))


def camera_rays(view: np.ndarray, proj: np.ndarray, size, positions: np.ndarray):
    """World-space eye (3,) and ray directions (..., 3) through pixel positions (..., 2), y down."""
    w, h = size
    ndc = np.stack([positions[..., 0] / w * 2 - 1, 1 - positions[..., 1] / h * 2], -1)
    inv = np.linalg.inv(proj @ view)
    ends = []
    for z in (-1.0, 1.0):
        ones = np.ones(ndc.shape[:-1] + (1,))
        p = np.concatenate([ndc, z * ones, ones], -1) @ inv.T
        ends.append(p[..., :3] / p[..., 3:])
    return np.linalg.inv(view)[:3, 3], ends[1] - ends[0]


def cast(rects: list[Rect], t: float, eye: np.ndarray, dirs: np.ndarray):
    """Nearest rectangle hit along each ray at time t.

    Returns ids (...) uint32 (0 = sky), which (...) index into rects or -1, and
    the hit point in that rectangle's local space (..., 3).
    """
    best = np.full(dirs.shape[:-1], np.inf)
    which = np.full(dirs.shape[:-1], -1)
    local = np.zeros(dirs.shape)
    for k, rect in enumerate(rects):
        inv = np.linalg.inv(rect.transform(t))
        o, d = inv[:3, :3] @ eye + inv[:3, 3], dirs @ inv[:3, :3].T
        with np.errstate(divide="ignore", invalid="ignore"):
            s = -o[1] / d[..., 1]
        p = o + s[..., None] * d
        hit = (s > 0) & (np.abs(p[..., 0]) <= rect.size[0] / 2) & (np.abs(p[..., 2]) <= rect.size[1] / 2)
        # s is in units of the (unnormalised) direction, the same for every rect
        closer = hit & (s < best)
        best, which = np.where(closer, s, best), np.where(closer, k, which)
        local = np.where(closer[..., None], p, local)
    ids = np.array([0] + [r.object_id for r in rects], dtype=np.uint32)[which + 1]
    return ids, which, local


def expected(rects, scene: Scene, config: RenderConfig, frame_index: int, level: str) -> dict:
    """Analytic ids, depth and motion of the LR ("lr": sample at centre + jitter)
    or HR ("hr": sample at centre) buffer, and the interior mask: pixels whose
    every neighbour within one pixel sees the same surface."""
    size = config.lr_size if level == "lr" else config.hr_size
    t, t_prev = scene.frame_time(frame_index), scene.frame_time(frame_index - 1)
    view, view_prev = scene.camera.view(t), scene.camera.view(t_prev)
    cam = scene.camera
    proj = cv.perspective(cam.fov_y_deg, config.hr_width / config.hr_height, cam.near, cam.far)
    pos = cv.pixel_centres(size)
    if level == "lr":
        pos = pos + np.asarray(cv.jitter_px(frame_index, config.ratio[0]))
    eye, dirs = camera_rays(view, proj, size, pos)
    ids, which, local = cast(rects, t, eye, dirs)

    interior = np.ones(ids.shape, bool)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            _, d = camera_rays(view, proj, size, pos + (dx, dy))
            interior &= cast(rects, t, eye, d)[0] == ids

    depth = np.full(ids.shape, np.inf)
    turn_prev = view_prev.copy()
    turn_prev[:3, 3] = 0.0  # the sky is at infinity: only the camera's rotation moves it
    p_prev = cv.project_px(proj @ turn_prev, dirs, size)
    for k, rect in enumerate(rects):
        sel = which == k
        world = local[sel] @ rect.transform(t)[:3, :3].T + rect.transform(t)[:3, 3]
        depth[sel] = -(world @ view[2, :3] + view[2, 3])
        prev = local[sel] @ rect.transform(t_prev)[:3, :3].T + rect.transform(t_prev)[:3, 3]
        p_prev[sel] = cv.project_px(proj @ view_prev, prev, size)
    return {"ids": ids, "depth": depth, "motion": p_prev - pos, "interior": interior}


def moving_camera_over_ground() -> tuple[list[Rect], Scene]:
    """(a) a camera translating (no rotation) over a ground plane that fills the view."""
    rects = [Rect(1, static(np.eye(4)), (400.0, 400.0))]
    velocity, look = np.array([6.0, 0.6, -9.0]), np.array([0.2, -0.8, -1.0])

    def view(t):
        eye = np.array([0.0, 2.0, 4.0]) + velocity * t
        return cv.look_at(eye, eye + look)

    return rects, make_scene(rects, view)


def object_moving_under_static_camera() -> tuple[list[Rect], Scene]:
    """(b) a wall translating towards the camera and spinning, over a static ground, sky above."""

    def wall(t):
        position = translation((-0.4 + 4.5 * t, 1.2 + 1.5 * t, -0.5 + 6.0 * t))
        return position @ rotation_y(0.3 + 3.0 * t) @ FACING_Z

    rects = [Rect(1, static(np.eye(4)), (60.0, 60.0)), Rect(5, wall, (2.4, 1.8))]
    return rects, make_scene(rects, static(cv.look_at((0.0, 1.5, 4.0), (0.0, 0.9, 0.0))))


def camera_orbiting_geometry() -> tuple[list[Rect], Scene]:
    """A camera circling a fixed target (translation and rotation) over a ground and a wall."""
    rects = [Rect(1, static(np.eye(4)), (60.0, 60.0)),
             Rect(4, static(translation((0.3, 1.0, -1.0)) @ rotation_y(0.4) @ FACING_Z), (2.6, 2.0))]

    def view(t):
        a = 0.3 + 1.2 * t
        return cv.look_at((5.0 * np.sin(a), 2.0 + 1.5 * t, 5.0 * np.cos(a)), (0.0, 0.8, -0.5))

    return rects, make_scene(rects, view)


def rotating_camera_sky_only() -> tuple[list[Rect], Scene]:
    """(c) nothing but sky; the camera turns (yaw and pitch) on the spot."""

    def view(t):
        az, el = 0.4 + 1.5 * t, np.radians(35.0) + 0.3 * t
        return cv.look_at((0.0, 0.0, 0.0), (np.cos(el) * np.sin(az), np.sin(el), -np.cos(el) * np.cos(az)))

    return [], make_scene([], view)


SCENARIOS: dict[str, Callable[[], tuple[list[Rect], Scene]]] = {
    "camera_translating": moving_camera_over_ground,
    "object_moving": object_moving_under_static_camera,
    "camera_orbiting": camera_orbiting_geometry,
    "sky_rotation": rotating_camera_sky_only,
}
ODD_SIZES = {"16x9": ((32, 18), 2.0), "7x11": ((21, 33), 3.0), "12x8": ((21, 13), 1.7)}
"""LR size: HR and scale. 21x13 at 1.7 rounds to 12x8 LR: per-axis ratios 1.75 and 1.625."""


# -- jitter ------------------------------------------------------------------------


def _edge_distance(a: np.ndarray, b: np.ndarray, axis: int, inside: np.ndarray):
    """Signed distance along ``axis`` (0: x, 1: y) from the line through pixel
    points a and b, positive on the side of ``inside``."""

    def dist(p):
        o = 1 - axis  # the coordinate that parametrises the line
        along = (p[..., o] - a[o]) / (b[o] - a[o])
        return p[..., axis] - (a[axis] + along * (b[axis] - a[axis]))

    sign = np.sign(dist(inside))
    return lambda p: sign * dist(p)


@pytest.mark.parametrize(("hr", "scale"), [((144, 81), 1.5), ((192, 108), 2.0), ((288, 162), 3.0),
                                           ((150, 85), 1.7)])  # LR 88x50, rounded: ratio 1.7045 x 1.7
def test_sharp_edges_move_by_the_jitter(make_renderer, hr, scale):
    """A wall's tilted left and top edges, seen at one sample per LR pixel, sit
    exactly where the analytic edge moved by -jitter puts them (the sample of
    pixel c sees the scene at c + jitter), to well within 0.05 px."""
    renderer = make_renderer(hr=hr, scale=scale)
    size = renderer.config.lr_size
    alpha = np.arctan(0.618)  # golden slope: the rows sample the edge at well-spread sub-pixel offsets
    rot = rotation_z(alpha)
    corner = np.array([-1.0, 1.0, -10.0])  # the wall's top-left corner, world = camera space here
    centre = corner + rot[:3, :3] @ [20.0, -20.0, 0.0]
    wall = Rect(9, static(translation(centre) @ rot @ FACING_Z), (40.0, 40.0))
    scene = make_scene([wall], static(cv.look_at((0, 0, 0), (0, 0, -1))))
    vp = cv.perspective(50.0, hr[0] / hr[1], 0.1, 500.0) @ scene.camera.view(0)
    down, right = corner + rot[:3, :3] @ [0, -5.0, 0], corner + rot[:3, :3] @ [5.0, 0, 0]
    c_px, down_px, right_px, mid_px = cv.project_px(vp, np.array([corner, down, right, centre]), size)
    centres = cv.pixel_centres(size)

    def beyond_corner(end):  # pixels along the edge from the corner
        return (centres - c_px) @ ((end - c_px) / np.linalg.norm(end - c_px))

    edges = {  # edge: (signed distance, pixels that measure it: near it, away from the corner)
        "left": (_edge_distance(c_px, down_px, 0, mid_px), beyond_corner(down_px)),
        "top": (_edge_distance(c_px, right_px, 1, mid_px), beyond_corner(right_px)),
    }
    ratio_x = renderer.config.ratio[0]
    n_phases = cv.jitter_phase_count(ratio_x)
    for i in range(min(n_phases, 24)):
        frame = renderer.render(scene, i)
        jitter = np.asarray(cv.jitter_px(i, ratio_x))
        np.testing.assert_array_equal(frame.jitter_px, np.float32(jitter))
        covered = frame.object_id_lr == 9
        for name, (dist, along) in edges.items():
            d = dist(centres)
            use = (np.abs(d) < 2.0) & (along > 3.0)
            assert use.sum() > 30
            # the edge as it appears in the image, relative to the analytic one:
            # covered iff d(centre) > shift
            lo, hi = d[use & ~covered].max(), d[use & covered].min()
            assert lo < hi, f"{name} edge, frame {i}: coverage is not a clean edge"
            measured = (lo + hi) / 2
            predicted = float(dist(centres[0, 0]) - dist(centres[0, 0] + jitter))  # moved by -jitter
            assert abs(measured - predicted) < 0.05, (name, i, measured, predicted, lo, hi)
            assert lo - 0.005 <= predicted <= hi + 0.005, (name, i, lo, hi, predicted)
            if abs(predicted) > (hi - lo):  # the wrong sign is distinguishable here: reject it
                assert not lo <= -predicted <= hi, (name, i)


@pytest.mark.parametrize(("scale", "hr", "phases"), [
    (1.5, (24, 15), 18), (2.0, (32, 18), 32), (3.0, (21, 33), 72),
    (1.5, (32, 18), 19),   # LR 21x12 (21.33 rounded): ratio_x 32 / 21 = 1.524, 19 phases, not 18
    (1.3, (37, 21), 14), (1.7, (37, 21), 23)])  # LR 28x16, 22x12 (ratio_x 1.682: 23, not 24)
def test_frame_jitter_follows_conventions(make_renderer, scale, hr, phases):
    """Halton(2, 3) with ceil(8 ratio_x^2) phases, ratio_x = HR / LR width (the LR size rounded)."""
    renderer = make_renderer(hr=hr, scale=scale)
    ratio_x = hr[0] / renderer.config.lr_size[0]
    assert renderer.config.ratio[0] == ratio_x and renderer.config.lr_size == cv.lr_size(hr, scale)
    n = cv.jitter_phase_count(ratio_x)
    assert n == math.ceil(8 * ratio_x**2 - 1e-9) == phases
    _, scene = moving_camera_over_ground()
    for i in (0, 1, 2, 7, n, n + 3):
        frame = renderer.render(scene, i)
        assert frame.jitter_px.dtype == np.float32 and frame.jitter_px.shape == (2,)
        np.testing.assert_array_equal(frame.jitter_px, np.float32(cv.jitter_px(i, ratio_x)))


# -- motion, depth, ids against the analytic scenes -----------------------------


@pytest.mark.parametrize("frame_index", [0, 5], ids=["frame0", "frame5"])
@pytest.mark.parametrize("size", list(ODD_SIZES))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_motion_depth_and_ids_match_analytic(make_renderer, scenario, size, frame_index):
    """Motion within 0.01 px, depth within float32, ids exact, at LR and HR, on
    interior pixels. Frame 0's motion uses the scene one frame interval earlier."""
    hr, scale = ODD_SIZES[size]
    renderer = make_renderer(hr=hr, scale=scale)
    rects, scene = SCENARIOS[scenario]()
    frame = renderer.render(scene, frame_index)
    lr = expected(rects, scene, renderer.config, frame_index, "lr")
    hr_ = expected(rects, scene, renderer.config, frame_index, "hr")
    assert np.abs(lr["motion"][lr["interior"]]).max() > 0.2, "the scene should move"

    for level, want, motion, depth in (("lr", lr, frame.motion_lr, frame.depth_lr),
                                       ("hr", hr_, frame.motion_hr, frame.depth_hr)):
        inside = want["interior"]
        assert inside.mean() > 0.3, level
        err = np.abs(motion[inside] - want["motion"][inside]).max()
        assert err < MOTION_TOL_PX, f"{level} motion off by {err:.4f} px"
        sky = inside & (want["ids"] == 0)
        assert np.isposinf(depth[sky]).all(), level
        solid = inside & (want["ids"] != 0)
        np.testing.assert_allclose(depth[solid], want["depth"][solid], rtol=1e-5, err_msg=level)
    np.testing.assert_array_equal(frame.object_id_lr[lr["interior"]], lr["ids"][lr["interior"]])
    for rect in rects:  # every surface is actually tested at LR
        assert (lr["interior"] & (lr["ids"] == rect.object_id)).any(), rect.object_id


def test_static_scene_has_zero_motion_whatever_the_jitter(make_renderer):
    """Both positions are unjittered: jitter alone never shows up as motion."""
    renderer = make_renderer(hr=(32, 18), scale=2.0)
    rects, scene = object_moving_under_static_camera()
    still = make_scene(rects[:1], scene.camera.view)
    for i in range(4):
        frame = renderer.render(still, i)
        assert np.abs(frame.motion_lr).max() < 1e-6
        assert np.abs(frame.motion_hr).max() < 1e-6


def test_depth_of_a_wall_facing_the_camera_is_exact_metres_and_sky_is_inf(make_renderer):
    renderer = make_renderer(hr=(32, 18), scale=2.0)
    view = cv.look_at((1.0, 2.0, 3.0), (-2.0, 1.0, -4.0))
    # in camera space: a wall at 7.25 m covering x < 0, i.e. the left half of the image
    wall = Rect(3, static(np.linalg.inv(view) @ translation((-50.0, 0.0, -7.25)) @ FACING_Z), (100.0, 100.0))
    frame = renderer.render(make_scene([wall], static(view)), 2)
    for depth, w in ((frame.depth_lr, 16), (frame.depth_hr, 32)):
        assert depth.dtype == np.float32
        np.testing.assert_allclose(depth[:, : w // 2], 7.25, rtol=1e-6)
        assert np.isposinf(depth[:, w // 2:]).all()
    np.testing.assert_array_equal(frame.object_id_lr[:, :8], 3)
    np.testing.assert_array_equal(frame.object_id_lr[:, 8:], 0)


def test_object_ids_sky_zero_and_full_uint32(make_renderer):
    renderer = make_renderer(hr=(21, 33), scale=3.0)
    ids = (7, 300, 70000)  # 70000 needs more than 16 bits
    rects = [Rect(i, static(translation((x, 0.0, -6.0)) @ FACING_Z), (1.2, 4.0))
             for i, x in zip(ids, (-1.3, 0.0, 1.3), strict=True)]
    scene = make_scene(rects, static(cv.look_at((0, 0, 0), (0, 0, -1))), fov_y_deg=80.0)
    frame = renderer.render(scene, 1)
    want = expected(rects, scene, renderer.config, 1, "lr")
    assert frame.object_id_lr.dtype == np.uint32
    np.testing.assert_array_equal(frame.object_id_lr[want["interior"]], want["ids"][want["interior"]])
    assert set(np.unique(frame.object_id_lr)) == {0, *ids}
    assert (frame.object_id_lr[0] == 0).all()  # sky above the walls


# -- reference and reprojection --------------------------------------------------------


def smooth_texture(n: int = 128) -> Texture:
    """Low-frequency colour waves: bilinear resampling is nearly exact on them, so
    a warp's error measures its motion vectors, not interpolation blur."""
    u = (np.arange(n) + 0.5) / n * 2 * np.pi
    uu, vv = np.meshgrid(u, u)
    rgb = [np.sin(uu) * np.cos(vv), np.sin(uu + vv), np.cos(2 * vv)]
    px = np.stack([*(0.5 + 0.4 * c for c in rgb), np.ones_like(uu)], -1)
    return Texture((px * 255).round().astype(np.uint8))


LOOK_AT_THE_MIDDLE = static(cv.look_at((0.5, 2.5, 6.0), (0.0, 0.4, -1.0)))


def textured_scene(camera_view: TransformFn, texture: Texture, uv_repeat: float) -> Scene:
    """A textured ground, a box and a sphere: texture detail and silhouettes."""
    ground = Material(base_color_texture=texture, roughness=0.8)
    nodes = (
        Node("ground", static(np.eye(4)), plane(40.0, 40.0, (uv_repeat, uv_repeat)), ground, object_id=1),
        Node("box", static(translation((-1.0, 0.5, -1.0))), box((1.0, 1.0, 1.0)),
             Material(base_color=(0.8, 0.2, 0.1, 1.0)), object_id=2),
        Node("ball", static(translation((1.2, 0.6, 0.0))), sphere(0.6, 12, 24),
             Material(base_color=(0.1, 0.3, 0.9, 1.0), roughness=0.3), object_id=3),
    )
    camera = Camera(view=camera_view, fov_y_deg=50.0, near=0.1, far=200.0)
    return Scene("textured", nodes, camera, sky=NO_SUN_DISC, fps=FPS,
                 bounds=np.array([[-20.0, -0.1, -20.0], [20.0, 3.0, 20.0]]))


def test_reference_converges_as_spp_grows(make_renderer):
    scene = textured_scene(LOOK_AT_THE_MIDDLE, checker_texture(64, 8), 10.0)
    truth = make_renderer(hr=(48, 27), scale=1.5, spp=256).render(scene, 0).color_hr.astype(np.float64)
    errors = []
    for spp in (1, 4, 16, 64):
        color = make_renderer(hr=(48, 27), scale=1.5, spp=spp).render(scene, 0).color_hr.astype(np.float64)
        errors.append(float(np.sqrt(np.mean((color - truth) ** 2))))
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < errors[0] / 4, errors


def test_depth_prepass_leaves_the_reference_unchanged(make_renderer):
    """``Scene.depth_prepass`` (each HR sample draws depth first, then shades the nearest
    surface alone) changes the image only where two surfaces have exactly the same
    depth: over a box, balls (one of more than PREPASS_MAX_TRIANGLES, drawn after the
    pre-pass), an alpha-tested card and a blended pane, within 1e-3."""
    holes = np.zeros((16, 16, 4), np.uint8)
    holes[..., :3] = 200
    holes[..., 3] = np.where((np.arange(16)[:, None] // 4 + np.arange(16) // 4) % 2, 255, 0)
    masked = Material(base_color_texture=Texture(holes), alpha_mode="MASK", double_sided=True)
    card = Node("card", static(translation((-0.6, 0.9, 0.2)) @ FACING_Z), plane(1.6, 1.6), masked,
                object_id=4)
    pane = Node("pane", static(translation((0.9, 0.8, 1.2)) @ FACING_Z), plane(1.2, 1.2),
                Material(base_color=(0.3, 0.6, 0.9, 0.4), alpha_mode="BLEND", double_sided=True), object_id=5)
    dense = Node("dense ball", static(translation((-0.5, 0.7, -0.6))), sphere(0.5, 32, 64),  # detail: after
                 Material(base_color=(0.2, 0.8, 0.3, 1.0)), object_id=6)
    assert len(dense.mesh.indices) > PREPASS_MAX_TRIANGLES
    scene = textured_scene(LOOK_AT_THE_MIDDLE, checker_texture(64, 8), 10.0)
    scene = dataclasses.replace(scene, nodes=(*scene.nodes, card, pane, dense))
    renderer = make_renderer(hr=(64, 36), scale=2.0, spp=4)
    before = renderer.render(scene, 0)
    after = renderer.render(dataclasses.replace(scene, depth_prepass=True), 0)
    np.testing.assert_allclose(after.color_hr.astype(np.float32), before.color_hr.astype(np.float32),
                               rtol=0, atol=1e-3)
    assert before.color_hr.max() > 0.1  # something was drawn
    np.testing.assert_array_equal(after.depth_hr, before.depth_hr)


def test_reference_is_the_box_filtered_pixel_footprint(make_renderer):
    """Unlit emissive wall (colour exactly 1) on black: each HR pixel holds the
    fraction of [x, x+1) x [y, y+1) the wall covers, not of a footprint shifted
    by half a pixel; the LR colour is the wall or black at its one sample."""
    renderer = make_renderer(hr=(48, 27), scale=1.5, spp=256)
    wall = Rect(6, static(translation((-0.7, 0.4, -6.0)) @ rotation_z(0.35) @ FACING_Z), (3.0, 2.0),
                Material(base_color=(0.0, 0.0, 0.0, 1.0), emissive=(1.0, 1.0, 1.0)))
    base = make_scene([wall], static(cv.look_at((0, 0, 0), (0, 0, -1))))
    scene = dataclasses.replace(base, sun=Sun(irradiance=0.0), sky=Sky(intensity=0.0, sun_disc=0.0))
    frame = renderer.render(scene, 0)
    c = renderer.config
    proj = cv.perspective(50.0, c.hr_width / c.hr_height, 0.1, 500.0)

    def coverage(shift: float, n: int = 24) -> np.ndarray:
        sub = (np.arange(n) + 0.5) / n + shift
        pos = cv.pixel_centres(c.hr_size)[:, :, None, None, :] - 0.5 + np.stack(np.meshgrid(sub, sub), -1)
        eye, dirs = camera_rays(scene.camera.view(0), proj, c.hr_size, pos)
        return (cast([wall], 0.0, eye, dirs)[0] == 6).mean((2, 3))

    color = frame.color_hr.astype(np.float64)
    np.testing.assert_allclose(color, color[..., :1].repeat(3, -1))  # grey: emission only
    cov, cov_shifted = coverage(0.0), coverage(-0.5)
    edge = (cov > 0) & (cov < 1)
    assert edge.sum() > 20
    # (a 24 x 24 grid can miss a sliver of the wall: 1/256 of a pixel)
    np.testing.assert_allclose(color[cov == 1], 1.0, atol=0.01)
    np.testing.assert_allclose(color[cov == 0], 0.0, atol=0.01)
    err = np.abs(color[..., 0] - cov)[edge]
    err_shifted = np.abs(color[..., 0] - cov_shifted)[edge]
    assert err.mean() < 0.01 and err.max() < 0.05, (err.mean(), err.max())
    assert err_shifted.mean() > 10 * err.mean()
    lit = frame.object_id_lr == 6
    assert lit.any() and not lit.all()
    np.testing.assert_array_equal(frame.color_lr[lit], 1.0)
    np.testing.assert_array_equal(frame.color_lr[~lit], 0.0)


def test_previous_hr_frame_warped_by_motion_matches_current(make_renderer):
    """Static scene, camera dollying and turning: warping frame t-1 by
    motion_hr(t) (prev_pixel = pixel + motion) explains frame t far better
    than leaving it in place. What is left is disocclusion and view-dependent
    shading around the box and the ball."""

    def view(t):
        return cv.look_at((-3.0 + 20.0 * t, 4.0, 6.0 - 6.0 * t), (0.0, 0.3, -1.0))

    scene = textured_scene(view, smooth_texture(), 2.0)
    renderer = make_renderer(hr=(64, 36), scale=2.0, spp=16)
    prev, cur = renderer.render(scene, 3), renderer.render(scene, 4)
    assert np.abs(cur.motion_hr).max() > 3.0  # the camera really moves
    c_prev, c_cur = prev.color_hr.astype(np.float64), cur.color_hr.astype(np.float64)
    warped, valid = warp_previous(c_prev, cur.motion_hr)
    assert valid.mean() > 0.8
    err_warp = np.abs(warped - c_cur)[valid].mean()
    err_none = np.abs(c_prev - c_cur)[valid].mean()
    assert err_warp < 0.3 * err_none, (err_warp, err_none)
    # the sign matters: warping the other way is worse than not warping at all
    err_wrong = np.abs(warp_previous(c_prev, -cur.motion_hr)[0] - c_cur)[valid].mean()
    assert err_wrong > err_none


# -- layout, orientation, shapes ---------------------------------------------------------


@pytest.mark.parametrize("size", list(ODD_SIZES))
def test_odd_sizes_are_right_side_up_and_unflipped(make_renderer, size):
    """Sky on top, ground at the bottom, a red box on the left shows on the left."""
    hr, scale = ODD_SIZES[size]
    renderer = make_renderer(hr=hr, scale=scale)
    ground = Node("ground", static(np.eye(4)), plane(60.0, 60.0), Material(base_color=(0.5, 0.5, 0.5, 1.0)),
                  object_id=1)
    red = Node("red", static(translation((-1.0, 0.4, 0.0))), box((0.8, 0.8, 0.8)),
               Material(base_color=(0.0, 0.0, 0.0, 1.0), emissive=(6.0, 0.0, 0.0)), object_id=2)
    camera = Camera(view=static(cv.look_at((0.0, 1.6, 6.0), (0.0, 1.2, 0.0))), fov_y_deg=50.0)
    frame = renderer.render(Scene("layout", (ground, red), camera, sky=NO_SUN_DISC, fps=FPS), 0)
    w, (big_w, big_h) = renderer.config.lr_size[0], renderer.config.hr_size

    ids = frame.object_id_lr
    assert (ids[0] == 0).all() and (ids[-1] == 1).all()
    assert np.isposinf(frame.depth_lr[0]).all() and np.isfinite(frame.depth_lr[-1]).all()
    assert np.isposinf(frame.depth_hr[0]).all() and np.isfinite(frame.depth_hr[-1]).all()
    cols = np.nonzero((ids == 2).any(0))[0]
    assert cols.size and cols.max() < w / 2
    red_hr = frame.color_hr[..., 0].astype(np.float32) - frame.color_hr[..., 1:].max(-1) > 1.0
    assert red_hr.any() and np.nonzero(red_hr.any(0))[0].max() < big_w / 2
    assert np.nonzero(red_hr.any(1))[0].min() > big_h / 3  # the box stands on the ground, below the horizon
    # world-space normals and albedo of the ground, below the box
    np.testing.assert_allclose(frame.normal_lr[-1].astype(np.float32), np.tile([0, 1, 0], (w, 1)), atol=2e-3)
    np.testing.assert_allclose(frame.albedo_lr[-1].astype(np.float32), 0.5, atol=1e-3)
    roughness_metallic = np.tile([0.5, 0.0], (w, 1))  # Material() defaults
    np.testing.assert_allclose(frame.material_lr[-1].astype(np.float32), roughness_metallic, atol=1e-3)
    assert (frame.albedo_lr[0] == 0).all() and (frame.normal_lr[0] == 0).all()


def test_every_frame_field_has_its_documented_shape_and_dtype(make_renderer):
    renderer = make_renderer(hr=(21, 33), scale=3.0)
    scene = textured_scene(LOOK_AT_THE_MIDDLE, checker_texture(64, 8), 10.0)
    frame = renderer.render(scene, 0)
    h, w, big_h, big_w = 11, 7, 33, 21
    want = {
        "color_lr": ((h, w, 3), np.float16), "depth_lr": ((h, w), np.float32),
        "motion_lr": ((h, w, 2), np.float32), "normal_lr": ((h, w, 3), np.float16),
        "albedo_lr": ((h, w, 3), np.float16), "material_lr": ((h, w, 2), np.float16),
        "object_id_lr": ((h, w), np.uint32), "color_hr": ((big_h, big_w, 3), np.float16),
        "depth_hr": ((big_h, big_w), np.float32), "motion_hr": ((big_h, big_w, 2), np.float32),
        "jitter_px": ((2,), np.float32), "view": ((4, 4), np.float32), "proj": ((4, 4), np.float32),
        "exposure": float, "camera_cut": bool, "time_s": float,
    }
    assert set(want) == {f.name for f in dataclasses.fields(Frame)}
    for name, spec in want.items():
        value = getattr(frame, name)
        if isinstance(spec, tuple):
            assert (value.shape, value.dtype) == (spec[0], np.dtype(spec[1])), name
            assert np.isfinite(value).all() or name.startswith("depth"), name
        else:
            assert type(value) is spec, name
    for depth in (frame.depth_lr, frame.depth_hr):  # finite or +inf (sky), nothing else
        assert not np.isnan(depth).any() and not np.isneginf(depth).any()


def test_frame_metadata_time_cut_exposure_matrices(make_renderer):
    renderer = make_renderer(hr=(32, 18), scale=2.0)
    _, base = moving_camera_over_ground()
    scene = dataclasses.replace(base, camera=dataclasses.replace(base.camera, cuts=(0.11,)), exposure=0.25)
    frames = [renderer.render(scene, i) for i in range(6)]
    assert [f.camera_cut for f in frames] == [False, False, False, False, True, False]  # t = 0.133 >= 0.11
    proj = cv.perspective(50.0, 32 / 18, 0.1, 500.0)
    for i, f in enumerate(frames):
        assert f.time_s == i / FPS and f.exposure == 0.25
        np.testing.assert_array_equal(f.view, scene.camera.view(i / FPS).astype(np.float32))
        np.testing.assert_array_equal(f.proj, proj.astype(np.float32))  # unjittered


def test_close_leaves_a_shared_context_clean(gl_ctx):
    from datagen.render import Renderer

    config = RenderConfig(32, 18, 2.0, spp=1, shadow_map_size=64)
    _, scene = moving_camera_over_ground()
    first = Renderer(config, ctx=gl_ctx)
    first.render(scene, 0)
    first.close()
    second = Renderer(config, ctx=gl_ctx)  # makes framebuffers on the context first left behind
    error = gl_ctx.error
    second.close()
    assert error == "GL_NO_ERROR"


def test_a_failed_init_releases_the_context_it_made(monkeypatch):
    """A Renderer that fails after making its own context (here: its targets) releases it."""
    import datagen.render as render

    made = []

    def create_and_keep():
        made.append(render_create())
        return made[-1]

    def fail(self):
        raise MemoryError("no memory for the targets")

    render_create = render.create_context
    monkeypatch.setattr(render, "create_context", create_and_keep)
    monkeypatch.setattr(render.Renderer, "_make_targets", fail)
    with pytest.raises(MemoryError):
        render.Renderer(RenderConfig(32, 18, 2.0, spp=1, shadow_map_size=64))
    assert len(made) == 1 and type(made[0].mglo).__name__ == "InvalidObject"  # released
