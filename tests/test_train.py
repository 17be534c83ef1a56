"""datagen.train: warp and sampling conventions, the TAAU baseline against bicubic on an
analytic jittered scene, the Dataset on a real rendered store, device selection, and
the real CLI: train 20 steps (the loss falls), resume exactly, eval, export, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from store_helpers import rendered_primitives_store

from datagen import conventions as cv
from datagen.errors import ConfigError, StoreError
from datagen.store import create_store, open_store
from datagen.store.writer import write_sequence
from datagen.train.baselines import Taau, bicubic
from datagen.train.data import WindowDataset, flip
from datagen.train.model import lr_coords, neighbourhood_clamp, scatter_samples, upsample_jittered, warp
from datagen.train.trainer import autocast_dtype, lr_factor, memory_format, resolve_device

HR, SCALE, SPP, T = (64, 36), 2.0, 8, 8
SPLITS = {"train": 2, "val": 0, "test": 1}
ENV = {**os.environ, "LP_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
TINY = ["--device", "cpu", "--batch", "2", "--window", "4", "--crop", "32", "--channels", "8,16",
        "--num-workers", "0", "--lr", "3e-3", "--warmup", "2", "--ckpt-every", "10"]


def datagen(*args, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datagen", *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def store(gl_session_ctx, tmp_path_factory) -> Path:
    """A real rendered store: primitives, 64x36 HR, scale 2, 8 spp, 8 frames; train 2, test 1."""
    return rendered_primitives_store(tmp_path_factory.mktemp("train") / "store.zarr", gl_session_ctx, SPLITS,
                                     T, HR, SCALE, SPP, seed_step=3)


# -- pure logic ----------------------------------------------------------------------------------


def test_import_is_gl_free():
    code = ("import sys, datagen.train, datagen.train.evaluate, datagen.train.export; "
            "print([m for m in sys.modules if m.startswith('moderngl') or m == 'datagen.render'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_warp_integer_shift_is_exact():
    img = torch.rand(1, 3, 11, 7, generator=torch.Generator().manual_seed(0))
    motion = torch.zeros(1, 2, 11, 7)
    motion[:, 0], motion[:, 1] = 2.0, -3.0  # prev_pixel = pixel + (2, -3)
    out, outside = warp(img, motion)
    # exact up to float32 rounding of grid_sample's normalised coordinates
    torch.testing.assert_close(out[..., 3:, :5], img[..., :-3, 2:], atol=1e-6, rtol=0)
    assert outside[0, 0, 3:, :5].sum() == 0 and outside[0, 0, :, 6].all()


def test_warp_subpixel_shift_of_a_linear_image():
    ys, xs = torch.meshgrid(torch.arange(9.0) + 0.5, torch.arange(13.0) + 0.5, indexing="ij")
    img = (0.3 * xs - 0.2 * ys)[None, None]  # bilinear interpolation is exact on a linear image
    motion = torch.stack([torch.full_like(xs, 0.25), torch.full_like(xs, -0.5)])[None]
    out, _ = warp(img, motion)
    expect = 0.3 * (xs + 0.25) - 0.2 * (ys - 0.5)
    torch.testing.assert_close(out[0, 0, 1:-1, 1:-1], expect[1:-1, 1:-1], atol=1e-5, rtol=0)


@pytest.mark.parametrize(("scale", "hr"), [(1.5, (9, 6)), (2.0, (12, 8)), (3.0, (18, 12)),
                                           (1.7, (10, 7)), (1.3, (8, 5))])
def test_scatter_puts_each_lr_sample_in_the_hr_pixel_it_falls_in(scale, hr):
    h, w = 6, 4
    H, W = hr  # at 1.7 and 1.3 the LR size is rounded: the exact ratios are (7 / 4, 10 / 6), (5 / 4, 8 / 6)
    assert cv.lr_size((W, H), scale) == (w, h)
    rx, ry = cv.ratio_of((W, H), (w, h))
    lr = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w) + 1
    jitter = torch.tensor([[0.31, -0.42]])
    samples, mask = scatter_samples(lr, (H, W), (rx, ry), jitter)
    expect = np.zeros((H, W), np.float32)
    for y in range(h):
        for x in range(w):  # SPEC §4: the sample of LR pixel (x, y) is at (x + 0.5 + jx, y + 0.5 + jy)
            X, Y = int((x + 0.5 + 0.31) * rx), int((y + 0.5 - 0.42) * ry)
            expect[Y, X] = lr[0, 0, y, x]
    np.testing.assert_array_equal(samples[0, 0].numpy(), expect)
    assert int(mask.sum()) == h * w


def test_flips_commute_with_warp_and_jittered_upsampling():
    g = torch.Generator().manual_seed(1)
    item = {"color_lr": torch.rand(1, 3, 6, 8, generator=g), "depth_lr": torch.rand(1, 1, 6, 8, generator=g),
            "motion_lr": torch.randn(1, 2, 6, 8, generator=g), "jitter": torch.tensor([[0.2, -0.3]]),
            "color_hr": torch.rand(1, 3, 12, 16, generator=g),
            "motion_hr": torch.randn(1, 2, 12, 16, generator=g)}
    for fx, fy in ((True, False), (False, True), (True, True)):
        f = flip(item, fx, fy)
        dims = [d for d, on in ((-1, fx), (-2, fy)) if on]
        warped, _ = warp(item["color_hr"], item["motion_hr"])
        warped_f, _ = warp(f["color_hr"], f["motion_hr"])
        torch.testing.assert_close(warped_f, warped.flip(dims), atol=1e-5, rtol=0)
        up = upsample_jittered(item["color_lr"], (12, 16), 2.0, item["jitter"])
        up_f = upsample_jittered(f["color_lr"], (12, 16), 2.0, f["jitter"])
        torch.testing.assert_close(up_f, up.flip(dims), atol=1e-5, rtol=0)


def test_neighbourhood_clamp_keeps_the_frame_and_bounds_the_rest():
    g = torch.Generator().manual_seed(2)
    lr, jitter = torch.rand(1, 3, 6, 8, generator=g), torch.tensor([[0.3, -0.2]])
    up = upsample_jittered(lr, (12, 16), 2.0, jitter)
    # the frame's own reconstruction lies inside its neighbourhood: unchanged
    torch.testing.assert_close(neighbourhood_clamp(up, lr, (12, 16), 2.0, jitter), up)
    # a history far outside it is brought to the bounds, which hold the frame
    high = neighbourhood_clamp(up + 10, lr, (12, 16), 2.0, jitter)
    low = neighbourhood_clamp(up - 10, lr, (12, 16), 2.0, jitter)
    assert (high >= up - 1e-6).all() and (high <= lr.max() + 1e-6).all() and (high > up).any()
    assert (low <= up + 1e-6).all() and (low >= lr.min() - 1e-6).all() and (low < up).any()
    flat = torch.full_like(lr, 0.25)  # a flat neighbourhood admits only its value
    torch.testing.assert_close(neighbourhood_clamp(torch.rand(1, 3, 12, 16, generator=g), flat, (12, 16),
                                                   2.0, jitter), torch.full_like(up, 0.25))


def _pattern(x, y):
    """A band-limited pattern with detail near the LR Nyquist limit (cycles per HR pixel < 0.5)."""
    return (0.5 + 0.2 * np.sin(2 * np.pi * (0.21 * x + 0.05 * y))
            + 0.2 * np.cos(2 * np.pi * (0.07 * x - 0.19 * y)) + 0.1 * np.sin(2 * np.pi * 0.11 * (x + y)))


def test_taau_on_a_static_jittered_scene_beats_bicubic():
    scale, (H, W) = 2.0, (36, 48)
    h, w = int(H / scale), int(W / scale)
    sub = (np.arange(8) + 0.5) / 8  # HR reference: 8x8 box filter over each HR pixel
    ys, xs = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    ref = np.mean([_pattern(xs + a, ys + b) for a in sub for b in sub], axis=0)
    ref = torch.from_numpy(ref).float()[None, None].expand(1, 3, H, W)
    taau = Taau(scale)
    ly, lx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    errors, bicubic_errors = {}, []
    for i in range(16):
        jx, jy = cv.jitter_px(i, scale)
        lr = _pattern((lx + 0.5 + jx) * scale, (ly + 0.5 + jy) * scale)  # SPEC §4, in HR units
        lr = torch.from_numpy(lr).float()[None, None].expand(1, 3, h, w)
        out = taau.step(lr, torch.zeros(1, 2, h, w), torch.tensor([[jx, jy]], dtype=torch.float32), (H, W))
        inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
        errors["taau"] = float((out - ref)[inner].abs().mean())
        bicubic_errors.append(float((bicubic(lr, (H, W)) - ref)[inner].abs().mean()))
        if i == 0:
            first = errors["taau"]
    errors["bicubic (mean over frames)"] = float(np.mean(bicubic_errors))
    assert errors["taau"] < 0.6 * min(bicubic_errors), (errors, bicubic_errors)
    assert errors["taau"] < 0.6 * first, (first, errors)


def test_device_and_precision_selection():
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")
    assert autocast_dtype(cpu) is None and autocast_dtype(torch.device("cuda")) is torch.bfloat16
    assert memory_format(cpu) is torch.contiguous_format
    assert memory_format(torch.device("cuda")) is torch.channels_last
    assert [round(lr_factor(s, 2, 10), 3) for s in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 0.5, 0.0]


# -- the Dataset on a real store -----------------------------------------------------------------


def test_dataset_items_are_aligned_crops(store):
    ds = WindowDataset(store, "train", window=4, crop_hr=(16, 24), seed=5)
    assert len(ds) == 2 * (T - 4 + 1)
    item = ds[3]
    shapes = {k: tuple(v.shape) for k, v in item.items()}
    assert shapes == {"color_lr": (4, 3, 8, 12), "depth_lr": (4, 1, 8, 12), "motion_lr": (4, 2, 8, 12),
                      "jitter": (4, 2), "color_hr": (4, 3, 16, 24), "motion_hr": (4, 2, 16, 24),
                      "exposure": (4,), "camera_cut": (4,), "lr_offset": (2,)}
    assert item["lr_offset"].tolist() == [0.0, 0.0]  # even crops at scale 2: the grids line up
    assert all(v.dtype == torch.float32 for k, v in item.items() if k != "camera_cut")
    for name in ("color_lr", "color_hr"):
        assert torch.equal(ds[3][name], item[name])  # the same (seed, epoch, index): the same crop
    seq, start = ds.windows[3]
    whole = open_store(store).read_window("train", seq, start, 4)
    found = [(y, x) for y in range(0, 36 - 16 + 1, 2) for x in range(0, 64 - 24 + 1, 2)
             if np.array_equal(whole["color_hr"][:, y:y + 16, x:x + 24].transpose(0, 3, 1, 2),
                               item["color_hr"].numpy().astype(np.float16))]
    assert found, "the HR crop is not a window of the stored frames"
    y, x = found[0]
    lr = whole["color_lr"][:, y // 2:y // 2 + 8, x // 2:x // 2 + 12].transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(item["color_lr"].numpy(), lr.astype(np.float32))
    ds.set_epoch(1)
    assert not all(torch.equal(ds[i]["color_hr"], WindowDataset(store, "train", 4, (16, 24), seed=5)[i]
                               ["color_hr"]) for i in range(len(ds)))


def test_dataset_with_workers_pinned_memory_and_distributed_sampler(store):
    from torch.utils.data import DataLoader, DistributedSampler

    ds = WindowDataset(store, "train", window=2, crop_hr=16, augment=True, seed=1)
    ranks = [list(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == list(range(len(ds)))
    one = [b["color_hr"] for b in DataLoader(ds, batch_size=3, sampler=ranks[0], num_workers=0)]
    two = [b["color_hr"] for b in DataLoader(ds, batch_size=3, sampler=ranks[0], num_workers=2,
                                             pin_memory=torch.cuda.is_available())]
    assert len(one) == len(two) and all(torch.equal(a, b) for a, b in zip(one, two, strict=True))


def test_epoch_sampler_is_the_per_epoch_order_in_one_stream_and_resumes(store):
    """One loader across epochs: (epoch, window) items in each epoch's DistributedSampler
    order, whole batches only; started at batch k it continues the same stream; an
    (epoch, i) item is window i with that epoch's crops, whatever the dataset's epoch."""
    from itertools import islice

    from torch.utils.data import DistributedSampler

    from datagen.train.data import EpochSampler

    ds = WindowDataset(store, "train", window=2, crop_hr=16, augment=True, seed=1)
    batch = 3
    per_epoch = len(ds) // batch
    expected = []
    for epoch in range(3):
        order = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=5)
        order.set_epoch(epoch)
        expected += [(epoch, i) for i in list(order)[:per_epoch * batch]]
    assert list(islice(EpochSampler(ds, batch, seed=5), len(expected))) == expected
    resumed = EpochSampler(ds, batch, seed=5, start=per_epoch + 1)
    assert list(islice(resumed, 4)) == expected[(per_epoch + 1) * batch:][:4]
    ds.set_epoch(2)
    assert torch.equal(ds[(2, 3)]["color_hr"], ds[3]["color_hr"])
    ds.set_epoch(0)
    assert not torch.equal(ds[(2, 3)]["color_hr"], ds[3]["color_hr"])
    with pytest.raises(ConfigError, match="batch 999 is larger"):
        EpochSampler(ds, 999)


def _unproject(proj_view: np.ndarray, pixel: np.ndarray, depth: np.ndarray, size) -> np.ndarray:
    """World points (n, 3) seen at pixel positions (n, 2) at linear depths (n,)."""
    ndc = np.stack([pixel[:, 0] / size[0] * 2 - 1, 1 - pixel[:, 1] / size[1] * 2], -1)
    m = proj_view[[0, 1, 3]]  # clip x = ndc x * w, clip y = ndc y * w, clip w = depth
    rhs = np.stack([ndc[:, 0] * depth, ndc[:, 1] * depth, depth], -1) - m[:, 3]
    return np.linalg.solve(m[:, :3], rhs.T).T


def _mirror(a: np.ndarray, fx: bool, fy: bool) -> np.ndarray:
    """(K, y, x, C) mirrored left-right and/or top-bottom."""
    return a[:, ::-1 if fy else 1, ::-1 if fx else 1]


def test_dataset_keys_carry_the_whole_gbuffer_through_crops_and_flips(store):
    from datagen.train.data import KEYS

    ds = WindowDataset(store, "train", window=3, crop_hr=(16, 24), augment=True, seed=2, keys=KEYS)
    (ch, cw), (h, w) = (16, 24), (8, 12)
    shapes = {"color_lr": (3, 3, h, w), "depth_lr": (3, 1, h, w), "motion_lr": (3, 2, h, w),
              "normal_lr": (3, 3, h, w), "albedo_lr": (3, 3, h, w), "material_lr": (3, 2, h, w),
              "object_id_lr": (3, 1, h, w), "color_hr": (3, 3, ch, cw), "depth_hr": (3, 1, ch, cw),
              "motion_hr": (3, 2, ch, cw), "jitter": (3, 2), "view": (3, 4, 4), "proj": (3, 4, 4),
              "exposure": (3,), "camera_cut": (3,), "time_s": (3,), "lr_offset": (2,)}
    flips_seen = set()
    for i in range(0, len(ds), 3):
        item = ds[i]
        assert {k: tuple(v.shape) for k, v in item.items()} == shapes
        assert item["object_id_lr"].dtype == torch.int64 and item["time_s"].dtype == torch.float64
        assert item["camera_cut"].dtype == torch.bool and item["normal_lr"].dtype == torch.float32
        seq, start = ds.windows[i]
        stored = open_store(store).read_window("train", seq, start, 3)
        whole = {k: v.astype(np.float64) for k, v in stored.items()}
        # find the crop and flips by the colour, then check every other key against them
        found = []
        for fx in (False, True):
            for fy in (False, True):
                for y in range(0, 36 - ch + 1, 2):
                    for x in range(0, 64 - cw + 1, 2):
                        crop = _mirror(whole["color_hr"][:, y:y + ch, x:x + cw], fx, fy)
                        if np.array_equal(crop.transpose(0, 3, 1, 2), item["color_hr"].numpy()):
                            found.append((y, x, fx, fy))
        assert len(found) == 1, found
        y, x, fx, fy = found[0]
        flips_seen.add((fx, fy))
        sign = np.array([-1.0 if fx else 1.0, -1.0 if fy else 1.0])
        for key in ("color_lr", "depth_lr", "motion_lr", "normal_lr", "albedo_lr", "material_lr",
                    "object_id_lr", "depth_hr", "motion_hr"):
            a = whole[key]
            a = a[..., None] if a.ndim == 3 else a
            yy, xx, hh, ww = (y, x, ch, cw) if key.endswith("_hr") else (y // 2, x // 2, h, w)
            want = _mirror(a[:, yy:yy + hh, xx:xx + ww], fx, fy)
            if key.startswith("motion_"):
                want = want * sign  # motion turns with the image; normals stay world space
            np.testing.assert_array_equal(item[key].numpy().transpose(0, 2, 3, 1), want, err_msg=key)
        np.testing.assert_array_equal(item["jitter"].numpy(), whole["jitter_px"] * sign)
        for key in ("view", "exposure", "time_s"):
            np.testing.assert_array_equal(item[key].numpy(), whole[key].astype(item[key].numpy().dtype))
        # the item's proj projects onto the item's pixels: HR pixels seen through it at their depth
        # are the full frame's pixels at the crop's (mirrored) positions
        for t in range(3):
            depth = item["depth_hr"][t, 0].numpy().astype(np.float64)
            iy, ix = np.nonzero(np.isfinite(depth))
            pv = item["proj"][t].numpy().astype(np.float64) @ whole["view"][t]
            points = _unproject(pv, np.stack([ix + 0.5, iy + 0.5], -1), depth[iy, ix], (cw, ch))
            full = cv.project_px(whole["proj"][t] @ whole["view"][t], points, HR)
            fx_pos = x + (cw - 1 - ix if fx else ix) + 0.5
            fy_pos = y + (ch - 1 - iy if fy else iy) + 0.5
            np.testing.assert_allclose(full, np.stack([fx_pos, fy_pos], -1), atol=2e-3)
    assert len(flips_seen) > 1


FORK_SCRIPT = """
import sys, torch
from torch.utils.data import DataLoader, get_worker_info
from datagen.train.data import WindowDataset
keys = ["color_hr", "normal_lr", "albedo_lr", "material_lr", "object_id_lr", "depth_hr", "motion_lr",
        "jitter", "proj"]
