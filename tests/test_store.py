"""The Zarr store: schema, writer, reader, and other readers (zarr, xarray, tensorstore).

Frames are fabricated with numpy (random values, odd non-square sizes) except in
one test that stores real rendered frames.
"""

from __future__ import annotations

import json
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from store_helpers import CONFIG, META, make_store, mount, set_schema_version

from datagen import conventions as cv
from datagen.errors import DiskFullError, OutputError, SchemaVersionError, StoreError
from datagen.frame import Frame
from datagen.store import (
    ARRAYS,
    DEFAULT_LAYOUT,
    SCHEMA_VERSION,
    Layout,
    check_version,
    open_store,
    write_sequence,
    writer,
)
from datagen.store.schema import FRAME_NAMES, PER_FRAME, chunking, dim_sizes, tile_side


def random_frame(rng: np.random.Generator, t: int, hr_size: tuple[int, int], scale: float) -> Frame:
    """Random values of every field at HR (width, height); depth has some +inf sky."""
    (W, H), (w, h) = hr_size, cv.lr_size(hr_size, scale)

    def normal(*shape, dtype="f2"):
        return (rng.standard_normal(shape) * 10).astype(dtype)

    depth_lr, depth_hr = np.abs(normal(h, w, dtype="f4")), np.abs(normal(H, W, dtype="f4"))
    depth_lr[rng.random((h, w)) < 0.2] = np.inf
    depth_hr[rng.random((H, W)) < 0.2] = np.inf
    return Frame(
        color_lr=np.abs(normal(h, w, 3)), depth_lr=depth_lr, motion_lr=normal(h, w, 2, dtype="f4"),
        normal_lr=normal(h, w, 3), albedo_lr=normal(h, w, 3), material_lr=normal(h, w, 2),
        object_id_lr=rng.integers(0, 2**32, (h, w), dtype=np.uint32),
        color_hr=np.abs(normal(H, W, 3)), depth_hr=depth_hr, motion_hr=normal(H, W, 2, dtype="f4"),
        jitter_px=np.asarray(cv.jitter_px(t, scale), np.float32), view=normal(4, 4, dtype="f4"),
        proj=normal(4, 4, dtype="f4"), exposure=float(rng.uniform(0.1, 4)),
        camera_cut=bool(rng.random() < 0.3),
        time_s=float(rng.uniform(0, 100)),
    )


def random_frames(count: int, hr_size, scale: float, seed: int = 0) -> list[Frame]:
    rng = np.random.default_rng(seed)
    return [random_frame(rng, t, hr_size, scale) for t in range(count)]


def stacked(frames: list[Frame], name: str) -> np.ndarray:
    return np.stack([np.asarray(getattr(f, name)) for f in frames])


def assert_frames_equal(data: dict[str, np.ndarray], frames: list[Frame], crop=None) -> None:
    for name in PER_FRAME:
        want = stacked(frames, name)
        if crop is not None and name in FRAME_NAMES:
            y, x, h, w = crop[name.endswith("_hr")]
            want = want[:, y:y + h, x:x + w]
        assert data[name].dtype == np.dtype(ARRAYS[name].dtype), name
        np.testing.assert_array_equal(data[name], want.astype(ARRAYS[name].dtype), err_msg=name)


@pytest.fixture
def store_path(tmp_path) -> Path:
    return make_store(tmp_path / "store")


# -- round trips ---------------------------------------------------------------------------------

LR_SIZES = st.tuples(st.integers(1, 9), st.integers(1, 9))
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8)
                    | st.floats(allow_nan=False, allow_infinity=False),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids,
                                                                               max_size=3), max_leaves=8)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lr=LR_SIZES, scale=st.sampled_from([2.0, 3.0, 1.5]), frames=st.integers(1, 5),
       per_shard=st.integers(1, 3), tile=st.sampled_from([None, 2, 4, 6]),
       codec=st.sampled_from(["zstd", "blosc-zstd"]), config=st.dictionaries(st.text(max_size=6), JSON,
                                                                              max_size=4),
       extra_meta=st.dictionaries(st.text(max_size=6).filter(lambda k: k not in ("scene", "seed")), JSON,
                                  max_size=3),
       seed=st.integers(0, 2**31))
