"""Viewing helpers and the `datagen render` sequence directory (SPEC §3), with a real renderer."""

from __future__ import annotations

import json
import os

os.environ.setdefault("LP_NUM_THREADS", "1")  # before any GL context: share the CPU

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_exr import SPEC_HR, SPEC_LR, random_frame  # tests/ is on sys.path (rootdir-less tests)

from datagen import conventions as cv
from datagen.errors import GLUnavailableError
from datagen.exr import read_exr
from datagen.images import (
    SKY_RGB,
    contact_sheet,
    depth_to_rgb,
    motion_to_rgb,
    tonemap,
    upscale_nearest,
)
from datagen.output import write_sequence_dir

META = {"config": {"scene": "fake"}, "conventions": cv.conventions_block(2.0, 8, 0.1, 500.0)}

# -- images ------------------------------------------------------------------


def test_tonemap_range_and_exposure():
    x = np.array([[[0, 0, 0], [0.18, 0.18, 0.18], [1e4, np.inf, np.nan]]], np.float16)
    out = tonemap(x, 1.0)
    assert out.dtype == np.uint8 and out.shape == (1, 3, 3)
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 2].tolist() == [255, 255, 0]  # huge and +inf clip white, NaN black
    assert 0 < out[0, 1, 0] < 255
    assert tonemap(x, 4.0)[0, 1, 0] > out[0, 1, 0]


def test_motion_wheel_directions():
    m = np.array([[[0, 0], [3, 0], [-3, 0], [0, 3], [0, -3], [1.5, 0]]], np.float32)
    rgb = motion_to_rgb(m).astype(int)[0]
    assert rgb[0].tolist() == [255, 255, 255]  # zero motion is white
    plus_x, minus_x, plus_y, minus_y, half_x = rgb[1:]
    assert plus_x[0] > plus_x[2] and minus_x[2] > minus_x[0]  # +x reddish, -x bluish
    assert not np.array_equal(plus_y, minus_y)
    assert half_x.min() > plus_x.min()  # shorter is paler, same hue
    assert np.argmax(half_x) == np.argmax(plus_x)
    assert motion_to_rgb(np.zeros((2, 3, 2), np.float32)).min() == 255
    assert not np.array_equal(motion_to_rgb(m, max_px=30.0), motion_to_rgb(m))


def test_depth_colours_sky_and_order():
    d = np.array([[1.0, 10.0, 100.0, np.inf]], np.float32)
    rgb = depth_to_rgb(d)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
    assert rgb[0, 3].tolist() == list(SKY_RGB)
    lum = rgb[0, :3].astype(int).sum(-1)
    assert lum[0] > lum[1] > lum[2]  # near is bright
    assert (depth_to_rgb(np.full((2, 2), np.inf, np.float32)) == SKY_RGB).all()


@given(h=st.integers(1, 6), w=st.integers(1, 6), k=st.integers(1, 4))
def test_upscale_nearest_integer_factor_is_repeat(h, w, k):
    img = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    expected = np.repeat(np.repeat(img, k, 0), k, 1)
    np.testing.assert_array_equal(upscale_nearest(img, k), expected)
    np.testing.assert_array_equal(upscale_nearest(img, (w * k, h * k)), expected)


def test_upscale_nearest_to_size():
    img = np.arange(6 * 10, dtype=np.float32).reshape(6, 10)  # LR of a 15x9 HR at scale 1.5
    out = upscale_nearest(img, (15, 9))
    assert out.shape == (9, 15)
    assert out[0, 0] == img[0, 0] and out[-1, -1] == img[-1, -1]


def test_contact_sheet_shape():
    tiles = [np.full((5, 7, 3), 200, np.uint8), np.zeros((5, 7), np.uint8), np.zeros((3, 4, 3), np.uint8)]
    sheet = contact_sheet(tiles, pad=2)
    assert sheet.dtype == np.uint8 and sheet.shape == (2 * (5 + 2) + 2, 2 * (7 + 2) + 2, 3)
    assert (sheet[2:7, 2:9] == 200).all()
    big = [np.zeros((40, 60, 3), np.uint8)] * 3
    labelled = contact_sheet(big, labels=["LR", "HR", "motion"], cols=3, pad=0)
    assert labelled.shape == (40, 180, 3) and labelled.max() > 200  # white (antialiased) label text


# -- the sequence directory ----------------------------------------------------