def opened(_):
    print("worker reads with", get_worker_info().dataset.store.engine, flush=True)
def batches(ds, workers):
    return list(DataLoader(ds, batch_size=2, num_workers=workers, worker_init_fn=opened if workers else None,
                           multiprocessing_context="fork" if workers else None))
args = (sys.argv[1], "train", 2, 16)
ref = batches(WindowDataset(*args, augment=True, seed=3, keys=keys), 0)
ds = WindowDataset(*args, augment=True, seed=3, keys=keys, engine="tensorstore")
fresh = batches(ds, 2)
ds[0]
print("main reads with", ds.store.engine, flush=True)
after = batches(ds, 2)
for got in (fresh, after):
    assert len(got) == len(ref) > 1
    for a, b in zip(ref, got):
        assert all(torch.equal(a[k], b[k]) for k in keys)
print("same batches")
"""


def test_dataset_keys_with_two_fork_workers_on_tensorstore(store):
    """Fork workers read with tensorstore; after the parent itself read with tensorstore
    (which makes it unusable in forked children) they read the same values with zarr."""
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT, str(store)], capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines.count("worker reads with tensorstore") == 2 and lines.count("worker reads with zarr") == 2
    assert "main reads with tensorstore" in lines and lines[-1] == "same batches"
    assert lines.index("main reads with tensorstore") < lines.index("worker reads with zarr")
    assert "forked from one that had read with tensorstore" in done.stderr


def test_dataset_bad_input(store, tmp_path):
    with pytest.raises(ConfigError, match="larger than the store's HR frames"):
        WindowDataset(store, "train", crop_hr=40)
    with pytest.raises(ConfigError, match="must be positive"):
        WindowDataset(store, "train", crop_hr=(0, 8))
    with pytest.raises(StoreError, match="no complete sequence"):
        WindowDataset(store, "val")
    with pytest.raises(StoreError, match="not a store"):
        WindowDataset(tmp_path / "nothing", "train")
    with pytest.raises(ConfigError, match=r"keys \['normals'\] are not per-frame arrays of a store; valid: "):
        WindowDataset(store, "train", crop_hr=16, keys=["color_lr", "normals"])


def coordinate_store(path: Path, hr: tuple[int, int], scale: float) -> Path:
    """A store whose motion arrays hold positions in HR pixels: motion_hr at each HR centre,
    motion_lr at each LR pixel's jittered sample (x + 0.5 + jx) * ratio_x, likewise y."""
    from datagen.frame import Frame

    lr = cv.lr_size(hr, scale)
    ratio = cv.ratio_of(hr, lr)
    create_store(path, {"test": "coordinates"}, {"train": 1}, 3, hr, scale,
                 cv.conventions_block(scale, 8, 0.1, 100.0, ratio=ratio))
    frames = []
    for t in range(3):
        jitter = np.asarray(cv.jitter_px(t, ratio[0]), np.float32)
        at_lr = (cv.pixel_centres(lr) + jitter) * ratio
        ones_lr, ones_hr = np.ones((lr[1], lr[0]), np.float32), np.ones((hr[1], hr[0]), np.float32)
        rgb_lr = np.ones((lr[1], lr[0], 3), np.float16)
        frames.append(Frame(
            color_lr=rgb_lr, depth_lr=ones_lr, motion_lr=at_lr.astype("f4"), normal_lr=rgb_lr,
            albedo_lr=rgb_lr, material_lr=rgb_lr[..., :2], object_id_lr=ones_lr.astype(np.uint32),
            color_hr=np.ones((hr[1], hr[0], 3), np.float16), depth_hr=ones_hr,
            motion_hr=cv.pixel_centres(hr).astype("f4"), jitter_px=jitter, view=np.eye(4, dtype="f4"),
            proj=np.eye(4, dtype="f4"), exposure=1.0, camera_cut=t == 0, time_s=t / 30))
    write_sequence(path, "train", 0, iter(frames), {"scene": "coordinates", "seed": 0})
    return path


