"""One HR reference, several LR ratios (``build --scale 2,1.5,1.7``): the build, the store's
per-ratio groups, validate, the readers and the NSS export."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from datagen import conventions as cv
from datagen.errors import ConfigError, DiskFullError, StoreError
from datagen.pipeline import BuildConfig, Splits, load_config
from datagen.pipeline.plan import plan
from datagen.pipeline.worker import sequence_scene
from datagen.render import Renderer
from datagen.store import open_store, writer
from datagen.store.ratios import RATIO_NAMES
from datagen.store.schema import FRAME_NAMES, STEP_NAMES, Layout
from datagen.store.validate import validate
from datagen.store.writer import create_store, write_sequence

DATAGEN = [sys.executable, "-m", "datagen"]
SCALES = (2.0, 1.5, 1.7)
MULTI = BuildConfig(scenes=("racing",), sequences=2, frames=3, res="64x36", scale=SCALES[0],
                    extra_scales=SCALES[1:], spp=8, shadow_map_size=256,
                    splits=Splits(train=0.5, val=0.5, test=0.0), workers=2)
LR_SIZES = {2.0: (32, 18), 1.5: (43, 24), 1.7: (38, 21)}  # 64x36 / scale, rounded per axis


def run(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "LP_NUM_THREADS": "1"}
    return subprocess.run([*DATAGEN, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


RECIPE = """scenes = ["racing"]
sequences = 2
frames = 3
res = "64x36"
scale = [2, 1.5, 1.7]
spp = 8
shadow_map_size = 256
[splits]
train = 0.5
val = 0.5
test = 0.0
"""


@pytest.fixture(scope="module")
def multi_store(tmp_path_factory) -> Path:
    """``datagen build --recipe R --scale 2,1.5,1.7``, R giving the same ratios as a list."""
    where = tmp_path_factory.mktemp("multi")
    (where / "r.toml").write_text(RECIPE)
    assert load_config(where / "r.toml", workers=2) == MULTI
    out = where / "multi.zarr"
    proc = run("build", "--recipe", where / "r.toml", "--scale", "2,1.5,1.7", "--workers", "2", "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_multi_ratio_build_validates_at_every_ratio(multi_store):
    store = open_store(multi_store)
    assert store.scales == SCALES and store.scale == 2.0 and store.lr_size == LR_SIZES[2.0]
    extra = store.attrs["store"]["extra_lr"]
    assert [e["group"] for e in extra] == ["lr_x1.5", "lr_x1.7"]
    for entry in extra:
        lr = LR_SIZES[entry["scale"]]
        assert entry["lr_size"] == list(lr)
        assert entry["jitter_phase_count"] == cv.jitter_phase_count(64 / lr[0])
        assert entry["mip_bias_lr"] == cv.mip_bias(64 / lr[0])
    assert store.config["build"]["extra_scales"] == [1.5, 1.7]
    assert list(validate(store)) == []
    assert store.summary()["scales"] == list(SCALES)
    from datagen.cli import format_summary

    assert "ratios      also 1.5 (LR 43x24, SPLIT/lr_x1.5), 1.7 (LR 38x21, SPLIT/lr_x1.7)" in \
        format_summary(store.summary())


def test_each_ratio_equals_what_a_single_ratio_render_gives(multi_store):
    """The extra ratios' LR (and the shared HR) are bit for bit what a Renderer of that one
    ratio renders for the same sequence: same camera, scene state and jitter sequence."""
    tasks = plan(MULTI)
    for scale in SCALES:
        store = open_store(multi_store, scale=scale)
        assert store.lr_size == LR_SIZES[scale]
        single = dataclasses.replace(MULTI, scale=scale, extra_scales=())
        with Renderer(single.render_config()) as renderer:
            for task in tasks:
                scene = sequence_scene(task)[1]
                stored = store.read_window(task.split, task.index)
                for t in range(MULTI.frames):
                    frame = renderer.render(scene, t)
                    for name in (*FRAME_NAMES, *STEP_NAMES):
                        want = np.asarray(getattr(frame, name))
                        assert np.array_equal(stored[name][t], want, equal_nan=True), (scale, task, t, name)
                    assert np.allclose(stored["jitter_px"][t], cv.jitter_px(t, 64 / LR_SIZES[scale][0]))


def test_xarray_opens_the_split_and_each_ratio_group(multi_store):
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = xr.open_zarr(multi_store, group="train")
        groups = {s: xr.open_zarr(multi_store, group=f"train/lr_x{s:g}") for s in SCALES[1:]}
    assert split.sizes["x_lr"] == 32 and split.sizes["y_lr"] == 18
    store = open_store(multi_store, scale=1.7)
    for scale, ds in groups.items():
        assert set(ds.data_vars) == set(RATIO_NAMES)
        assert (ds.sizes["x_lr"], ds.sizes["y_lr"]) == LR_SIZES[scale]
        assert ds["color_lr"].dims == ("sequence", "frame", "y_lr", "x_lr", "rgb")
    np.testing.assert_array_equal(groups[1.7]["motion_lr"].isel(sequence=0).values,
                                  store.read_window("train", 0)["motion_lr"])


def test_a_store_is_read_at_any_of_its_ratios_and_no_other(multi_store):
    with pytest.raises(StoreError, match=r"no LR at scale 3; its scales: 2, 1.5, 1.7"):
        open_store(multi_store, scale=3.0)
    at_2, at_15 = open_store(multi_store), open_store(multi_store, scale=1.5, engine="tensorstore")
    a, b = at_2.read_window("val", 0), at_15.read_window("val", 0)
    for name in a:
        if name in RATIO_NAMES:
            assert a[name].shape[1:3] != b[name].shape[1:3] or name == "jitter_px"
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert at_15.conventions["jitter_phase_count"] == cv.jitter_phase_count(64 / 43)
    crop = at_15.read_crop("val", 0, 0, 2, 0, 0, (36, 64), arrays=["color_lr", "color_hr"])
    assert crop["color_lr"].shape == (2, 24, 43, 3) and crop["color_hr"].shape == (2, 36, 64, 3)


def test_window_dataset_picks_a_ratio(multi_store):
    from datagen.train.data import WindowDataset

    keys = ("color_lr", "depth_lr", "jitter", "normal_lr", "color_hr")
    default = WindowDataset(multi_store, "train", window=2, crop_hr=None, keys=keys)
    picked = WindowDataset(multi_store, "train", window=2, crop_hr=None, keys=keys, scale=1.7)
    assert default.scale == 2.0 and picked.scale == 1.7
    a, b = default[0], picked[0]
    assert a["color_lr"].shape == (2, 3, 18, 32) and b["color_lr"].shape == (2, 3, 21, 38)
    assert b["normal_lr"].shape == (2, 3, 21, 38)
    assert np.array_equal(a["color_hr"].numpy(), b["color_hr"].numpy())
    want = [cv.jitter_px(t, 64 / 38) for t in range(2)]
    np.testing.assert_allclose(b["jitter"].numpy(), want, rtol=1e-6)
    with pytest.raises(StoreError, match="no LR at scale 4"):
        WindowDataset(multi_store, "train", window=2, scale=4.0)


def test_validate_checks_the_extra_ratios(multi_store, tmp_path):
    broken = tmp_path / "broken.zarr"
    shutil.copytree(multi_store, broken)
    jitter = zarr.open_array(broken / "train" / "lr_x1.5" / "jitter_px", mode="r+")
    jitter[0, 1] = jitter[0, 1] + 0.25
    color = zarr.open_array(broken / "val" / "lr_x1.7" / "color_lr", mode="r+")
    color[0, 2, 5, 7, 1] = np.nan
    failures = [str(f) for f in validate(open_store(broken))]
    assert sorted(failures) == [
        "jitter: train sequence 0 frame 1: jitter_px ({:.6f}, {:.6f}), expected Halton ({:.6f}, {:.6f}) at "
        "scale 1.5 (HR / LR width ratio 1.48837) [scale 1.5]".format(
            *(jitter[0, 1].astype(np.float64)), *cv.jitter_px(1, 64 / 43)),
        "nan: val sequence 0 frame 2: color_lr has 1 NaN value [scale 1.7]"], failures
    proc = run("validate", broken)
    assert proc.returncode == 3 and "[scale 1.5]" in proc.stdout
    motion = zarr.open_array(broken / "train" / "lr_x1.7" / "motion_lr", mode="r+")
    motion[0] = -motion[0]  # the wrong sign: LR motion no longer agrees with the shared HR motion
    failures = [str(f) for f in validate(open_store(broken), open_store(broken).sequences("train"))]
    at_17 = [f for f in failures if f.endswith("[scale 1.7]")]
    assert at_17 and all(f.startswith("motion_lr_hr: train sequence 0 frame ") for f in at_17), failures


def test_nss_export_writes_every_ratio(multi_store, tmp_path):
    from datagen.exr import read_exr

    out = tmp_path / "nss"
    proc = run("export", multi_store, "--format", "nss", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "this store has x1_5, x1_7" in proc.stdout
    folders = {"2": 2.0, "1_5": 1.5, "1_7": 1.7}  # Arm's names: str(float(r)).replace(".", "_"), "_0" dropped
    for split in ("train", "val"):
        root = out / split
        assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(
            ["ground_truth", "motion_gt", *(f"x{n}" for n in folders)])
        doc = json.loads((root / "0000.json").read_text())
        assert doc["UpscalingRatiosIndices"] == {"x2_index": 0, "x1_5_index": 1, "x1_7_index": 2}
        assert doc["Samples"]["Count"] == cv.jitter_phase_count(2.0)
        for name, scale in folders.items():
            store = open_store(multi_store, scale=scale)
            data = store.read_window(split, 0)
            lr = LR_SIZES[scale]
            index = doc["UpscalingRatiosIndices"][f"x{name}_index"]
            for t, rec in enumerate(doc["Frames"]):
                norm = rec["NormalizedPerRatioJitter"][index]
                want = data["jitter_px"][t].astype(np.float64) / np.array(lr)
                assert [norm["X"], norm["Y"]] == pytest.approx(want.tolist(), rel=1e-12)
                assert len(rec["NormalizedPerRatioJitter"]) == 3
                if index == 0:
                    assert [rec["Jitter"]["X"], rec["Jitter"]["Y"]] == data["jitter_px"][t].tolist()
                for kind in ("color", "depth", "motion"):
                    assert sorted(p.name for p in (root / f"x{name}" / kind / "0000").iterdir()) == \
                        [f"{i:04d}.exr" for i in range(MULTI.frames)]
                color = read_exr(root / f"x{name}" / "color" / "0000" / f"{t:04d}.exr")
                rgb = np.stack([color["R"], color["G"], color["B"]], -1)
                np.testing.assert_array_equal(rgb, data["color_lr"][t])
                motion = read_exr(root / f"x{name}" / "motion" / "0000" / f"{t:04d}.exr")
                uv = np.stack([motion["R"], motion["G"]], -1).astype(np.float64)
                want_uv = cv.nss_motion_uv(data["motion_lr"][t], lr)
                np.testing.assert_allclose(uv, want_uv, rtol=2e-3, atol=1e-7)


def test_scales_from_a_recipe_list_and_bad_lists(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('scenes = ["racing"]\nres = "64x36"\nscale = [2, 1.5, 1.7]\n')
    config = load_config(recipe)
    assert config.scale == 2.0 and config.extra_scales == (1.5, 1.7) and config.scales == SCALES
    assert config.render_config().scales == SCALES
    assert load_config(recipe, scale=1.5, extra_scales=()).scales == (1.5,)
    recipe.write_text('scenes = ["racing"]\nscale = [2, 2]\n')
    with pytest.raises(ConfigError, match="name a ratio twice"):
        load_config(recipe)
    recipe.write_text('scenes = ["racing"]\nscale = [2, "x"]\n')
    with pytest.raises(ConfigError, match="scale must be a list of numbers"):
        load_config(recipe)
    recipe.write_text('scenes = ["racing"]\nres = "64x36"\nscale = [2, 1.5]\n[augment]\ncrop = "32x18"\n')
    with pytest.raises(ConfigError, match="augment.crop cannot be used with several scales"):
        load_config(recipe)
    proc = run("build", "racing", "--scale", "2,1.1", "--out", tmp_path / "s.zarr")
    assert proc.returncode == 2 and "scale 1.1 is not supported" in proc.stderr
    assert not (tmp_path / "s.zarr").exists()


def test_a_single_ratio_store_records_no_ratio_list(tmp_path):
    single = dataclasses.replace(MULTI, extra_scales=())
    assert "extra_scales" not in single.recorded() and MULTI.recorded()["extra_scales"] == (1.5, 1.7)
    out = create_store(tmp_path / "one.zarr", single.recorded(), {"train": 1}, 1, (64, 36), 2.0,
                       cv.conventions_block(2.0, 8, 0.1, 100.0))
    store = open_store(out)
    assert "extra_lr" not in store.attrs["store"] and "scales" not in store.attrs["store"]
    assert store.scales == (2.0,) and list(zarr.open_group(out / "train", mode="r").group_keys()) == []


def test_bench_multi_ratio_figure():
    from datagen.bench import bench_multi_ratio
    from datagen.bench_report import summary_table

    figure = bench_multi_ratio(res=(64, 36), frames=1, spp=2)
    assert figure["figure"] == "multi_ratio_vs_single" and figure["ratio"] > 0
    assert 1 < figure["expected_ratio"] < 3 and set(figure["lr_part_s"]) == {"2", "1.5", "1.7"}
    assert figure["target"].startswith(f"~ {figure['expected_ratio']:.2f}")
    (row,) = [line for line in summary_table({"figures": [figure]}).splitlines()
              if line.startswith("multi_ratio_vs_single")]
    assert f"{figure['ratio']:.2f}" in row and figure["target"] in row


def two_ratio_store(path: Path) -> tuple[Path, list[list]]:
    """A 16x12 store at scales 2 and 1.5, a shard a frame, and 3 frames of random Frames at
    both ratios."""
    from test_store import random_frame

    out = create_store(path, {}, {"train": 1}, 3, (16, 12), 2.0, cv.conventions_block(2.0, 8, 0.1, 100.0),
                       layout=Layout(frames_per_shard=1), extra_scales=(1.5,))
    rng = np.random.default_rng(7)
    return out, [[random_frame(rng, t, (16, 12), s) for s in (2.0, 1.5)] for t in range(3)]


def test_the_extra_ratios_are_written_on_the_writer_thread(tmp_path, monkeypatch):
    path, frames = two_ratio_store(tmp_path / "two.zarr")
    threads = []
    add = writer.ShardBlocks.add

    def spy(self, t, frame):
        threads.append(("color_hr" in self.buffers, threading.current_thread().name))
        return add(self, t, frame)

    monkeypatch.setattr(writer.ShardBlocks, "add", spy)
    write_sequence(path, "train", 0, iter(frames), {"scene": "s", "seed": 1})
    assert sorted(threads) == [(False, "datagen-writer-0")] * 3 + [(True, "datagen-writer-0")] * 3
    extra = open_store(path, scale=1.5)
    assert extra.sequences("train")[0].complete
    stored = extra.read_window("train", 0)
    for name in RATIO_NAMES:
        assert np.array_equal(stored[name], np.stack([getattr(f[1], name) for f in frames]), equal_nan=True)
    assert np.array_equal(stored["color_hr"], np.stack([f[0].color_hr for f in frames]))
    with pytest.raises(StoreError, match=r"frame 0: 1 ratio\(s\) rendered, the store holds 2 \(2, 1.5\)"):
        write_sequence(path, "train", 0, iter(f[0] for f in frames), {"scene": "s", "seed": 1})
    assert not open_store(path).sequences("train")[0].complete


def test_an_extra_ratio_write_error_leaves_the_sequence_not_complete(tmp_path, monkeypatch):
    path, frames = two_ratio_store(tmp_path / "two.zarr")
    flush, failed = writer.ShardBlocks.flush, []

    def failing_flush(self, end):
        if "color_hr" not in self.buffers:  # an extra ratio's block
            failed.append(threading.current_thread().name)
            raise OSError(28, "No space left on device")
        return flush(self, end)

    monkeypatch.setattr(writer.ShardBlocks, "flush", failing_flush)
    with pytest.raises(DiskFullError, match="cannot write sequence 0 of train: No space left"):
        write_sequence(path, "train", 0, iter(frames), {"scene": "s", "seed": 1})
    assert failed == ["datagen-writer-0"]
    assert not open_store(path).sequences("train")[0].complete
