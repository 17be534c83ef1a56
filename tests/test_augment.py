"""Augmentation in the build pipeline: flips and rotations of motion, jitter and proj
(property tests by reprojection), colour and exposure, temporal stride, crops,
scene-parameter variation, the recipe's [augment]/[vary] tables, and a real
augmented build that validates and repeats bit for bit."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from test_build import assert_same_arrays
from test_store import random_frame

from datagen import conventions as cv
from datagen.errors import ConfigError
from datagen.pipeline.augment import LUMA, Augmentation, AugmentConfig, with_stride
from datagen.pipeline.build import build
from datagen.pipeline.plan import BuildConfig, Splits, load_config, plan
from datagen.reproject import warp_previous
from datagen.scene import Camera, Scene
from datagen.scenes import recipes
from datagen.store import open_store
from datagen.store.validate import validate
from datagen.store.validate_motion import camera_agreement, lr_hr_agreement

DATAGEN = [sys.executable, "-m", "datagen"]


@st.composite
def geometries(draw, max_side: int = 12):
    """(width, height, Augmentation of flips and turns): odd turns only on square frames."""
    w = draw(st.integers(3, max_side))
    h = w if draw(st.booleans()) else draw(st.integers(3, max_side))
    turns = draw(st.sampled_from((0, 1, 2, 3) if w == h else (0, 2)))
    return w, h, Augmentation(hflip=draw(st.booleans()), vflip=draw(st.booleans()), quarter_turns=turns)


def index_image(w: int, h: int) -> np.ndarray:
    """(h, w, 2) float: each pixel holds its own (x, y), to see where the arrays move it."""
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs, ys], -1).astype(np.float64)


# -- motion vectors, by reprojection -----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(geometries(), st.integers(0, 2**32 - 1))
def test_warp_commutes_with_flips_and_turns(geometry, seed):
    """Warping augmented t-1 by augmented motion gives augmented t, for any motion field."""
    w, h, aug = geometry
    rng = np.random.default_rng(seed)
    prev = rng.random((h, w, 3))
    motion = rng.uniform(-2.5, 2.5, (h, w, 2))
    cur, valid = warp_previous(prev, motion)
    warped, valid_aug = warp_previous(aug.pixels(prev, None), aug.vector(aug.pixels(motion, None)))
    assert np.array_equal(valid_aug, aug.pixels(valid, None))
    assert np.allclose(warped[valid_aug], aug.pixels(cur, None)[valid_aug], atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(geometries(), st.integers(-2, 2), st.integers(-2, 2), st.integers(0, 2**32 - 1))
def test_translated_pattern_reprojects_exactly_after_augmentation(geometry, dx, dy, seed):
    """Frame t is frame t-1 moved by (dx, dy) whole pixels, so motion = (-dx, -dy)
    everywhere; after the flip or turn the augmented motion still brings augmented t-1
    exactly onto augmented t, and the untransformed motion does not (unless it is
    unchanged by the geometry)."""
    w, h, aug = geometry
    rng = np.random.default_rng(seed)
    big = rng.random((h + 4, w + 4))
    prev, cur = big[2:2 + h, 2:2 + w], big[2 - dy:2 - dy + h, 2 - dx:2 - dx + w]
    motion = np.broadcast_to(np.array([-dx, -dy], float), (h, w, 2))
    warped, valid = warp_previous(aug.pixels(prev, None), aug.vector(aug.pixels(motion, None)))
    assert valid.any()
    assert np.array_equal(warped[valid], aug.pixels(cur, None)[valid])
    naive, naive_valid = warp_previous(aug.pixels(prev, None), aug.pixels(motion, None))
    if not np.allclose(aug.vector((-dx, -dy)), (-dx, -dy)) and naive_valid.any():
        assert not np.array_equal(naive[naive_valid], aug.pixels(cur, None)[naive_valid])


def test_flip_negates_and_turn_swaps():
    v = np.array([2.0, 0.5])
    assert np.allclose(Augmentation(hflip=True).vector(v), (-2.0, 0.5))
    assert np.allclose(Augmentation(vflip=True).vector(v), (2.0, -0.5))
    assert np.allclose(Augmentation(quarter_turns=1).vector(v), (0.5, -2.0))  # right -> up
    half_turn = Augmentation(hflip=True, vflip=True)
    assert np.allclose(Augmentation(quarter_turns=2).vector(v), half_turn.vector(v))


# -- proj and jitter ------------------------------------------------------------------------------


def unproject(ndc_xy: np.ndarray, view_proj: np.ndarray, ndc_z: float = 0.3) -> np.ndarray:
    """World points (..., 3) seen at NDC (..., 2) at device depth ``ndc_z``."""
    ones = np.ones((*ndc_xy.shape[:-1], 1))
    p = np.concatenate([ndc_xy, ndc_z * ones, ones], -1)
    world = p @ np.linalg.inv(view_proj).T
    return world[..., :3] / world[..., 3:]


def pixel_to_ndc(p: np.ndarray, size) -> np.ndarray:
    w, h = size
    return np.stack([2 * p[..., 0] / w - 1, 1 - 2 * p[..., 1] / h], -1)


@st.composite
def cropped_geometries(draw):
    """(render (W, H), Augmentation with a crop, flips and turns) at scale 2."""
    w_lr, h_lr = draw(st.integers(3, 10)), draw(st.integers(3, 10))
    side = draw(st.integers(2, min(w_lr, h_lr)))
    square = draw(st.booleans())
    cw, ch = (side, side) if square else (draw(st.integers(2, w_lr)), draw(st.integers(2, h_lr)))
    x0, y0 = draw(st.integers(0, w_lr - cw)), draw(st.integers(0, h_lr - ch))
    turns = draw(st.sampled_from((0, 1, 2, 3) if cw == ch else (0, 2)))
    aug = Augmentation(hflip=draw(st.booleans()), vflip=draw(st.booleans()), quarter_turns=turns,
                       crop=(2 * x0, 2 * y0, 2 * cw, 2 * ch))
    return (2 * w_lr, 2 * h_lr), aug


@settings(max_examples=60, deadline=None)
@given(cropped_geometries(), st.floats(30, 90), st.integers(0, 2**32 - 1))
def test_augmented_proj_and_jitter_land_on_the_augmented_grid(geometry, fov, seed):
    """A world point seen at HR pixel centre (x, y) projects, through the augmented proj,
    onto the centre of the pixel the arrays moved (x, y) to; and the world point of the LR
    sample (x + 0.5 + jx, y + 0.5 + jy) onto (x' + 0.5 + jx', y' + 0.5 + jy') with the
    augmented jitter."""
    (W, H), aug = geometry
    rng = np.random.default_rng(seed)
    view = cv.look_at(rng.uniform(-5, 5, 3), rng.uniform(-1, 1, 3) + (0, 0, -10))
    proj = cv.perspective(fov, W / H, 0.1, 100.0)
    proj_aug = aug.ndc_matrix((W, H)) @ proj
    for size, scale in (((W, H), 1), ((W // 2, H // 2), 2)):
        crop = tuple(v // scale for v in aug.crop)
        jitter = np.array(cv.jitter_px(int(rng.integers(0, 32)), 2.0)) if scale == 2 else np.zeros(2)
        where = aug.pixels(index_image(*size), crop)  # original (x, y) of every augmented pixel
        world = unproject(pixel_to_ndc(where + 0.5 + jitter, size), proj @ view)
        new_size = (where.shape[1], where.shape[0])
        got = cv.project_px(proj_aug @ view, world, new_size)
        assert np.allclose(got, cv.pixel_centres(new_size) + aug.vector(jitter), atol=1e-6)


def test_stored_size_and_crop_offsets():
    aug = Augmentation(quarter_turns=1, crop=(4, 2, 10, 10))
    assert aug.stored_size((32, 18)) == (10, 10)
    frame = random_frame(np.random.default_rng(0), 3, (32, 18), 2.0)
    out = aug.apply(frame)
    assert out.color_hr.shape == (10, 10, 3) and out.depth_lr.shape == (5, 5)
    assert np.array_equal(out.depth_hr, np.rot90(frame.depth_hr[2:12, 4:14]))
    assert np.array_equal(out.object_id_lr, np.rot90(frame.object_id_lr[1:6, 2:7]))
    assert np.array_equal(out.normal_lr, np.rot90(frame.normal_lr[1:6, 2:7]))  # world normals: moved only


# -- colour and exposure --------------------------------------------------------------------------


def test_colour_and_exposure():
    frame = random_frame(np.random.default_rng(1), 0, (16, 10), 2.0)
    aug = Augmentation(exposure_ev=1.0, wb_gains=(1.1, 0.95, 1.05), hue_deg=20.0)
    out = aug.apply(frame)
    m = aug.colour_matrix()
    for name in ("color_lr", "color_hr"):
        want = np.clip(getattr(frame, name).astype(np.float64) @ m.T, 0, None) * frame.exposure
        got = getattr(out, name).astype(np.float64) * out.exposure
        assert np.allclose(got, want, rtol=2e-3, atol=1e-3), name  # exposure x colour displays the same
    assert out.exposure == pytest.approx(frame.exposure / 2)
    assert np.array_equal(out.albedo_lr, frame.albedo_lr) and np.array_equal(out.motion_hr, frame.motion_hr)
    grey = np.ones(3)
    hue_only = Augmentation(hue_deg=33.0).colour_matrix()
    assert np.allclose(hue_only @ grey, grey)  # a rotation about the grey axis keeps grey
    assert not np.allclose(hue_only @ (1.0, 0.2, 0.1), (1.0, 0.2, 0.1))
    gains = np.array(plan(dataclasses.replace(TINY, augment=AugmentConfig(white_balance=0.2)))[0]
                     .augmentation.wb_gains)
    assert float(LUMA @ gains) == pytest.approx(1.0) and not np.allclose(gains, 1.0)


def test_identity_returns_the_frame():
    frame = random_frame(np.random.default_rng(2), 0, (16, 10), 2.0)
    assert Augmentation(stride=2).apply(frame) is frame


def test_another_ratio_takes_the_augmented_hr_and_augments_only_its_lr():
    """``apply_ratio``: an extra ratio's Frame of the same render gets its LR fields and
    jitter augmented exactly as ``apply`` does, and the primary's augmented HR arrays
    themselves (augmented once, not once per ratio)."""
    rng = np.random.default_rng(4)
    primary = random_frame(rng, 0, (16, 10), 2.0)
    other = random_frame(rng, 0, (16, 10), 1.6)
    other = dataclasses.replace(other, **{name: getattr(primary, name) for name in (
        "color_hr", "depth_hr", "motion_hr", "view", "proj")}, exposure=primary.exposure)
    aug = Augmentation(hflip=True, vflip=True, quarter_turns=2, exposure_ev=0.5,
                       wb_gains=(1.1, 0.95, 1.02), hue_deg=12.0)
    done = aug.apply(primary)
    out, whole = aug.apply_ratio(other, done), aug.apply(other)
    for name in ("color_lr", "depth_lr", "motion_lr", "normal_lr", "albedo_lr", "material_lr",
                 "object_id_lr", "jitter_px"):
        assert np.array_equal(getattr(out, name), getattr(whole, name), equal_nan=True), name
        assert getattr(out, name).shape == getattr(other, name).shape, name
    for name in ("color_hr", "depth_hr", "motion_hr", "proj"):
        assert getattr(out, name) is getattr(done, name), name
        assert np.array_equal(getattr(out, name), getattr(whole, name), equal_nan=True), name
    assert out.exposure == whole.exposure == done.exposure != other.exposure
    assert Augmentation(stride=2).apply_ratio(other, primary) is other


# -- real renders ---------------------------------------------------------------------------------


def warp_error(prev, cur, motion) -> float:
    warped, valid = warp_previous(prev.astype(np.float64), motion)
    return float(np.abs(warped - cur.astype(np.float64))[valid].mean())


def fast_primitives(seed: int) -> Scene:
    """Primitives moving about a pixel per frame at 32x18."""
    recipe = recipes.load("primitives")
    return dataclasses.replace(recipe, params={**recipe.params, "camera_speed": 20.0,
                                               "object_speed": 10.0}).build(seed)


def test_rendered_pair_reprojects_as_well_after_augmentation(make_renderer):
    renderer = make_renderer(hr=(32, 18), spp=8)
    scene = fast_primitives(3)
    frames = [renderer.render(scene, i) for i in (0, 1)]
    crop_only = Augmentation(crop=(8, 0, 18, 18))
    turned = Augmentation(hflip=True, quarter_turns=1, crop=(8, 0, 18, 18))
    (p0, p1), (a0, a1) = ([aug.apply(f) for f in frames] for aug in (crop_only, turned))
    before = warp_error(p0.color_hr, p1.color_hr, p1.motion_hr)
    after = warp_error(a0.color_hr, a1.color_hr, a1.motion_hr)
    assert before < 0.8 * warp_error(p0.color_hr, p1.color_hr, 0 * p1.motion_hr)  # the motion matters
    assert after == pytest.approx(before, rel=1e-6)
    # the stored cameras agree with the augmented motion and depth; the unaugmented proj does not
    cam_before = camera_agreement(p1.motion_hr, p1.depth_hr, p1.view, p1.proj, p0.view, p0.proj)[0]
    cam_after = camera_agreement(a1.motion_hr, a1.depth_hr, a1.view, a1.proj, a0.view, a0.proj)[0]
    cam_wrong = camera_agreement(a1.motion_hr, a1.depth_hr, a1.view, p1.proj, a0.view, p0.proj)[0]
    assert cam_before > 0.9 and cam_after == pytest.approx(cam_before, abs=0.02) and cam_wrong < 0.5
    # LR motion meets HR motion at the augmented jitter's sample positions
    lr_before = lr_hr_agreement(p1.motion_lr, p1.motion_hr, p1.depth_lr, p1.depth_hr, p1.jitter_px, 2.0)[0]
    lr_after = lr_hr_agreement(a1.motion_lr, a1.motion_hr, a1.depth_lr, a1.depth_hr, a1.jitter_px, 2.0)[0]
    assert lr_before > 0.9 and lr_after == pytest.approx(lr_before, abs=0.03)


def test_stride_renders_further_apart_and_motion_reaches_the_previous_stored_frame(make_renderer):
    renderer = make_renderer(hr=(32, 18), spp=8)
    scene = fast_primitives(5)
    strided = with_stride(scene, 2)
    s0, s1 = (renderer.render(strided, i) for i in (0, 1))
    plain2 = renderer.render(scene, 2)
    assert s1.time_s == pytest.approx(2 / scene.fps)
    assert np.array_equal(s1.color_hr, plain2.color_hr)  # same instant, never a dropped frame
    e_stride = warp_error(s0.color_hr, s1.color_hr, s1.motion_hr)
    e_one_step = warp_error(s0.color_hr, s1.color_hr, plain2.motion_hr)
    e_none = warp_error(s0.color_hr, s1.color_hr, 0 * s1.motion_hr)
    assert e_stride < 0.8 * e_one_step and e_stride < 0.6 * e_none
    assert camera_agreement(s1.motion_hr, s1.depth_hr, s1.view, s1.proj, s0.view, s0.proj)[0] > 0.9


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_cuts_land_on_stored_frames(stride):
    cuts = (0.1, 0.25, 0.3)
    scene = with_stride(Scene("cuts", (), Camera(view=lambda t: np.eye(4), cuts=cuts), fps=30.0), stride)
    flagged = [i for i in range(20) if scene.is_cut(i)]
    times = [scene.frame_time(i) for i in range(20)]
    want = sorted({next(i for i, t in enumerate(times) if t >= c - 1e-12) for c in cuts})
    assert flagged == want and times[1] == pytest.approx(stride / 30.0)


# -- the recipe, the plan, variation --------------------------------------------------------------


TINY = BuildConfig(scenes=("primitives",), sequences=2, frames=3, res="32x18", scale=2.0, spp=8,
                   shadow_map_size=256, splits=Splits(train=0.5, val=0.5, test=0.0), workers=2)
RECIPE = """
scenes = ["primitives"]
sequences = 2
frames = 3
res = "32x18"
spp = 8
shadow_map_size = 256
workers = 2
[splits]
train = 0.5
val = 0.5
test = 0.0
[augment]
hflip = 0.5
vflip = 0.5
rot90 = [0, 1, 2, 3]
exposure_ev = [-1.0, 1.0]
white_balance = 0.1
hue_deg = 15.0
stride = [1, 2]
crop = "18x18"
[vary.primitives]
camera_speed = [10.0, 20.0]
object_speed = [8.0, 12.0]
boxes = [1, 4]
[vary.racing]
time_of_day = [7.0, 18.0]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