def test_sequence_dir_streams_frames(tmp_path):
    rng = np.random.default_rng(0)
    out = tmp_path / "seq"
    calls = []

    def frames():
        for i in range(3):
            if i:  # the previous frame is on disk before the next one is asked for
                assert (out / "lr" / f"{i - 1:04d}.exr").exists()
                assert (out / "preview" / f"{i - 1:04d}.png").exists()
            assert not (out / "sequence.json").exists()
            yield random_frame(rng)

    path = write_sequence_dir(out, frames(), META, progress=lambda: calls.append(1))
    assert path == out / "sequence.json" and len(calls) == 3
    assert not (out / "sequence.json.tmp").exists()
    doc = json.loads(path.read_text())
    assert doc["frame_count"] == 3 and [f["index"] for f in doc["frames"]] == [0, 1, 2]
    assert doc["lr_size"] == [11, 7] and doc["hr_size"] == [22, 14]
    preview = np.asarray(Image.open(out / "preview" / "0002.png"))
    assert preview.shape == (2 * 14 + 6, 2 * 22 + 6, 3)


def test_sequence_dir_needs_conventions_and_config(tmp_path):
    with pytest.raises(ValueError, match="conventions"):
        write_sequence_dir(tmp_path, iter(()), {"config": {}})
    assert not (tmp_path / "lr").exists()


@pytest.fixture(scope="module")
def renderer():
    from datagen.render import RenderConfig, Renderer

    try:
        r = Renderer(RenderConfig(32, 18, 2.0, 8, shadow_map_size=256))
    except GLUnavailableError as exc:
        if os.environ.get("DATAGEN_REQUIRE_GL") == "1":
            pytest.fail(f"DATAGEN_REQUIRE_GL=1 but no GL context could be created: {exc}")
        pytest.skip(f"no headless GL context: {exc}")
    yield r
    r.close()


def test_render_two_frames_to_disk(renderer, tmp_path):
    from datagen.scenes import generate

    scene = generate("primitives", {}, 0)
    kept = []

    def frames():
        for i in range(2):
            kept.append(renderer.render(scene, i))
            yield kept[-1]

    conventions = cv.conventions_block(2.0, 8, scene.camera.near, scene.camera.far)
    meta = {"config": {"scene": "primitives", "seed": 0, "res": [32, 18]}, "conventions": conventions}
    with renderer.ctx:  # make our context current: other tests may have made theirs current
        path = write_sequence_dir(tmp_path, frames(), meta)
        assert renderer.ctx.error == "GL_NO_ERROR"

    doc = json.loads(path.read_text())
    assert doc["conventions"] == conventions and doc["config"] == meta["config"]
    assert doc["lr_size"] == [16, 9] and doc["hr_size"] == [32, 18]
    for i, (rec, frame) in enumerate(zip(doc["frames"], kept, strict=True)):
        name = f"{i:04d}"
        assert (tmp_path / "preview" / f"{name}.png").is_file()
        np.testing.assert_allclose(rec["jitter_px"], cv.jitter_px(i, 2.0), atol=1e-6)
        assert np.array(rec["view"]).shape == (4, 4) and np.array(rec["proj"]).shape == (4, 4)
        np.testing.assert_array_equal(np.array(rec["proj"], np.float32), frame.proj)
        assert rec["time_s"] == pytest.approx(frame.time_s) and rec["camera_cut"] is frame.camera_cut
        assert rec["exposure"] == frame.exposure

        lr, hr = read_exr(tmp_path / "lr" / f"{name}.exr"), read_exr(tmp_path / "hr" / f"{name}.exr")
        assert set(lr) == set(SPEC_LR) and set(hr) == set(SPEC_HR)
        assert lr["R"].shape == (9, 16) and hr["R"].shape == (18, 32)
        np.testing.assert_array_equal(lr["G"], frame.color_lr[..., 1])
        np.testing.assert_array_equal(lr["Z"], frame.depth_lr)
        np.testing.assert_array_equal(lr["objectId"], frame.object_id_lr)
        np.testing.assert_array_equal(hr["backward.u"], frame.motion_hr[..., 0])
        np.testing.assert_array_equal(hr["Z"], frame.depth_hr)
        assert (np.isfinite(hr["Z"]) | np.isposinf(hr["Z"])).all()
    assert doc["frames"][1]["time_s"] > doc["frames"][0]["time_s"]
