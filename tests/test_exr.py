"""OpenEXR writing and reading: channel names (SPEC §3), exact round trips, row order."""

from __future__ import annotations

import os

import numpy as np
import OpenEXR
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from datagen import conventions as cv
from datagen.exr import (
    HR_CHANNELS,
    HR_LAYOUT,
    LR_CHANNELS,
    LR_LAYOUT,
    frame_channels,
    read_exr,
    read_exr_header,
    write_exr,
    write_hr,
    write_lr,
)
from datagen.frame import Frame

SPEC_LR = ("R", "G", "B", "Z", "backward.u", "backward.v", "N.X", "N.Y", "N.Z",
           "albedo.R", "albedo.G", "albedo.B", "roughness", "metallic", "objectId")
SPEC_HR = ("R", "G", "B", "Z", "backward.u", "backward.v")


def random_frame(rng: np.random.Generator, lr=(7, 11), hr=(14, 22)) -> Frame:
    """A Frame of random arrays, (h, w) = lr, (H, W) = hr; some depth is sky (+inf)."""
    def f(shape, dtype, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    depth_lr, depth_hr = rng.uniform(0.1, 500, lr).astype(np.float32), rng.uniform(0.1, 500, hr).astype("f4")
    depth_lr[0, :3] = depth_hr[0, :5] = np.inf
    return Frame(
        color_lr=f((*lr, 3), np.float16, 10), depth_lr=depth_lr, motion_lr=f((*lr, 2), np.float32, 5),
        normal_lr=f((*lr, 3), np.float16), albedo_lr=f((*lr, 3), np.float16),
        material_lr=f((*lr, 2), np.float16), object_id_lr=rng.integers(0, 2**32, lr, dtype=np.uint32),
        color_hr=f((*hr, 3), np.float16, 10), depth_hr=depth_hr, motion_hr=f((*hr, 2), np.float32, 10),
        jitter_px=np.array([0.25, -1 / 6], np.float32), view=f((4, 4), np.float32),
        proj=f((4, 4), np.float32), exposure=0.5, camera_cut=False, time_s=1 / 30,
    )


def test_channel_names_are_the_spec():
    assert LR_CHANNELS == SPEC_LR
    assert HR_CHANNELS == SPEC_HR


def test_lr_and_hr_round_trip_exactly(tmp_path):
    frame = random_frame(np.random.default_rng(0))
    write_lr(tmp_path / "lr.exr", frame, 3)
    write_hr(tmp_path / "hr.exr", frame, 3)
    for path, names, layout, size in ((tmp_path / "lr.exr", SPEC_LR, LR_LAYOUT, (7, 11)),
                                      (tmp_path / "hr.exr", SPEC_HR, HR_LAYOUT, (14, 22))):
        got = read_exr(path)
        assert set(got) == set(names)
        want = frame_channels(frame, layout)
        for name in names:
            assert got[name].shape == size
            assert got[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    lr = read_exr(tmp_path / "lr.exr")
    assert lr["R"].dtype == np.float16 and lr["Z"].dtype == np.float32
    assert lr["backward.u"].dtype == np.float32 and lr["objectId"].dtype == np.uint32
    np.testing.assert_array_equal(lr["backward.v"], frame.motion_lr[..., 1])
    assert np.isposinf(lr["Z"][0, :3]).all()
    assert np.isposinf(read_exr(tmp_path / "hr.exr")["Z"][0, :5]).all()


def test_header_attributes(tmp_path):
    frame = random_frame(np.random.default_rng(1))
    write_lr(tmp_path / "lr.exr", frame, 7)
    write_hr(tmp_path / "hr.exr", frame, 7)
    lr, hr = read_exr_header(tmp_path / "lr.exr"), read_exr_header(tmp_path / "hr.exr")
    assert lr["compression"] == OpenEXR.ZIP_COMPRESSION
    assert lr["type"] == OpenEXR.scanlineimage
    assert lr["lineOrder"] == OpenEXR.INCREASING_Y
    assert "p_prev - p_cur" in lr["datagen:motion"]
    assert lr["datagen:buffer"] == "lr" and hr["datagen:buffer"] == "hr"
    np.testing.assert_array_equal(lr["datagen:jitter_px"], frame.jitter_px)
    np.testing.assert_array_equal(hr["datagen:jitter_px"], [0.0, 0.0])
    np.testing.assert_array_equal(lr["datagen:view"], frame.view)
    np.testing.assert_array_equal(hr["datagen:proj"], frame.proj)
    assert lr["datagen:exposure"] == 0.5 and lr["datagen:frame"] == 7
    # the standard camera attributes, in OpenEXR's row-vector form; LR with its jittered projection
    np.testing.assert_allclose(hr["worldToCamera"], cv.exr_world_to_camera(frame.view), rtol=1e-6)
    np.testing.assert_allclose(lr["worldToCamera"], hr["worldToCamera"])
    np.testing.assert_allclose(hr["worldToNDC"], cv.exr_world_to_ndc(frame.proj, frame.view), rtol=1e-6)
    jittered = cv.jittered(frame.proj, frame.jitter_px, (11, 7))
    want = cv.exr_world_to_ndc(jittered, frame.view)
    np.testing.assert_allclose(lr["worldToNDC"], want, rtol=1e-5, atol=1e-6)


def test_matrix_attributes_keep_their_layout_when_not_contiguous(tmp_path):
    m = np.arange(16, dtype=np.float32).reshape(4, 4)
    write_exr(tmp_path / "m.exr", {"R": np.zeros((2, 3), np.float16)}, {"a": m.T, "b": m})
    header = read_exr_header(tmp_path / "m.exr")
    np.testing.assert_array_equal(header["a"], m.T)
    np.testing.assert_array_equal(header["b"], m)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    data=st.data(),
)
def test_random_arrays_round_trip(tmp_path_factory, shape, data):
    channels = {
        "half": data.draw(hnp.arrays(np.float16, shape)),
        "float": data.draw(hnp.arrays(np.float32, shape)),
        "uint": data.draw(hnp.arrays(np.uint32, shape)),
    }
    path = tmp_path_factory.mktemp("rt") / "x.exr"
    write_exr(path, channels)
    got = read_exr(path)
    for name, arr in channels.items():
        assert got[name].dtype == arr.dtype
        np.testing.assert_array_equal(got[name], arr)  # NaN == NaN here, +-inf kept


def test_row_zero_is_the_top(tmp_path):
    img = np.zeros((5, 3), np.float32)
    img[0] = 1.0  # top row only
    write_exr(tmp_path / "top.exr", {"Z": img})
    header = read_exr_header(tmp_path / "top.exr")
    (x0, y0), (x1, y1) = header["dataWindow"]
    assert (x0, y0, x1, y1) == (0, 0, 2, 4)  # 3 wide, 5 high: no transpose
    np.testing.assert_array_equal(read_exr(tmp_path / "top.exr")["Z"], img)


def test_strided_and_flipped_arrays_are_written_as_seen(tmp_path):
    # the binding writes a non-contiguous array's raw buffer; write_exr must copy
    rgb = np.arange(4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
    channels = {"R": rgb[..., 0], "G": rgb[::-1, :, 1], "B": np.asfortranarray(rgb[..., 2])}
    write_exr(tmp_path / "s.exr", channels)
    got = read_exr(tmp_path / "s.exr")
    for name, arr in channels.items():
        np.testing.assert_array_equal(got[name], arr)
    assert all(isinstance(a, np.ndarray) for a in channels.values())  # inputs left alone


def test_bad_inputs_raise(tmp_path):
    with pytest.raises(ValueError, match="float16, float32 or uint32"):
        write_exr(tmp_path / "x.exr", {"Z": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="one shape"):
        write_exr(tmp_path / "x.exr", {"Z": np.zeros((2, 2), "f4"), "R": np.zeros((2, 3), "f2")})


def test_other_readers_see_our_channels(tmp_path):
    """OpenImageIO, an independent reader: names, pixel types, values, row 0 at the top."""
    if not os.environ.get("DATAGEN_REQUIRE_OIIO"):
        pytest.importorskip("OpenImageIO")
    import OpenImageIO as oiio

    frame = random_frame(np.random.default_rng(2))
    write_lr(tmp_path / "lr.exr", frame)
    inp = oiio.ImageInput.open(str(tmp_path / "lr.exr"))
    assert inp, oiio.geterror()
    try:
        spec = inp.spec()
        names = list(spec.channelnames)
        assert sorted(names) == sorted(SPEC_LR)
        formats = dict(zip(names, (str(f) for f in spec.channelformats), strict=True))
        assert formats["R"] == "half" and formats["Z"] == "float" and formats["objectId"] == "uint"
        assert (spec.width, spec.height) == (11, 7)
        assert "p_prev - p_cur" in spec.getattribute("datagen:motion")
        pixels = inp.read_image(format=oiio.FLOAT)  # (y, x, channel), y = 0 the top
    finally:
        inp.close()
    np.testing.assert_array_equal(pixels[..., names.index("R")], frame.color_lr[..., 0].astype("f4"))
    np.testing.assert_array_equal(pixels[..., names.index("backward.u")], frame.motion_lr[..., 0])