def test_plan_draws_per_sequence_and_is_a_pure_function(tmp_path):
    config = load_config(write(tmp_path, RECIPE.replace("sequences = 2", "sequences = 12")))
    tasks = plan(config)
    assert tasks == plan(config)
    assert config.hr_size == (18, 18) and config.render_size == (32, 18)
    augs = [t.augmentation for t in tasks]
    assert len({(a.hflip, a.vflip, a.quarter_turns, a.crop, a.stride) for a in augs}) > 4
    assert all(a.crop[0] % 2 == 0 and a.crop[0] + 18 <= 32 and a.crop[1] == 0 for a in augs)
    params = [dict(t.params) for t in tasks]
    assert all(10.0 <= p["camera_speed"] <= 20.0 and p["boxes"] in (1, 2, 3, 4) for p in params)
    assert len({p["camera_speed"] for p in params}) == 12
    assert all("time_of_day" not in p for p in params)  # racing is not built
    # each key has its own generator: turning hue off changes nothing else
    no_hue = plan(dataclasses.replace(config, augment=dataclasses.replace(config.augment, hue_deg=0.0)))
    assert [dataclasses.replace(t.augmentation, hue_deg=0.0) for t in no_hue] == \
        [dataclasses.replace(a, hue_deg=0.0) for a in augs]
    assert plan(dataclasses.replace(config, seed=1)) != tasks


