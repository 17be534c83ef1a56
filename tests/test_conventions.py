"""The maths of SPEC §4 (datagen.conventions, datagen.reproject), without GL."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datagen import conventions as cv
from datagen.errors import ConfigError
from datagen.reproject import bilinear_sample, warp_previous

scales = st.sampled_from(cv.SCALES)
frame_indices = st.integers(0, 10**6)
jitters = st.tuples(st.floats(-0.499, 0.499), st.floats(-0.499, 0.499))
sizes = st.tuples(st.integers(1, 4096), st.integers(1, 4096))


# -- jitter -------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "n"), [(1.3, 14), (1.5, 18), (1.7, 24), (2.0, 32), (3.0, 72), (4.0, 128)])
def test_phase_count_is_ceil_8_scale_squared(scale, n):
    assert cv.jitter_phase_count(scale) == n == math.ceil(8 * scale * scale - 1e-9)


@pytest.mark.parametrize(("hr", "scale", "lr", "phases"), [
    ((1920, 1080), 1.7, (1129, 635), 24), ((1280, 720), 1.5, (853, 480), 19),
    ((1280, 720), 1.3, (985, 554), 14), ((2560, 1440), 3.0, (853, 480), 73),
    ((3840, 2160), 1.5, (2560, 1440), 18), ((1920, 1080), 2.0, (960, 540), 32)])
def test_rounded_lr_sizes_and_their_exact_ratio(hr, scale, lr, phases):
    """LR = HR / scale rounded per axis; the phase count follows the exact width ratio."""
    assert cv.lr_size(hr, scale) == lr
    ratio = cv.ratio_of(hr, lr)
    assert ratio == (hr[0] / lr[0], hr[1] / lr[1])
    assert cv.jitter_phase_count(ratio[0]) == phases
    block = cv.conventions_block(scale, 16, 0.1, 100.0, ratio=ratio)
    assert block["ratio"] == list(ratio) and block["jitter_phase_count"] == phases
    assert block["mip_bias_lr"] == pytest.approx(math.log2(lr[0] / hr[0]) - 1)


def test_first_jitters_are_halton_2_3_by_hand():
    # frame i uses Halton index i + 1: (1/2, 1/3), (1/4, 2/3), (3/4, 1/9), (1/8, 4/9), (5/8, 7/9)
    by_hand = [(0.0, -1 / 6), (-0.25, 1 / 6), (0.25, -7 / 18), (-0.375, -1 / 18), (0.125, 5 / 18)]
    for i, expected in enumerate(by_hand):
        assert cv.jitter_px(i, 2.0) == pytest.approx(expected, abs=1e-15)
    assert [cv.halton(k, 2) for k in range(1, 9)] == [1 / 2, 1 / 4, 3 / 4, 1 / 8, 5 / 8, 3 / 8, 7 / 8, 1 / 16]
    assert cv.halton(0, 3) == 0.0


@given(frame_indices, scales)
def test_jitter_in_open_half_pixel_and_never_zero(i, scale):
    jx, jy = cv.jitter_px(i, scale)
    assert -0.5 < jx < 0.5 and -0.5 < jy < 0.5
    assert (jx, jy) != (0.0, 0.0)


@given(frame_indices, scales)
def test_jitter_is_periodic_with_phase_count(i, scale):
    n = cv.jitter_phase_count(scale)
    assert cv.jitter_px(i, scale) == cv.jitter_px(i + n, scale) == cv.jitter_px(i % n, scale)


@pytest.mark.parametrize("scale", cv.SCALES)
def test_jitter_phases_are_distinct_within_a_period(scale):
    n = cv.jitter_phase_count(scale)
    assert len({cv.jitter_px(i, scale) for i in range(n)}) == n


# -- projection, pixels, y down ----------------------------------------------


def _camera(fov_y_deg: float, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    view = cv.look_at((1.0, 2.0, 3.0), (0.5, 1.5, -4.0))
    return view, cv.perspective(fov_y_deg, size[0] / size[1], 0.1, 100.0)


camera_points = st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.floats(0.2, 90.0))


@given(camera_points, jitters, sizes, st.floats(10.0, 120.0))
def test_jittered_projection_moves_points_by_minus_jitter(p_cam, jitter, size, fov):
    view, proj = _camera(fov, size)
    # a point inside the frustum, given as NDC-ish x, y and a distance along the view axis
    tan_y = math.tan(math.radians(fov) / 2)
    x, y, d = p_cam
    eye_point = np.array([x * d * tan_y * size[0] / size[1], y * d * tan_y, -d, 1.0])
    world = (np.linalg.inv(view) @ eye_point)[:3]
    plain = cv.project_px(proj @ view, world, size)
    shifted = cv.project_px(cv.jittered(proj, jitter, size) @ view, world, size)
    np.testing.assert_allclose(shifted, plain - np.asarray(jitter), atol=1e-9 * max(size))
    # and so the sample at a pixel centre c sees what the plain projection puts at c + jitter


def test_ndc_to_pixel_is_y_down_with_centres_at_half():
    size = (16, 9)
    corners = cv.ndc_to_pixel(np.array([[-1.0, 1.0], [1.0, -1.0], [0.0, 0.0]]), size)
    np.testing.assert_array_equal(corners, [[0.0, 0.0], [16.0, 9.0], [8.0, 4.5]])
    centres = cv.pixel_centres(size)
    assert centres.shape == (9, 16, 2)
    np.testing.assert_array_equal(centres[2, 5], [5.5, 2.5])  # [row y, column x] -> (x+.5, y+.5)


def test_project_px_up_is_small_y_and_right_is_large_x():
    size = (16, 9)
    view = cv.look_at((0.0, 0.0, 0.0), (0.0, 0.0, -1.0))
    vp = cv.perspective(60.0, 16 / 9, 0.1, 100.0) @ view
    centre, up, right = cv.project_px(vp, np.array([[0, 0, -5.0], [0, 1, -5.0], [1, 0, -5.0]]), size)
    np.testing.assert_allclose(centre, [8.0, 4.5])
    assert up[1] < 4.5 and up[0] == pytest.approx(8.0)
    assert right[0] > 8.0 and right[1] == pytest.approx(4.5)


def test_look_at_puts_the_target_on_the_view_axis():
    eye, target = np.array([3.0, 2.0, 1.0]), np.array([-1.0, 0.5, -2.0])
    view = cv.look_at(eye, target)
    np.testing.assert_allclose(view @ [*eye, 1.0], [0, 0, 0, 1], atol=1e-12)
    t = view @ [*target, 1.0]
    np.testing.assert_allclose(t[:2], 0.0, atol=1e-12)
    assert t[2] == pytest.approx(-np.linalg.norm(target - eye))  # looks down -z
    np.testing.assert_allclose(view[:3, :3] @ view[:3, :3].T, np.eye(3), atol=1e-12)


def test_gl_bytes_are_column_major():
    m = np.arange(16.0).reshape(4, 4)
    cols = np.frombuffer(cv.gl_bytes(m), dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(cols.T, m)  # GLSL reads column by column


@given(st.floats(0.01, 1.0), st.floats(10.0, 1000.0), st.floats(0.0, 1.0))
def test_device_depth_matches_the_projection_and_inverts(near, far, frac):
    depth = near + frac * (far - near)
    clip = cv.perspective(50.0, 1.5, near, far) @ [0.3, -0.2, -depth, 1.0]
    assert cv.device_depth(depth, near, far) == pytest.approx(clip[2] / clip[3] * 0.5 + 0.5, abs=1e-9)
    assert cv.linear_depth(cv.device_depth(depth, near, far), near, far) == pytest.approx(depth, rel=1e-6)


def test_device_depth_ends_and_sky():
    assert cv.device_depth(0.1, 0.1, 100.0) == pytest.approx(0.0, abs=1e-12)
    assert cv.device_depth(100.0, 0.1, 100.0) == pytest.approx(1.0)
    assert cv.device_depth(np.inf, 0.1, 100.0) == 1.0


# -- sizes and sample patterns -------------------------------------------------


@given(st.integers(1, 500), st.integers(1, 500), scales)
def test_lr_size_of_whole_multiples(lw, lh, scale):
    # 1.7 = 17 / 10, 1.5 = 3 / 2, 1.3 = 13 / 10: where HR / scale is whole, LR is exactly it
    denom = {1.3: 10, 1.5: 2, 1.7: 10}.get(scale, 1)
    lw, lh = lw * denom, lh * denom
    hr = (round(lw * scale), round(lh * scale))
    assert cv.lr_size(hr, scale) == (lw, lh)
    assert cv.ratio_of(hr, (lw, lh)) == pytest.approx((scale, scale), rel=1e-12)


@given(st.integers(1, 8000), st.integers(1, 8000), scales)
def test_lr_size_rounds_half_up_per_axis(w, h, scale):
    lw, lh = cv.lr_size((w, h), scale)
    for n, m in ((w, lw), (h, lh)):
        assert m >= 1 and (m == 1 or abs(m - n / scale) <= 0.5 + 1e-9)
        assert m == max(1, math.floor(n / scale + 0.5))


@given(st.integers(1, 4000), st.integers(1, 4000))
def test_grid_step_lines_the_grids_up(hr, lr):
    hr_step, lr_step = cv.grid_step(hr, lr)
    assert hr_step * lr == lr_step * hr  # the same span on both grids
    assert hr % hr_step == 0 and lr % lr_step == 0
    assert math.gcd(hr_step, lr_step) == 1  # and the smallest such


@given(st.integers(1, 256), st.integers(0, 2**32 - 1))
def test_stratified_offsets_one_per_stratum(spp, seed):
    offsets = cv.stratified_offsets(spp, seed)
    assert offsets.shape == (spp, 2)
    assert (offsets >= 0.0).all() and (offsets < 1.0).all()
    rows = max(d for d in range(1, math.isqrt(spp) + 1) if spp % d == 0)
    cols = spp // rows
    cells = {(int(x * cols), int(y * rows)) for x, y in offsets}
    assert len(cells) == spp  # every one of the rows x cols strata holds exactly one sample
    np.testing.assert_array_equal(offsets, cv.stratified_offsets(spp, seed))  # deterministic


def test_conventions_block_restates_the_numbers():
    block = cv.conventions_block(2.0, 16, 0.1, 500.0)
    assert block["jitter_phase_count"] == 32
    assert block["mip_bias_lr"] == pytest.approx(-2.0)
    assert (block["scale"], block["spp"], block["near"], block["far"]) == (2.0, 16, 0.1, 500.0)
    assert "p_prev - p_cur" in block["motion"]


# -- motion sign and reprojection -----------------------------------------------


def test_point_moving_right_has_negative_motion_and_warps_back():
    # a bright pixel at x = 4 in frame t-1 is at x = 7 in frame t: motion = p_prev - p_cur = (-3, 0)
    prev = np.zeros((5, 12))
    prev[2, 4] = 1.0
    motion = np.zeros((5, 12, 2))
    motion[..., 0] = -3.0
    warped, valid = warp_previous(prev, motion)
    assert warped[2, 7] == 1.0 and warped.sum() == 1.0
    # columns 0-2 would fetch from x < 0.5: content entering the view, no history
    assert not valid[:, :3].any() and valid[:, 3:].all()


affine = st.tuples(st.floats(-2, 2), st.floats(-2, 2), st.floats(-5, 5))


@given(affine, st.tuples(st.floats(-3, 3), st.floats(-3, 3)), st.integers(2, 20), st.integers(2, 20))
def test_warp_is_exact_on_affine_images(coeffs, shift, w, h):
    # bilinear interpolation reproduces an affine function exactly wherever it does not clamp
    a, b, c = coeffs

    def f(pos):
        return a * pos[..., 0] + b * pos[..., 1] + c

    centres = cv.pixel_centres((w, h))
    prev = f(centres)
    motion = np.broadcast_to(np.asarray(shift), (h, w, 2))
    warped, valid = warp_previous(prev, motion)
    p = centres + motion
    inside = (p[..., 0] >= 0.5) & (p[..., 0] <= w - 0.5) & (p[..., 1] >= 0.5) & (p[..., 1] <= h - 0.5)
    np.testing.assert_allclose(warped[inside], f(p)[inside], atol=1e-9)
    np.testing.assert_array_equal(valid, inside)


@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4))
def test_zero_motion_is_identity(w, h, c):
    img = np.random.default_rng(w * 100 + h * 10 + c).random((h, w, c))
    warped, valid = warp_previous(img, np.zeros((h, w, 2)))
    np.testing.assert_allclose(warped, img)
    assert valid.all()
    np.testing.assert_allclose(bilinear_sample(img, cv.pixel_centres((w, h))), img)


# -- Arm NSS export conversions ----------------------------------------------


@given(st.tuples(st.floats(-50, 50), st.floats(-50, 50)), st.tuples(st.floats(0, 300), st.floats(0, 200)),
       st.tuples(st.integers(1, 4096), st.integers(1, 4096)))
def test_nss_motion_is_current_minus_previous_in_uv(motion, pixel, size):
    # datagen: the point at `pixel` was at pixel + motion; NSS: uv(current) - uv(previous)
    prev = np.add(pixel, motion)
    want = (np.asarray(pixel) - prev) / np.asarray(size, float)
    np.testing.assert_allclose(cv.nss_motion_uv(motion, size), want, rtol=1e-12, atol=1e-15)


def test_nss_motion_examples():
    # a surface moving 4 px right and 2 px down since the last frame in a 128x72 buffer
    motion = np.array([[-4.0, -2.0]])  # it was 4 px left and 2 px up
    np.testing.assert_allclose(cv.nss_motion_uv(motion, (128, 72)), [[4 / 128, 2 / 72]])


def test_normalized_jitter_divides_by_the_lr_size():
    # Arm's own capture, 960x540 LR: Jitter (-0.1875, 0.1875) -> (-0.0001953125, 0.000347222...)
    got = cv.normalized_jitter([-0.1875, 0.1875], (960, 540))
    np.testing.assert_allclose(got, [-0.0001953125, 0.1875 / 540], rtol=1e-12)


@given(st.floats(10, 120), st.floats(0.3, 3.0), st.floats(0.01, 1.0), st.floats(2.0, 5000.0))
def test_fov_and_planes_come_back_from_the_projection(fov_y_deg, aspect, near, far):
    proj = cv.perspective(fov_y_deg, aspect, near, far)
    fov_x, fov_y = cv.fov_rad(proj)
    assert fov_y == pytest.approx(math.radians(fov_y_deg), rel=1e-9)
    assert math.tan(fov_x / 2) == pytest.approx(aspect * math.tan(fov_y / 2), rel=1e-9)
    assert cv.near_far(proj) == pytest.approx((near, far), rel=1e-6)
    flipped = np.diag([-1.0, -1.0, 1.0, 1.0]) @ proj  # a flip augmentation
    assert cv.fov_rad(flipped) == pytest.approx((fov_x, fov_y), rel=1e-12)
    turned = proj[[1, 0, 2, 3]] * np.array([[-1.0], [1.0], [1.0], [1.0]])  # a quarter turn: x, y swap
    assert cv.fov_rad(turned) == pytest.approx((fov_y, fov_x), rel=1e-12)


@given(st.tuples(st.floats(-20, 20), st.floats(-20, 20), st.floats(-20, 20)))
def test_view_projection_rows_read_row_major_project_like_proj_view(point):
    view = cv.look_at((1.0, 2.0, 30.0), (0.5, -0.5, 0.0))
    proj = cv.perspective(45.0, 16 / 9, 0.1, 100.0)
    m = np.array(cv.view_projection_rows(proj, view)).reshape(4, 4)  # how NSS's reader reshapes it
    clip = m @ np.array([*point, 1.0])
    np.testing.assert_allclose(clip, proj @ view @ np.array([*point, 1.0]), rtol=1e-12, atol=1e-9)
    assert cv.view_projection_rows(proj, view)[8:12] == pytest.approx((proj @ view)[2].tolist())


# -- OpenEXR standard camera attributes (row vectors) --------------------------


@given(st.tuples(st.floats(-20, 20), st.floats(-20, 20), st.floats(-20, 20)), sizes, jitters)
def test_exr_matrices_are_row_vector_camera_and_renderman_ndc(point, size, jitter):
    view = cv.look_at((1.0, 2.0, 30.0), (0.5, -0.5, 0.0))
    proj = cv.perspective(45.0, size[0] / size[1], 0.1, 100.0)
    p = np.array([*point, 1.0])
    cam = p @ cv.exr_world_to_camera(view)  # Imath: p * M
    eye = view @ p
    np.testing.assert_allclose(cam, [eye[0], eye[1], -eye[2], 1.0], atol=1e-9)  # +z forward = depth
    h = p @ cv.exr_world_to_ndc(proj, view)
    want = cv.project_px(proj @ view, np.array(point), size) / np.array(size, float)
    np.testing.assert_allclose(h[:2] / h[3], want, rtol=1e-7, atol=1e-7)
    # with the jittered projection a point lands at its unjittered position minus the jitter
    h = p @ cv.exr_world_to_ndc(cv.jittered(proj, jitter, size), view)
    np.testing.assert_allclose(h[:2] / h[3] * np.array(size), want * np.array(size) - np.array(jitter),
                               rtol=1e-7, atol=1e-6)


def test_exr_ndc_corners():
    view, proj = np.eye(4), cv.perspective(90.0, 2.0, 0.1, 100.0)
    m = cv.exr_world_to_ndc(proj, view)
    for point, corner in (((-2.0, 1.0, -1.0), (0.0, 0.0)), ((2.0, -1.0, -1.0), (1.0, 1.0))):
        h = np.array([*point, 1.0]) @ m
        np.testing.assert_allclose(h[:2] / h[3], corner, atol=1e-12)  # top-left, bottom-right


@pytest.mark.parametrize(("text", "size"), [("640x360", (640, 360)), (" 7X11 ", (7, 11)), ((16, 9), (16, 9))])
def test_parse_size(text, size):
    assert cv.parse_size(text) == size
    assert cv.parse_size(cv.format_size(size)) == size


@pytest.mark.parametrize("bad", ["1920by1080", "0x5", "-3x4", "64x", "6.5x4", (0, 1), (3, 4, 5), (True, 2),
                                 640])
def test_parse_size_refuses_in_one_message(bad):
    message = r"^--res .* is not WIDTHxHEIGHT of positive integers, e\.g\. 640x360$"
    with pytest.raises(ConfigError, match=message):
        cv.parse_size(bad, "--res")