@pytest.mark.parametrize(("hr", "scale", "crop"), [
    ((21, 13), 1.7, (7, 9)),     # LR 12x8 (rounded): ratio (1.75, 1.625); no crop lines up
    ((21, 13), 1.7, (13, 21)),   # the whole frame: exact, offset 0
    ((15, 10), 2.0, (4, 7)),     # LR 8x5: rows line up every 2 HR pixels, columns never
    ((24, 16), 1.5, (6, 7)),     # exact 1.5: rows line up every 3, a 7 px width does not
])
def test_crops_keep_the_exact_ratio_with_flips(tmp_path, hr, scale, crop):
    """Jittered upsampling of a crop's LR positions, at the store's ratio and with the crop's
    LR offset taken out of the jitter (``model_jitter``), lands on the HR crop's positions,
    flipped or not: the crop keeps the LR <-> HR mapping of the whole frame."""
    from datagen.train.data import model_jitter

    ds = WindowDataset(coordinate_store(tmp_path / "c.zarr", hr, scale), "train", window=3, crop_hr=crop,
                       augment=True, seed=0)
    assert ds.ratio == cv.ratio_of(hr, cv.lr_size(hr, scale))
    for epoch in range(4):
        ds.set_epoch(epoch)
        item = ds[0]
        H, W = item["motion_hr"].shape[-2:]
        assert (H, W) == crop
        h, w = item["motion_lr"].shape[-2:]
        slack = torch.tensor([w - W / ds.ratio[0], h - H / ds.ratio[1]])  # LR pixels beyond the HR crop
        assert ((item["lr_offset"] >= -1e-9) & (item["lr_offset"] <= slack + 1e-9)).all()
        up = upsample_jittered(item["motion_lr"], (H, W), ds.ratio, model_jitter(item))
        # bilinear reconstruction is exact on a linear field inside the hull of the LR samples
        fx, fy = (t.numpy() for t in lr_coords((H, W), ds.ratio, model_jitter(item)))
        inside = (fx >= 0) & (fx <= w - 1) & (fy >= 0) & (fy <= h - 1)
        assert inside.sum() >= 2 * 3
        err = (up - item["motion_hr"]).abs().amax(1).numpy()
        assert err[inside].max() < 1e-3, (epoch, item["lr_offset"].tolist(), err[inside].max())