def test_rot90_probability_only_turns_half_way_on_wide_frames():
    config = dataclasses.replace(TINY, sequences=40, augment=AugmentConfig(rot90=1.0))
    assert {t.augmentation.quarter_turns for t in plan(config)} == {2}
    square = dataclasses.replace(config, augment=AugmentConfig(rot90=1.0, crop="18x18"))
    assert {t.augmentation.quarter_turns for t in plan(square)} == {1, 2, 3}


@pytest.mark.parametrize("table, message", [
    ("[augment]\nflip = 0.5", "unknown key(s) augment.flip; valid: hflip, vflip, rot90"),
    ("[augment]\nhflip = 1.5", "augment.hflip must be a probability in [0, 1]"),
    ("[augment]\nrot90 = [1]", "augment.rot90: quarter turns 1 and 3 swap width and height"),
    ("[augment]\nrot90 = [5]", "augment.rot90 must be a probability or a list of quarter turns 0-3"),
    ("[augment]\nexposure_ev = [1.0, -1.0]", "augment.exposure_ev must be [lo, hi]"),
    ("[augment]\nstride = [0]", "augment.stride must be a list of strides"),
    ("[augment]\ncrop = \"17x17\"", "augment.crop 17x17: width must be a multiple of 2 and height of 2"),
    ("[augment]\ncrop = \"40x18\"", "augment.crop 40x18 does not fit in res 32x18"),
    ("[augment]\nwhite_balance = 0.9", "augment.white_balance must be a gain deviation in [0, 0.5]"),
    ("[vary.primitives]\nspeed = [1.0, 2.0]", "vary.primitives: unknown parameter(s) speed"),
    ("[vary.primitives]\nboxes = [3, 1]", "vary.primitives.boxes must be a range [lo, hi] with lo <= hi"),
    ("[vary.primitives]\nboxes = {pick = [1, 2]}", "vary.primitives.boxes is"),
])
def test_bad_tables_name_the_key(tmp_path, table, message):
    head = 'scenes = ["primitives"]\nres = "32x18"\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, head + table + "\n"))
    assert message in str(info.value)