@example(lr=(7, 5), scale=2.0, frames=3, per_shard=2, tile=4, codec="zstd", config={}, extra_meta={}, seed=1)
def test_round_trip_arrays_and_attrs(lr, scale, frames, per_shard, tile, codec, config, extra_meta, seed):
    """write_sequence then read_window, iter_frames and the attrs give back exactly what went in
    (HR 14x10 at scale 2 among the examples)."""
    if scale == 1.5:
        lr = (lr[0] * 2, lr[1] * 2)
    hr = (round(lr[0] * scale), round(lr[1] * scale))
    layout = Layout(tile_hr=tile, frames_per_shard=per_shard, codec=codec, level=1)
    meta = {**extra_meta, "scene": "s", "seed": seed}
    data = random_frames(frames, hr, scale, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = make_store(Path(tmp) / "s", frames, hr, scale, {"train": 1, "test": 2}, config, layout=layout)
        write_sequence(path, "test", 1, iter(data), meta)
        store = open_store(path)
        assert_frames_equal(store.read_window("test", 1), data)
        back = list(store.iter_frames("test", 1))
        assert_frames_equal({n: np.stack([getattr(f, n) for f in back]).astype(ARRAYS[n].dtype)
                             for n in PER_FRAME}, data)
        assert store.config == config
        assert store.conventions == cv.conventions_block(scale, 8, 0.1, 100.0)
        assert store.attrs["schema_version"] == SCHEMA_VERSION
        seqs = store.sequences("test")
        assert [s.complete for s in seqs] == [False, True]
        assert seqs[1].meta == json.loads(json.dumps(meta)) and seqs[1].seed == seed and seqs[1].scene == "s"
        assert store.sequences("train", complete_only=True) == []


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_crop_is_the_same_area_at_both_resolutions(data, tmp_path_factory):
    scale = data.draw(st.sampled_from([2.0, 3.0]), "scale")
    lr = data.draw(LR_SIZES, "lr")
    hr = (round(lr[0] * scale), round(lr[1] * scale))
    T = 4
    frames = random_frames(T, hr, scale, data.draw(st.integers(0, 99), "seed"))
    path = make_store(tmp_path_factory.mktemp("crop") / "s", T, hr, scale,
                      layout=Layout(tile_hr=data.draw(st.sampled_from([None, 3, 6])), frames_per_shard=3))
    write_sequence(path, "train", 0, iter(frames), META)
    store = open_store(path)
    start = data.draw(st.integers(0, T - 1), "start")
    length = data.draw(st.integers(1, T - start), "length")
    h = data.draw(st.integers(1, lr[1]), "h_lr")
    w = data.draw(st.integers(1, lr[0]), "w_lr")
    y = data.draw(st.integers(0, lr[1] - h), "y_lr")
    x = data.draw(st.integers(0, lr[0] - w), "x_lr")
    k = round(scale)
    crop = store.read_crop("train", 0, start, length, y * k, x * k, (h * k, w * k))
    assert_frames_equal(crop, frames[start:start + length],
                        crop={False: (y, x, h, w), True: (y * k, x * k, h * k, w * k)})


def test_rendered_frames_round_trip(make_renderer, tmp_path):
    """Real renderer output (primitives, HR 32x18, scale 2, 8 spp) stores and reads back exactly."""
    from datagen.scenes import generate

    renderer = make_renderer(hr=(32, 18), scale=2.0, spp=8)
    scene = generate("primitives", {}, 0)
    frames = [renderer.render(scene, t) for t in range(3)]
    path = make_store(tmp_path / "s", 3, (32, 18), 2.0, layout=Layout(tile_hr=16, frames_per_shard=2))
    write_sequence(path, "val", 0, iter(frames), {"scene": "primitives", "seed": 0})
    store = open_store(path)
    assert_frames_equal(store.read_window("val", 0), frames)
    assert np.isinf(store.read_window("val", 0, arrays=["depth_hr"])["depth_hr"]).any()  # the sky
    assert store.scenes == ["primitives"]


# -- the complete flag ----------------------------------------------------------------------------


def test_complete_is_written_last_and_cleared_first(store_path, monkeypatch):
    frames = random_frames(3, (14, 10), 2.0)
    write_sequence(store_path, "train", 0, iter(frames), META)
    writes = []
    setitem = zarr.Array.__setitem__

    def spy(self, key, value):
        writes.append((self.basename, np.asarray(value).tolist() if self.basename == "complete" else None))
        return setitem(self, key, value)

    flush = writer.ShardBlocks.flush

    def spy_flush(self, end):  # pixel blocks go through tensorstore
        writes.extend((name, None) for name in self.buffers if end > self.start)
        return flush(self, end)

    monkeypatch.setattr(zarr.Array, "__setitem__", spy)
    monkeypatch.setattr(writer.ShardBlocks, "flush", spy_flush)
    write_sequence(store_path, "train", 0, iter(frames), META)  # a rewrite
    assert writes[0] == ("complete", False)
    assert writes[-1] == ("complete", True)
    assert {name for name, _ in writes[1:-1]} == set(ARRAYS) - {"complete"}


def test_an_interrupted_rewrite_leaves_the_sequence_not_complete(store_path):
    frames = random_frames(3, (14, 10), 2.0)
    write_sequence(store_path, "train", 1, iter(frames), META)
    seen = []

    def crashing():
        for t, frame in enumerate(frames):
            seen.append(open_store(store_path).sequences("train")[1].complete)
            if t == 2:
                raise RuntimeError("renderer died")
            yield frame

    with pytest.raises(RuntimeError, match="renderer died"):
        write_sequence(store_path, "train", 1, crashing(), META)
    assert seen == [False, False, False]
    assert not open_store(store_path).sequences("train")[1].complete


def test_rendering_runs_ahead_of_the_writer_thread_by_at_most_the_queue(tmp_path, monkeypatch):
    """While a block is being written the next frames are made (overlap), but never more
    than ``QUEUE_FRAMES`` beyond what the writer thread has taken (bounded memory)."""
    import time

    path = make_store(tmp_path / "s", frames=8, layout=Layout(frames_per_shard=2))
    frames = random_frames(8, (14, 10), 2.0)
    made, ahead = [], []
    flush = writer.ShardBlocks.flush
    most = 2 + writer.QUEUE_FRAMES + 1  # the block, the queue, and one frame waiting to be put

    def slow_flush(self, end):
        if end == 2:  # the first block: hold the writer thread while the renderer runs ahead
            for _ in range(3000):
                if len(made) >= most:
                    break
                time.sleep(0.01)
            time.sleep(0.2)  # room to run further ahead, if the queue did not stop it
            ahead.append(len(made))
        return flush(self, end)

    def render():
        for t, frame in enumerate(frames):
            made.append(t)
            yield frame

    monkeypatch.setattr(writer.ShardBlocks, "flush", slow_flush)
    write_sequence(path, "train", 0, render(), META)
    assert ahead == [most]
    store = open_store(path)
    assert store.sequences("train")[0].complete
    assert_frames_equal(store.read_window("train", 0), frames)


def test_an_error_on_the_writer_thread_stops_the_renderer_and_the_sequence(store_path, monkeypatch):
    """A write that fails on the writer thread is raised in the caller's thread, the
    frames after it are not all rendered, and the sequence is not marked complete."""
    path = make_store(store_path.parent / "s", frames=12, layout=Layout(frames_per_shard=2))
    frames = random_frames(12, (14, 10), 2.0)
    write_sequence(path, "train", 0, iter(frames), META)
    made = []

    def failing_flush(self, end):
        raise OSError(28, "No space left on device")

    def render():
        for t, frame in enumerate(frames):
            made.append(t)
            yield frame

    monkeypatch.setattr(writer.ShardBlocks, "flush", failing_flush)
    with pytest.raises(DiskFullError, match="cannot write sequence 0 of train: No space left"):
        write_sequence(path, "train", 0, render(), META)
    assert len(made) < len(frames)
    assert not open_store(path).sequences("train")[0].complete
    assert not any(t.name.startswith("datagen-writer") for t in threading.enumerate())


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_writing_process_bounds_glibc_malloc(store_path):
    write_sequence(store_path, "train", 0, iter(random_frames(3, (14, 10), 2.0)), META)
    assert writer._malloc_bounded and writer.bound_malloc()


@pytest.mark.parametrize("count", [2, 4])
def test_a_wrong_frame_count_is_refused_and_not_complete(store_path, count):
    with pytest.raises(StoreError, match=f"{'got 2 frames' if count == 2 else 'more than'}.*3 frames"):
        write_sequence(store_path, "train", 0, iter(random_frames(count, (14, 10), 2.0)), META)
    assert not open_store(store_path).sequences("train")[0].complete


def test_a_frame_of_the_wrong_size_names_the_field(store_path):
    frames = random_frames(3, (16, 10), 2.0)
    with pytest.raises(StoreError, match=r"frame 0: color_lr has shape \(5, 8, 3\).*\(5, 7, 3\)"):
        write_sequence(store_path, "train", 0, iter(frames), META)


def test_meta_needs_scene_and_seed_and_plain_json(store_path):
    frames = random_frames(3, (14, 10), 2.0)
    with pytest.raises(StoreError, match="lacks.*seed"):
        write_sequence(store_path, "train", 0, iter(frames), {"scene": "x"})
    with pytest.raises(StoreError, match="plain JSON"):
        write_sequence(store_path, "train", 0, iter(frames), {"scene": "x", "seed": 1, "bad": object()})


# -- creating and opening -----------------------------------------------------------------------


def test_the_same_config_resumes_and_another_is_refused(tmp_path):
    path = make_store(tmp_path / "s")
    write_sequence(path, "train", 0, iter(random_frames(3, (14, 10), 2.0)), META)
    assert make_store(path) == path  # resume: data kept
    assert open_store(path).sequences("train")[0].complete
    with pytest.raises(StoreError, match=r"different config.*config\.spp is 8 there, 16 now.*--overwrite"):
        make_store(path, config={**CONFIG, "spp": 16})
    with pytest.raises(StoreError, match=r"different store.*store\.frames is 3 there, 4 now"):
        make_store(path, frames=4)
    make_store(path, frames=4, overwrite=True)
    store = open_store(path)
    assert store.frames == 4 and not store.sequences("train")[0].complete


def test_a_store_of_another_layout_resumes_in_its_own(tmp_path):
    """A store made with another layout (e.g. an older default's codec level) resumes as
    it is: the layout changes how values are stored, not which."""
    older = Layout(frames_per_shard=3, level=3)
    path = make_store(tmp_path / "s", layout=older)
    write_sequence(path, "train", 0, iter(random_frames(3, (14, 10), 2.0)), META)
    assert older != DEFAULT_LAYOUT
    assert make_store(path) == path
    write_sequence(path, "train", 1, iter(random_frames(3, (14, 10), 2.0, seed=1)), META)
    store = open_store(path)
    assert store.attrs["store"]["layout"] == older.to_json()
    assert [info.complete for info in store.sequences("train")][:2] == [True, True]
    codecs = json.loads((path / "train" / "color_hr" / "zarr.json").read_text())["codecs"]
    assert codecs[0]["configuration"]["codecs"][-1]["configuration"]["clevel"] == 3


def test_a_path_that_is_not_a_store_is_never_deleted(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(StoreError, match="not a Zarr store"):
        make_store(tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    with pytest.raises(StoreError, match="not a store"):
        open_store(tmp_path / "mine")
    with pytest.raises(StoreError, match="not a store"):
        open_store(tmp_path / "nothing-here")


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(StoreError, match="unknown split.*valid: train, val, test"):
        make_store(tmp_path / "a", splits={"training": 1})
    with pytest.raises(StoreError, match="LR 5x5 is not HR 14x10 / 2 rounded"):
        make_store(tmp_path / "b", lr_size=(5, 5))
    with pytest.raises(StoreError, match="frames per sequence"):
        make_store(tmp_path / "c", frames=0)


def test_wrong_split_sequence_window_and_crop_are_refused(store_path):
    write_sequence(store_path, "train", 0, iter(random_frames(3, (14, 10), 2.0)), META)
    store = open_store(store_path)
    with pytest.raises(StoreError, match="no split 'training'"):
        store.read_window("training", 0)
    with pytest.raises(StoreError, match=r"sequences 0\.\.1; got 2"):
        store.read_window("train", 2)
    with pytest.raises(StoreError, match=r"sequences 0\.\.1; got 5"):
        write_sequence(store_path, "train", 5, iter([]), META)
    with pytest.raises(StoreError, match="outside the sequence"):
        store.read_window("train", 0, 2, 2)
    with pytest.raises(StoreError, match="not aligned.*every 2 HR pixels.*multiples of 2"):
        store.read_crop("train", 0, 0, 1, 1, 0, 4)
    with pytest.raises(StoreError, match="outside the HR frame 14x10"):
        store.read_crop("train", 0, 0, 1, 8, 0, 4)
    with pytest.raises(StoreError, match="unknown read engine"):
        open_store(store_path, engine="hdf5")


def test_a_rounded_lr_size_records_its_exact_ratio_and_crops_by_box(tmp_path):
    """15x10 at scale 2: LR 8x5 (7.5 rounded up), ratio (1.875, 2); HR and LR columns line
    up only over the whole width, so a column crop needs an explicit LR box."""
    path = make_store(tmp_path / "r", hr=(15, 10))
    frames = random_frames(3, (15, 10), 2.0)
    assert frames[0].color_lr.shape[:2] == (5, 8)
    write_sequence(path, "train", 0, iter(frames), META)
    store = open_store(path)
    assert store.lr_size == (8, 5) and store.ratio == (15 / 8, 2.0)
    assert store.attrs["store"]["ratio"] == [15 / 8, 2.0] and store.crop_step == 30
    assert store.sizes["x_lr"] == 8 and open_store(path).array("train", "color_lr").shape[2:4] == (5, 8)
    with pytest.raises(StoreError, match="every 15 HR pixels"):
        store.read_crop("train", 0, 0, 2, 2, 3, (4, 6))
    crop = store.read_crop("train", 0, 0, 2, 2, 3, (4, 6), lr_box=(1, 1, 2, 4))
    np.testing.assert_array_equal(crop["color_hr"], np.stack([f.color_hr[2:6, 3:9] for f in frames[:2]]))
    np.testing.assert_array_equal(crop["depth_lr"], np.stack([f.depth_lr[1:3, 1:5] for f in frames[:2]]))
    whole_rows = store.read_crop("train", 0, 0, 1, 2, 0, (4, 15))  # rows line up every 2 HR pixels
    np.testing.assert_array_equal(whole_rows["motion_lr"][0], frames[0].motion_lr[1:3])
    with pytest.raises(StoreError, match="outside the LR frame 8x5"):
        store.read_crop("train", 0, 0, 1, 0, 0, 4, lr_box=(0, 6, 2, 3))


def test_an_empty_split_is_allowed(store_path):
    store = open_store(store_path)
    assert store.sequence_count("test") == 0 and store.sequences("test") == []
    assert store.splits == ("train", "val", "test")


def test_summary_counts_what_is_complete(store_path):
    frames = random_frames(3, (14, 10), 2.0)
    write_sequence(store_path, "train", 1, iter(frames), META)
    write_sequence(store_path, "val", 0, iter(frames), {**META, "scene": "racing"})
    s = open_store(store_path).summary()
    assert s["splits"]["train"] == {"sequences": 2, "complete": 1, "frames": 3, "scenes": {"primitives": 1}}
    assert s["scenes"] == {"primitives": 1, "racing": 1}
    assert (s["sequences"], s["complete_sequences"], s["frames"]) == (3, 2, 6)
    assert s["arrays"]["color_hr"] == {"shape": [3, 10, 14, 3], "dtype": "float16",
                                       "dims": ["sequence", "frame", "y_hr", "x_hr", "rgb"]}
    per_seq = sum(getattr(frames[0], n).nbytes for n in FRAME_NAMES) * 3
    assert s["logical_bytes"] > 2 * per_seq  # plus matrices, flags and times
    assert s["disk_bytes"] > 0 and s["compression_ratio"] == s["logical_bytes"] / s["disk_bytes"]
    json.dumps(s, allow_nan=False)


# -- schema and version -------------------------------------------------------------------------


def test_another_schema_version_is_refused_with_what_to_do(store_path):
    set_schema_version(store_path, 99)
    for attempt in (lambda: open_store(store_path),
                    lambda: write_sequence(store_path, "train", 0, iter([]), META),
                    lambda: make_store(store_path)):
        with pytest.raises(SchemaVersionError) as err:
            attempt()
        message = str(err.value)
        assert "schema version 99 (written by datagen 0.1.0)" in message
        assert f"reads schema version {SCHEMA_VERSION}" in message
        assert "Rebuild the store with this version" in message and "install datagen 0.1.0" in message
        assert isinstance(err.value, StoreError) and isinstance(err.value, ValueError)
    make_store(store_path, overwrite=True)
    assert open_store(store_path).attrs["schema_version"] == SCHEMA_VERSION


def test_check_version_without_attrs_says_not_a_store():
    with pytest.raises(StoreError, match="not a datagen store"):
        check_version({}, "somewhere")
    check_version({"schema_version": SCHEMA_VERSION}, "somewhere")


def test_every_axis_has_one_size_and_pixel_shards_hold_one_sequence():
    sizes = dim_sizes(24, (1920, 1080), (960, 540))
    for spec in ARRAYS.values():
        chunks, shards = chunking(spec, sizes, Layout(tile_hr=256, frames_per_shard=8))
        assert chunks[0] == 1 and (shards is None or shards[0] == 1), spec.name
        if shards is not None:
            assert all(s % c == 0 for s, c in zip(shards, chunks, strict=True))
            assert shards[1] == 8 and tuple(shards[2:4]) >= spec.shape(sizes)[1:3]
    assert chunking(ARRAYS["color_hr"], sizes, Layout(256))[0] == (1, 1, 216, 240, 3)
    assert chunking(ARRAYS["color_lr"], sizes, Layout(256))[0] == (1, 1, 108, 120, 3)
    assert (tile_side(1080, 256), tile_side(1000, 256), tile_side(7, 256)) == (216, 250, 7)
    assert tile_side(1031, 256) == 256  # a prime: the edge tile is padded


# -- other readers ------------------------------------------------------------------------------


@pytest.fixture
def written(tmp_path):
    frames = random_frames(3, (14, 10), 2.0, seed=3)
    path = make_store(tmp_path / "s", layout=Layout(tile_hr=4, frames_per_shard=2))
    write_sequence(path, "train", 1, iter(frames), META)
    return path, frames


def test_plain_zarr_python_reads_it(written):
    path, frames = written
    root = zarr.open_group(path, mode="r")
    assert root.attrs["schema_version"] == SCHEMA_VERSION
    arr = root["train/motion_hr"]
    assert arr.metadata.dimension_names == ("sequence", "frame", "y_hr", "x_hr", "uv")
    np.testing.assert_array_equal(arr[1], stacked(frames, "motion_hr"))
    assert root["train/complete"][:].tolist() == [False, True]


def test_xarray_opens_a_split_as_one_dataset(written):
    import xarray as xr  # a test dependency: missing means a broken install, not a skip
    path, frames = written
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. the warning about missing consolidated metadata
        ds = xr.open_zarr(path, group="train")
    assert set(ds.data_vars) == set(ARRAYS)
    assert dict(ds.sizes) == {"sequence": 2, "frame": 3, "y_lr": 5, "x_lr": 7, "y_hr": 10, "x_hr": 14,
                              "rgb": 3, "uv": 2, "xyz": 3, "material": 2, "jitter": 2, "row": 4, "col": 4}
    assert ds["color_lr"].dims == ("sequence", "frame", "y_lr", "x_lr", "rgb")
    np.testing.assert_array_equal(ds["depth_hr"].isel(sequence=1).values, stacked(frames, "depth_hr"))
    assert ds["complete"].values.tolist() == [False, True] and ds["scene"].values[1] == "primitives"


def test_tensorstore_reads_the_same_values(written):
    import tensorstore as ts
    path, frames = written
    for name in ("color_hr", "depth_lr", "object_id_lr", "view", "complete"):
        kvstore = {"driver": "file", "path": str(path / "train" / name)}
        handle = ts.open({"driver": "zarr3", "kvstore": kvstore}, read=True).result()
        np.testing.assert_array_equal(handle.read().result(), zarr.open_array(path / "train" / name)[:],
                                      err_msg=name)
    fast, slow = open_store(path, engine="tensorstore"), open_store(path)
    for a, b in ((fast.read_window("train", 1), slow.read_window("train", 1)),
                 (fast.read_crop("train", 1, 1, 2, 2, 4, 6), slow.read_crop("train", 1, 1, 2, 2, 4, 6))):
        assert a.keys() == b.keys()
        for name in a:
            assert a[name].dtype == b[name].dtype
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# -- disk trouble ---------------------------------------------------------------------------------


def test_an_unwritable_path_gives_an_output_error_and_no_complete(store_path):
    """A file where the writer needs a directory: the OSError becomes a one-line OutputError
    (exit 2: choose another --out)."""
    (store_path / "train" / "color_hr" / "c").write_text("in the way")
    with pytest.raises(OutputError) as err:
        write_sequence(store_path, "train", 0, iter(random_frames(3, (14, 10), 2.0)), META)
    assert "cannot write sequence 0 of train" in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2
    assert not open_store(store_path).sequences("train")[0].complete


def test_a_read_only_store_gives_an_output_error(tmp_path, mounted):
    frames = random_frames(3, (14, 10), 2.0)
    path = make_store(tmp_path / "src" / "s")
    write_sequence(path, "train", 0, iter(frames), META)
    ro = mounted(tmp_path / "ro", "--bind", str(tmp_path / "src"))
    mount("-o", "remount,ro,bind", str(ro))
    for index in (0, 1):  # complete (its flag must be cleared) and not yet written
        with pytest.raises(OutputError, match="Read-only file system.*writable --out"):
            write_sequence(ro / "s", "train", index, iter(frames), META)
    assert [s.complete for s in open_store(ro / "s").sequences("train")] == [True, False]


def test_a_full_disk_leaves_the_sequence_not_complete_and_the_rest_intact(tmp_path, mounted):
    disk = mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=1m", "tmpfs")
    hr, layout = (128, 64), Layout(tile_hr=None, frames_per_shard=2, level=1)
    path = make_store(disk / "s", 8, hr, 2.0, layout=layout)
    calm = [Frame(**{**f.__dict__, **{n: np.zeros_like(getattr(f, n)) for n in FRAME_NAMES}})
            for f in random_frames(8, hr, 2.0)]  # compresses to almost nothing
    write_sequence(path, "train", 0, iter(calm), META)
    noisy = random_frames(8, hr, 2.0, seed=5)  # ~2.4 MB that does not compress
    with pytest.raises(DiskFullError, match="No space left on device.*free disk space") as err:
        write_sequence(path, "train", 1, iter(noisy), META)
    assert err.value.exit_code == 1  # a runtime failure, not bad input
    store = open_store(path)
    assert [s.complete for s in store.sequences("train")] == [True, False]
    assert_frames_equal(store.read_window("train", 0), calm)


def test_bench_store_quick_gives_the_figures(tmp_path):
    from datagen.store.measure import bench_store

    figures = {f["figure"]: f for f in bench_store(tmp_path, quick=True)}
    assert set(figures) == {"store_write", "store_read_window", "store_read_crop", "writer_vs_codec"}
    w = figures["writer_vs_codec"]
    assert w["cpu_seconds"] > 0 and w["reference"]["cpu_seconds"] > 0
    assert w["ratio"] == pytest.approx(w["cpu_seconds"] / w["reference"]["cpu_seconds"])
    assert figures["store_write"]["mb_per_s"] > 0 and figures["store_write"]["ratio"] > 0
    assert figures["store_read_window"]["window"] == 8 and figures["store_read_crop"]["crop_hr"] == 256
    assert figures["store_read_crop"]["samples_per_s"] > 0
    json.dumps(list(figures.values()), allow_nan=False)
