"""The HR reference resolve (RenderConfig.reference_resolve): "box" (the samples' mean)
or "karis" (Arm NSS's: the mean of c / (1 + max(c)), inverted), in numpy and rendered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_render import FACING_Z, Rect, camera_rays, cast, make_scene

from datagen import conventions as cv
from datagen.errors import ConfigError
from datagen.render import RenderConfig
from datagen.scene import Material, Sky, Sun, static, translation

colours = hnp.arrays(np.float64, (3,), elements=st.floats(0.0, 1e4))


@given(colours)
def test_karis_inverts(c):
    np.testing.assert_allclose(cv.karis_inverse(cv.karis(c)), c, rtol=1e-9, atol=1e-9)


@given(colours, st.integers(1, 64))
def test_karis_equals_box_on_identical_samples(c, n):
    samples = np.repeat(c[None], n, 0)
    np.testing.assert_allclose(cv.resolve_samples(samples, "karis"), cv.resolve_samples(samples, "box"),
                               rtol=1e-9, atol=1e-9)


def test_karis_suppresses_a_firefly():
    # 15 grey samples of 0.5 and one of 2000: the mean is 125.5; Karis's is 0.6
    samples = np.array([[0.5, 0.5, 0.5]] * 15 + [[2000.0, 2000.0, 2000.0]])
    assert cv.resolve_samples(samples, "box") == pytest.approx([125.46875] * 3)
    want = (15 * (0.5 / 1.5) + 2000 / 2001) / 16
    assert cv.resolve_samples(samples, "karis") == pytest.approx([want / (1 - want)] * 3)
    assert cv.resolve_samples(samples, "karis")[0] == pytest.approx(0.6, abs=1e-3)


def test_unknown_resolve_is_a_config_error():
    with pytest.raises(ConfigError, match="reference_resolve 'gauss' is not one of box, karis"):
        RenderConfig(32, 18, 2.0, 8, reference_resolve="gauss").check()


def firefly_scene(config: RenderConfig, pixel: tuple[int, int], offset: np.ndarray):
    """An unlit emissive grey wall (0.5) filling the view, and a 2000-bright square 1/25
    of an HR pixel wide around the sample position ``pixel + offset``: a firefly that
    one of the pixel's samples sees. Returns (scene, rects)."""
    wall = Rect(1, static(translation((0.0, 0.0, -6.0)) @ FACING_Z), (40.0, 40.0),
                Material(base_color=(0.0, 0.0, 0.0, 1.0), emissive=(0.5, 0.5, 0.5)))
    view = cv.look_at((0, 0, 0), (0, 0, -1))
    proj = cv.perspective(50.0, config.hr_width / config.hr_height, 0.1, 500.0)
    _, direction = camera_rays(view, proj, config.hr_size, np.asarray(pixel, float) + offset)
    centre = direction * (5.0 / -direction[2])  # on the plane z = -5, in front of the wall
    side = 5.0 * 2 * np.tan(np.radians(25.0)) / config.hr_height / 25
    spark = Rect(2, static(translation(tuple(centre)) @ FACING_Z), (side, side),
                 Material(base_color=(0.0, 0.0, 0.0, 1.0), emissive=(2000.0, 2000.0, 2000.0)))
    base = make_scene([wall, spark], static(view))
    scene = dataclasses.replace(base, sun=Sun(irradiance=0.0), sky=Sky(intensity=0.0, sun_disc=0.0))
    return scene, [wall, spark], view, proj


def test_rendered_karis_suppresses_a_firefly_and_equals_box_elsewhere(make_renderer):
    hr, spp, pixel = (24, 14), 16, (9, 5)
    boxed = make_renderer(hr=hr, spp=spp)
    karis = make_renderer(hr=hr, spp=spp, reference_resolve="karis")
    offsets = cv.stratified_offsets(spp, boxed.config.sample_seed)
    scene, rects, view, proj = firefly_scene(boxed.config, pixel, offsets[5])
    box_hr = boxed.render(scene, 0).color_hr.astype(np.float64)
    karis_hr = karis.render(scene, 0).color_hr.astype(np.float64)
    # what each of the pixel's samples sees, by ray casting
    eye, dirs = camera_rays(view, proj, boxed.config.hr_size, np.asarray(pixel, float) + offsets)
    ids = cast(rects, 0.0, eye, dirs)[0]
    assert (ids == 2).sum() == 1 and ids[5] == 2
    samples = np.where((ids == 2)[:, None], 2000.0, 0.5) * np.ones(3)
    x, y = pixel
    np.testing.assert_allclose(box_hr[y, x], cv.resolve_samples(samples, "box"), rtol=2e-3)
    np.testing.assert_allclose(karis_hr[y, x], cv.resolve_samples(samples, "karis"), rtol=2e-3)
    assert box_hr[y, x, 0] > 100 and karis_hr[y, x, 0] < 0.61
    others = np.ones(hr[::-1], bool)
    others[y, x] = False
    np.testing.assert_array_equal(box_hr[others], 0.5)  # smooth content: both resolves agree exactly
    np.testing.assert_array_equal(karis_hr[others], 0.5)


def test_resolve_is_recorded_in_the_conventions():
    block = cv.conventions_block(2.0, 16, 0.1, 500.0, "karis")
    assert block["reference_resolve"] == "karis" and "Karis" in block["reference"]
    assert cv.conventions_block(2.0, 16, 0.1, 500.0)["reference_resolve"] == "box"


def test_recipe_key_reaches_the_renderer_and_the_store_conventions(tmp_path):
    from datagen.pipeline.build import _conventions
    from datagen.pipeline.plan import load_config, plan
    from datagen.scenes.recipes import load

    recipe = tmp_path / "r.toml"
    recipe.write_text('scenes = ["primitives"]\nreference_resolve = "karis"\n')
    config = load_config(recipe)
    assert config.render_config().reference_resolve == "karis"
    assert load_config(recipe, reference_resolve="box").render_config().reference_resolve == "box"
    block = _conventions(config, plan(config), {"primitives": load("primitives")})
    assert block["reference_resolve"] == "karis"
    assert config.recorded()["reference_resolve"] == "karis"  # the store's resolved config
    recipe.write_text('scenes = ["primitives"]\nreference_resolve = "gauss"\n')
    with pytest.raises(ConfigError, match="reference_resolve"):
        load_config(recipe)