def test_racing_variation_parameters():
    racing = recipes.load("racing")
    base = racing.build(4)
    same = dataclasses.replace(racing, params={**racing.params, "first_shot": "chase"}).build(4)
    assert np.allclose(base.camera.view(0.3), same.camera.view(0.3))  # the default keeps seeds' scenes
    swapped = dataclasses.replace(racing, params={**racing.params, "first_shot": "trackside"}).build(4)
    assert swapped.camera.cuts == base.camera.cuts
    assert not np.allclose(swapped.camera.view(0.3), base.camera.view(0.3))
    morning, evening = (dataclasses.replace(racing, params={**racing.params, "time_of_day": h}).build(4)
                        for h in (8.0, 17.0))
    assert morning.sun.direction[0] > 0 > evening.sun.direction[0]  # rises at +x, sets at -x
    assert evening.sun.color[2] < dataclasses.replace(racing, params={**racing.params, "time_of_day": 12.0}
                                                      ).build(4).sun.color[2]  # low sun is warmer


# -- a real augmented build -----------------------------------------------------------------------


def test_augmented_builds_validate_and_repeat(tmp_path):
    recipe = write(tmp_path, RECIPE)
    env = {**os.environ, "LP_NUM_THREADS": "1"}
    first = tmp_path / "a.zarr"
    proc = subprocess.run([*DATAGEN, "build", "--recipe", str(recipe), "--out", str(first)],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr
    second = tmp_path / "b.zarr"
    build(load_config(recipe), second)
    assert_same_arrays(first, second)

    proc = subprocess.run([*DATAGEN, "validate", str(first)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "motion_warp 0," not in proc.stdout and "motion_camera 0," not in proc.stdout  # judged
    store = open_store(first)
    assert store.hr_size == (18, 18) and store.lr_size == (9, 9)
    tasks = {(t.split, t.index): t for t in plan(load_config(recipe))}
    for split in ("train", "val"):
        for info in store.sequences(split):
            task = tasks[(split, info.index)]
            assert Augmentation.from_json(info.meta["augmentation"]) == task.augmentation
            assert info.meta["varied"] == dict(task.params)
            assert info.meta["params"]["camera_speed"] == info.meta["varied"]["camera_speed"]
            assert info.meta["fps"] == pytest.approx(30.0 / task.augmentation.stride)
            jitter = store.read_window(split, info.index, arrays=["jitter_px"])["jitter_px"]
            assert np.allclose(jitter, [Augmentation.from_json(info.meta["augmentation"]).vector(
                cv.jitter_px(t, 2.0)) for t in range(3)], atol=1e-7)
    # a recorded turn that was not applied is caught by validate's jitter check
    meta_arr = zarr.open_group(first, mode="r+")["train"]["meta"]
    meta = json.loads(str(meta_arr[0]))
    meta["augmentation"]["quarter_turns"] = (meta["augmentation"]["quarter_turns"] + 2) % 4
    meta_arr[0] = json.dumps(meta)
    failures = list(validate(open_store(first)))
    assert failures and {f.check for f in failures} == {"jitter"}