# -- the CLI: train, resume, eval, export ---------------------------------------------------------


def _losses(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    done = datagen("train", store, "--steps", 20, "--out", out, *TINY)
    assert done.returncode == 0, done.stderr
    assert "to step 20 of 20" in done.stdout
    return out


def test_train_20_steps_the_loss_falls(run):
    records = _losses(run)
    assert [r["step"] for r in records] == list(range(1, 21))
    for key in ("loss", "lr", "samples_per_s", "data_wait_frac", "l1", "ssim", "temporal"):
        assert all(np.isfinite(r[key]) for r in records), key
    assert all(0 <= r["data_wait_frac"] < 1 for r in records)
    first = np.mean([r["loss"] for r in records[:5]])
    last = np.mean([r["loss"] for r in records[-5:]])
    assert last < 0.8 * first, (first, last)
    config = json.loads((run / "config.json").read_text())
    assert config["steps"] == 20 and config["tonemap"] == "reinhard" and config["device_resolved"] == "cpu"
    assert {p.name for p in (run / "ckpt").iterdir()} == {"step_000010.pt", "step_000020.pt", "last.pt"}
    assert list((run / "tb").iterdir()), "TensorBoard events"


def test_resume_continues_exactly(store, run, tmp_path):
    out = tmp_path / "resumed"
    first = datagen("train", store, "--steps", 20, "--stop-after", 10, "--out", out, *TINY)
    assert first.returncode == 0, first.stderr
    assert "stopped at step 10" in first.stdout
    second = datagen("train", store, "--steps", 20, "--resume", "--out", out, "--device", "cpu",
                     "--num-workers", "0")
    assert second.returncode == 0, second.stderr
    assert [r["loss"] for r in _losses(out)] == [r["loss"] for r in _losses(run)]
    a = torch.load(run / "ckpt" / "last.pt", weights_only=True)["model"]
    b = torch.load(out / "ckpt" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_eval_writes_the_table_and_json(store, run):
    done = datagen("eval", run, store, "--split", "test", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    result = json.loads((run / "eval_test.json").read_text())
    for method in ("model", "bicubic", "taau"):
        m = result[method]
        assert set(m) == {"psnr", "ssim", "tpsnr", "per_scene"}
        assert 5 < m["psnr"] < 100 and 0 < m["ssim"] <= 1 and np.isfinite(m["tpsnr"])
        assert set(m["per_scene"]) == {"primitives"}
        assert m["per_scene"]["primitives"]["psnr"] == pytest.approx(m["psnr"])
        assert f"primitives    {method}" in done.stdout
    assert result["tonemap"] == "reinhard" and result["frames"] == T and result["step"] == 20


def test_export_matches_the_eager_model(run, tmp_path):
    import onnxruntime

    from datagen.train.evaluate import load_model
    from datagen.train.export import INPUT_NAMES, example_inputs

    done = datagen("export-model", run, "--res", "32x18", "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    model, _, _ = load_model(run)
    inputs = example_inputs((18, 32), 2.0, seed=4)
    with torch.no_grad():
        expect = model.step(*inputs)
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    got = session.run(None, {n: x.numpy() for n, x in zip(INPUT_NAMES, inputs, strict=True)})
    exported = torch.export.load(tmp_path / "model.pt2").module()
    for e, o, p in zip(expect, got, exported(*inputs), strict=True):
        np.testing.assert_allclose(o, e.numpy(), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(p, e, atol=1e-5, rtol=1e-5)


def test_bad_input_is_one_line_and_exit_2(store, run, tmp_path):
    other = tmp_path / "v9.zarr"
    import shutil

    import zarr

    shutil.copytree(store, other)
    zarr.open_group(other, mode="r+").attrs["schema_version"] = 9
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    cases = [
        (("train", tmp_path / "missing.zarr", "--out", tmp_path / "r"), "not a store"),
        (("train", other, "--out", tmp_path / "r"), "schema"),
        (("train", store, "--split", "val", "--out", tmp_path / "r", "--device", "cpu"),
         "no complete sequence"),
        (("train", store, "--crop", "64", "--out", tmp_path / "r", "--device", "cpu"), "larger than"),
        (("eval", tmp_path / "junk.pt", store), "not a datagen checkpoint"),
        (("eval", tmp_path / "foreign.pt", store), "not a datagen checkpoint"),
        (("eval", run, store, "--split", "val"), "no complete sequence"),
        (("eval", tmp_path / "nowhere", store), "no such run folder"),
        (("train", store, "--resume", "--out", tmp_path / "fresh", "--device", "cpu"), "no checkpoint"),
        (("export-model", tmp_path / "junk.pt", "--out", tmp_path / "x"), "not a datagen checkpoint"),
    ]
    for args, message in cases:
        done = datagen(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, done.stderr)


# -- bad data never trains silently ---------------------------------------------------------------

SMOKE = ["--steps", "2", "--batch", "2", "--crop", "32", "--window", "4", "--device", "cpu",
         "--channels", "8,16", "--num-workers", "0"]


def broken_copy(store: Path, tmp_path: Path, damage) -> Path:
    import shutil

    copy = Path(shutil.copytree(store, tmp_path / "broken.zarr"))
    damage(copy)
    return copy


def one_error_line(done: subprocess.CompletedProcess, code: int = 1) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if "error" in line]
    assert len(lines) == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_deleted_motion_shard_is_one_line_not_a_crash(store, tmp_path, workers):
    # NaN motion reaching grid_sample can crash the CPU process (segmentation fault in backward)
    broken = broken_copy(store, tmp_path, lambda s: (s / "train/motion_hr/c/1/0/0/0/0").unlink())
    done = datagen("train", broken, *SMOKE, "--num-workers", workers, "--out", tmp_path / "run")
    line = one_error_line(done)
    assert f"{broken}: train sequence 1 frame " in line and "motion_hr has" in line and "NaN" in line
    assert "--skip-bad-windows" in line and not (tmp_path / "run" / "ckpt").exists()


def test_a_never_written_sequence_marked_complete_is_refused(store, tmp_path):
    import shutil

    from datagen.store.schema import FRAME_NAMES

    def wipe(s: Path) -> None:  # every shard of train sequence 1 gone; complete[1] stays true
        for name in FRAME_NAMES:
            shutil.rmtree(s / "train" / name / "c" / "1")

    broken = broken_copy(store, tmp_path, wipe)
    line = one_error_line(datagen("train", broken, *SMOKE, "--out", tmp_path / "run"))
    assert "train sequence 1 frame " in line and "NaN" in line


def test_a_nan_pixel_in_the_reference_stops_training_and_eval(store, tmp_path):
    import zarr

    def poison(s: Path) -> None:  # one row of frame 2 (inside every 32-px crop) and one test pixel
        for split, seq in (("train", 0), ("test", 0)):
            arr = zarr.open_array(s / split / "color_hr", mode="r+")
            block = arr[seq]
            block[2, 10, :(None if split == "train" else 1), 1] = np.nan
            arr[seq] = block

    broken = broken_copy(store, tmp_path, poison)
    line = one_error_line(datagen("train", broken, *SMOKE, "--out", tmp_path / "run"))
    assert "train sequence 0 frame 2: color_hr has" in line
    line = one_error_line(datagen("eval", str(_ckpt_run(store, tmp_path)), broken, "--device", "cpu"))
    assert "test sequence 0 frame 2: color_hr has 1 NaN value(s)" in line


def _ckpt_run(store: Path, tmp_path: Path) -> Path:
    out = tmp_path / "good"
    assert datagen("train", store, *SMOKE, "--out", out).returncode == 0
    return out


def test_a_truncated_shard_is_one_line(store, tmp_path):
    def cut(s: Path) -> None:
        shard = s / "train/color_hr/c/0/0/0/0/0"
        os.truncate(shard, shard.stat().st_size // 2)

    broken = broken_copy(store, tmp_path, cut)
    line = one_error_line(datagen("train", broken, *SMOKE, "--out", tmp_path / "run"))
    assert "train sequence 0 frames" in line and "color_hr cannot be read" in line


def test_skip_bad_windows_trains_on_the_rest_and_says_how_many(store, tmp_path):
    broken = broken_copy(store, tmp_path, lambda s: (s / "train/motion_hr/c/1/0/0/0/0").unlink())
    done = datagen("train", broken, *SMOKE, "--steps", "4", "--skip-bad-windows", "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    skipped = _losses(tmp_path / "run")[-1]["bad_windows_skipped"]
    assert skipped > 0 and f"skipped {skipped} bad window(s)" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "skipped a bad window" in line]
    assert len(warnings) == skipped and all("train sequence 1 frame" in w for w in warnings)
    assert all(np.isfinite(r["loss"]) for r in _losses(tmp_path / "run"))


def test_a_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(store, tmp_path):
    out = tmp_path / "run"
    done = datagen("train", store, *SMOKE, "--steps", "5", "--lr", "1e30", "--warmup", "0",
                   "--ckpt-every", "1", "--out", out)
    line = one_error_line(done)
    step = int(line.split("step ")[1].split(":")[0])
    assert step >= 2 and "the loss is" in line and f"(step {step - 1}), is kept" in line
    ckpt = torch.load(out / "ckpt" / "last.pt", weights_only=True)
    assert ckpt["step"] == step - 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert [r["step"] for r in _losses(out)] == list(range(1, step))
