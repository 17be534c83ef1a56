"""`datagen info`, `validate`, `preview` and `export` through the real command line.

One good store of real rendered frames is built once per session (primitives,
HR 48x28 at scale 2, 8 spp, 6 frames, train 2 + val 1 sequences, shards of 4
frames so that reads cross a shard boundary). The camera dollies at 20 m/s so
that HR motion is about 1 px per frame, enough for the motion checks to judge
every frame. Each fault test breaks a copy of it in one way.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image
from store_helpers import set_schema_version

from datagen import conventions as cv
from datagen.exr import HR_LAYOUT, LR_LAYOUT, read_exr
from datagen.images import tonemap
from datagen.reproject import bilinear_sample
from datagen.store import Layout, create_store, open_store, write_sequence

DATAGEN = [sys.executable, "-m", "datagen"]
HR, SCALE, SPP, T = (48, 28), 2.0, 8, 6
SEQUENCES = {"train": 2, "val": 1}
PARAMS = {"camera_speed": 20.0}
LAYOUT = Layout(tile_hr=16, frames_per_shard=4, level=1)
VALIDATE_FAILED = 3


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LP_NUM_THREADS": "1"}
    return subprocess.run([*DATAGEN, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


@pytest.fixture(scope="session")
def good_store(gl_session_ctx, tmp_path_factory) -> Path:
    from datagen.render import RenderConfig, Renderer
    from datagen.scenes import generate

    config = RenderConfig(*HR, SCALE, SPP, shadow_map_size=256)
    cam = generate("primitives", PARAMS, 0).camera
    path = create_store(tmp_path_factory.mktemp("good") / "store", {"scene": "primitives", "params": PARAMS},
                        SEQUENCES, T, HR, SCALE, cv.conventions_block(SCALE, SPP, cam.near, cam.far),
                        layout=LAYOUT)
    ctx = gl_session_ctx
    ctx.__enter__()
    renderer = Renderer(config, ctx=ctx)
    try:
        for split, count in SEQUENCES.items():
            for index in range(count):
                seed = 10 * index + len(split)
                scene = generate("primitives", PARAMS, seed)
                write_sequence(path, split, index, (renderer.render(scene, t) for t in range(T)),
                               {"scene": "primitives", "seed": seed, "camera": {"rig": "dolly"}})
    finally:
        renderer.close()
        error = ctx.error
        ctx.__exit__(None, None, None)
    assert error == "GL_NO_ERROR"
    return path


@pytest.fixture
def store(good_store, tmp_path) -> Path:
    """A copy of the good store, to break."""
    return Path(shutil.copytree(good_store, tmp_path / "store"))


def edit(path: Path, split: str, name: str):
    return zarr.open_array(path / split / name, mode="r+")


def failed(proc: subprocess.CompletedProcess) -> dict[str, list[str]]:
    """The failure lines of `datagen validate`, by check."""
    out: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        check = line.split(":", 1)[0]
        if re.fullmatch(r"[a-z_]+", check):
            out.setdefault(check, []).append(line)
    return out


def assert_one_line_error(proc: subprocess.CompletedProcess, message: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# -- validate -------------------------------------------------------------------------------------


def test_validate_passes_on_the_good_store(good_store):
    proc = run("validate", good_store)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith(f"OK: {good_store} passes every check")
    # every frame with a previous one judged by the warp and camera checks, every frame by LR/HR
    assert "3 complete sequence(s) of 3, 18 frames" in proc.stdout
    assert "motion_warp 15, motion_camera 15, motion_lr_hr 18" in proc.stdout


def test_validate_catches_nan_in_colour(store):
    edit(store, "train", "color_hr")[1, 2, 5, 7, 1] = np.nan
    proc = run("validate", store)
    assert proc.returncode == VALIDATE_FAILED
    assert failed(proc) == {"nan": ["nan: train sequence 1 frame 2: color_hr has 1 NaN value"]}
    assert proc.stdout.splitlines()[-1].startswith("FAILED: 1 failure(s) of nan")


def test_validate_allows_only_plus_inf_and_only_in_depth(store):
    edit(store, "train", "depth_lr")[0, 4, 3, 2] = -np.inf
    edit(store, "val", "exposure")[0, 1] = np.inf
    proc = run("validate", store)
    assert proc.returncode == VALIDATE_FAILED
    assert failed(proc)["inf"] == [
        "inf: train sequence 0 frame 4: depth_lr has 1 -inf; only +inf (sky) is allowed in depth",
        "inf: val sequence 0 frame 1: exposure has 1 +inf; inf is only allowed in depth"]


def test_validate_catches_a_wrong_jitter(store):
    jitter = edit(store, "train", "jitter_px")
    jitter[0, 3] = cv.jitter_px(4, SCALE)
    proc = run("validate", store)
    assert proc.returncode == VALIDATE_FAILED
    lines = failed(proc)["jitter"]
    assert len(lines) == 1 and lines[0].startswith("jitter: train sequence 0 frame 3: jitter_px (0.125000, ")
    assert "expected Halton (-0.375000, -0.055556) at scale 2" in lines[0]


def flip_or_scale(store: Path, split: str, index: int, factor: float,
                  names=("motion_lr", "motion_hr")) -> None:
    for name in names:
        arr = edit(store, split, name)
        arr[index] = arr[index] * factor


def test_validate_catches_motion_with_the_sign_flipped(store):
    flip_or_scale(store, "val", 0, -1.0)
    proc = run("validate", store)
    assert proc.returncode == VALIDATE_FAILED
    found = failed(proc)
    warp = found["motion_warp"]
    assert [line.split(":")[1] for line in warp] == [f" val sequence 0 frame {t}" for t in range(1, T)] + [
        " val sequence 0"]  # every frame, then the sequence as a whole
    assert "motion_hr x -1 explains the frame from frame t-1 better than motion_hr itself" in warp[0]
    assert "of the error of no warp where the image changed, over 5 frames (need <= 0.8)" in warp[-1]
    assert len(found["motion_camera"]) == T - 1
    assert all("val sequence 0" in line for lines in found.values() for line in lines)


def test_frames_after_a_camera_cut_are_not_judged_against_the_previous_frame(store):
    flip_or_scale(store, "val", 0, -1.0)
    edit(store, "val", "camera_cut")[0, 3] = True
    proc = run("validate", store)
    frames = {line.split(":")[1] for line in proc.stdout.splitlines() if line.startswith("motion_camera")}
    assert frames == {f" val sequence 0 frame {t}" for t in (1, 2, 4, 5)}
    assert "motion_warp 14, motion_camera 14" in proc.stdout


def test_validate_catches_motion_scaled_2x(store):
    flip_or_scale(store, "train", 1, 2.0)
    proc = run("validate", store)
    assert proc.returncode == VALIDATE_FAILED
    found = failed(proc)
    frames = [line.split(":")[1] for line in found["motion_warp"] if " frame " in line.split(":")[1]]
    assert frames == [f" train sequence 1 frame {t}" for t in range(1, T)]  # (the sequence may fail too)
    assert "motion_hr x 0.5 explains the frame" in found["motion_warp"][0]
    assert [line.split(":")[1] for line in found["motion_camera"]] == [
        f" train sequence 1 frame {t}" for t in range(1, T)]
    assert set(found) == {"motion_warp", "motion_camera"}  # LR and HR still agree with each other


def test_validate_catches_lr_motion_that_disagrees_with_hr(store):
    flip_or_scale(store, "train", 0, 2.0, names=("motion_lr",))
    proc = run("validate", store)
    assert proc.returncode == VALIDATE_FAILED
    assert [line.split(":")[1] for line in failed(proc)["motion_lr_hr"]] == [
        f" train sequence 0 frame {t}" for t in range(T)]
    assert set(failed(proc)) == {"motion_lr_hr"}


def test_validate_catches_a_missing_complete(store):
    edit(store, "train", "complete")[1] = False
    proc = run("validate", store)
    assert proc.returncode == VALIDATE_FAILED
    assert failed(proc) == {"complete": [
        "complete: train sequence 1: not complete (never written, or its write was interrupted); "
        "run the build again to write it"]}


def test_validate_catches_a_truncated_shard(store):
    (shard,) = [f for f in (store / "train" / "color_hr" / "c" / "1" / "1").rglob("*") if f.is_file()]
    os.truncate(shard, shard.stat().st_size // 2)  # sequence 1, frames 4-5 (4 frames per shard)
    proc = run("validate", store)
    assert proc.returncode == VALIDATE_FAILED
    (line,) = failed(proc)["readable"]
    assert line.startswith("readable: train sequence 1 frames 4-5: color_hr cannot be read: ")


def zero_frame(store: Path, split: str, index: int, t: int, names) -> None:
    for name in names:
        arr = edit(store, split, name)
        block = arr[index]
        block[t] = 0
        arr[index] = block


def test_validate_catches_a_frame_of_zeros(store):
    from datagen.store.schema import FRAME_NAMES

    zero_frame(store, "train", 0, 2, ["color_hr"])  # colour only
    zero_frame(store, "train", 1, 3, FRAME_NAMES)  # every array of the frame
    proc = run("validate", store)
    assert proc.returncode == VALIDATE_FAILED
    found = failed(proc)
    assert [line.split(":")[1] for line in found["blank"]] == [
        " train sequence 0 frame 2", " train sequence 1 frame 3", " train sequence 1 frame 3"]
    assert "color_hr is zero everywhere" in found["blank"][0] and "color_lr" in found["blank"][1]
    assert {line.split(":")[1] for line in found["range"]} == {" train sequence 1 frame 3"}
    assert any("depth_hr has 1344 value(s) <= 0" in line for line in found["range"])
    assert any("normal_lr" in line for line in found["range"])
    assert "train sequence 1 frame 3: object_id_lr disagrees with depth_lr" in found["object_id"][0]


def test_validate_catches_a_deleted_object_id_shard(store):
    (shard,) = [f for f in (store / "train" / "object_id_lr" / "c" / "1" / "1").rglob("*") if f.is_file()]
    shard.unlink()  # sequence 1, frames 4-5: the fill value 0 reads as sky everywhere
    proc = run("validate", store)
    assert proc.returncode == VALIDATE_FAILED
    lines = failed(proc)["object_id"]
    assert [line.split(":")[1] for line in lines] == [f" train sequence 1 frame {t}" for t in (4, 5)]
    assert "pixel(s) of id 0 (sky) where depth_lr is finite" in lines[0]
    assert set(failed(proc)) == {"object_id"}


@pytest.mark.parametrize("command, damage", [
    ("validate", "truncated"), ("validate", "binary"), ("validate", "array"), ("validate", "no store table"),
    ("info", "truncated"), ("train", "binary")])
def test_a_corrupt_root_zarr_json_is_not_a_datagen_store(store, tmp_path, damage, command):
    text = (store / "zarr.json").read_text()
    (store / "zarr.json").write_bytes({
        "truncated": text[:40].encode(), "binary": b"garbage\xff\x00",
        "array": b'{"zarr_format": 3, "node_type": "array"}',
        "no store table": b'{"zarr_format": 3, "node_type": "group", "attributes": {"schema_version": 1}}',
    }[damage])
    proc = run(command, store, *(["--out", tmp_path / "run"] if command == "train" else []))
    assert_one_line_error(proc, "not a datagen store")


def test_validate_refuses_another_schema_version(store):
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["schema_version"] = 99
    (store / "zarr.json").write_text(json.dumps(meta))
    proc = run("validate", store)
    assert_one_line_error(proc, "store schema version 99 (written by datagen 0.1.0) is not supported")
    assert "Rebuild the store with this version" in proc.stderr
    assert proc.stdout == ""


def test_validate_one_split_and_sequence(store):
    edit(store, "train", "complete")[1] = False
    assert run("validate", store, "--split", "val").returncode == 0
    proc = run("validate", store, "--split", "train", "--sequence", "0")
    assert proc.returncode == 0 and "1 complete sequence(s) of 1, 6 frames" in proc.stdout


# -- info -----------------------------------------------------------------------------------------


def test_info_prints_the_summary(good_store):
    proc = run("info", good_store)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "6 per sequence; HR 48x28, LR 24x14 (scale 2; ratio 2 x 2), 8 spp" in out
    assert re.search(r"^train\s+2\s+2\s+12\s+primitives \(2\)$", out, re.M)
    assert re.search(r"^val\s+1\s+1\s+6\s+primitives \(1\)$", out, re.M)
    assert re.search(r"^total\s+3\s+3\s+18\s+primitives \(3\)$", out, re.M)
    assert re.search(r"^  color_hr\s+\(6, 28, 48, 3\)\s+float16\s+sequence, frame, y_hr, x_hr, rgb$", out,
                     re.M)
    assert re.search(r"compression ratio \d+\.\d\dx$", out, re.M)


def test_info_json_is_the_store_summary(good_store):
    proc = run("info", good_store, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(json.dumps(open_store(good_store).summary()))


# -- preview --------------------------------------------------------------------------------------


def test_preview_png_is_a_sheet_of_frames(good_store, tmp_path):
    out = tmp_path / "sub" / "sheet.png"
    proc = run("preview", good_store, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "train sequence 0" in proc.stdout
    sheet = np.asarray(Image.open(out).convert("RGB"))
    # rows: frames 0, 2, 3, 5; columns LR, HR, motion, depth; 2 px gaps
    assert sheet.shape == (4 * (HR[1] + 2) + 2, 4 * (HR[0] + 2) + 2, 3)
    data = open_store(good_store).read_window("train", 0, arrays=["color_hr", "exposure"])
    for row, t in enumerate((0, 2, 3, 5)):
        y = 2 + row * (HR[1] + 2) + 16  # below the label
        tile = sheet[y:2 + row * (HR[1] + 2) + HR[1], HR[0] + 4:2 * HR[0] + 4]
        np.testing.assert_array_equal(tile, tonemap(data["color_hr"][t, 16:], data["exposure"][t]))


def test_preview_gif_has_every_frame_side_by_side(good_store, tmp_path):
    import imageio.v3 as iio

    out = tmp_path / "v.gif"
    proc = run("preview", good_store, "--split", "train", "--sequence", "1", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert iio.imread(out, index=None).shape == (T, HR[1] + 4, 4 * (HR[0] + 2) + 2, 3)


def test_preview_mp4(good_store, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as iio2

    out = tmp_path / "v.mp4"
    proc = run("preview", good_store, "--split", "val", "--out", out)
    assert proc.returncode == 0, proc.stderr
    frames = iio2.mimread(out, format="FFMPEG")
    assert len(frames) == T and frames[0].shape == (32, 208, 3)  # (32, 202) padded to multiples of 16


# -- export ---------------------------------------------------------------------------------------


def test_export_writes_exrs_that_read_back_as_the_store(good_store, tmp_path):
    out = tmp_path / "exported"
    proc = run("export", good_store, "--format", "exr", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert f"exported 3 sequence(s), 18 frames, to {out}" in proc.stdout
    store = open_store(good_store)
    for split, count in SEQUENCES.items():
        for index in range(count):
            folder = out / split / f"{index:04d}"
            assert sorted(p.name for p in (folder / "lr").iterdir()) == [f"{t:04d}.exr" for t in range(T)]
            assert len(list((folder / "preview").iterdir())) == T
    folder, data = out / "train" / "0001", store.read_window("train", 1)
    for t in range(T):
        for buffer, layout in (("lr", LR_LAYOUT), ("hr", HR_LAYOUT)):
            channels = read_exr(folder / buffer / f"{t:04d}.exr")
            assert set(channels) == {row[0] for row in layout}
            for name, field, comp, dtype in layout:
                want = data[field][t] if comp is None else data[field][t][..., comp]
                assert channels[name].dtype == dtype, name
                np.testing.assert_array_equal(channels[name], want, err_msg=f"{buffer} {t} {name}")
    doc = json.loads((folder / "sequence.json").read_text())
    assert doc["conventions"] == store.conventions and doc["config"] == store.config
    assert doc["sequence"] == {"split": "train", "index": 1, "scene": "primitives", "seed": 15,
                               "meta": {"scene": "primitives", "seed": 15, "camera": {"rig": "dolly"}}}
    assert [f["jitter_px"] for f in doc["frames"]] == data["jitter_px"].astype(np.float64).tolist()
    assert [f["view"] for f in doc["frames"]] == data["view"].astype(np.float64).tolist()
    assert doc["lr_size"] == [24, 14] and doc["hr_size"] == [48, 28] and doc["frame_count"] == T


def test_exported_exrs_open_with_openimageio(good_store, tmp_path):
    oiio = pytest.importorskip("OpenImageIO")
    proc = run("export", good_store, "--format", "exr", "--split", "val", "--sequence", "0", "--no-preview",
               "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "val" / "0000" / "preview").exists() and not (tmp_path / "train").exists()
    data = open_store(good_store).read_window("val", 0, 5, 1)
    for buffer, layout in (("lr", LR_LAYOUT), ("hr", HR_LAYOUT)):
        image = oiio.ImageInput.open(str(tmp_path / "val" / "0000" / buffer / "0005.exr"))
        assert image is not None, oiio.geterror()
        spec = image.spec()
        pixels = image.read_image("float")
        names = list(spec.channelnames)
        assert set(names) == {row[0] for row in layout}
        w, h = (24, 14) if buffer == "lr" else HR
        assert (spec.width, spec.height) == (w, h)
        for name, field, comp, _ in layout:
            want = data[field][0] if comp is None else data[field][0][..., comp]
            got = pixels[..., names.index(name)]
            if name == "objectId":  # "float" reads a uint channel normalised; read it as it is
                k = names.index(name)
                got = image.read_image(0, 0, k, k + 1, oiio.UINT32)[..., 0]
            np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=name)
        image.close()


def unproject(proj_view: np.ndarray, pixel: np.ndarray, depth: np.ndarray, size) -> np.ndarray:
    """World points (n, 3) seen at pixel positions (n, 2) at linear depths (n,) through
    an OpenGL ``proj_view`` (what the renderer drew with at that pixel)."""
    ndc = np.stack([pixel[:, 0] / size[0] * 2 - 1, 1 - pixel[:, 1] / size[1] * 2], -1)
    # clip = M @ world with clip w = depth; solve for world from clip x, y, w and world w = 1
    m = proj_view[[0, 1, 3]]
    rhs = np.stack([ndc[:, 0] * depth, ndc[:, 1] * depth, depth], -1) - m[:, 3]
    return np.linalg.solve(m[:, :3], rhs.T).T


def test_exported_exrs_carry_world_to_camera_and_ndc_that_openimageio_reads(good_store, tmp_path):
    oiio = pytest.importorskip("OpenImageIO")
    proc = run("export", good_store, "--format", "exr", "--split", "train", "--sequence", "1", "--no-preview",
               "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    store = open_store(good_store)
    data = store.read_window("train", 1, 4, 1)
    view, proj = data["view"][0].astype(np.float64), data["proj"][0].astype(np.float64)
    jitter = data["jitter_px"][0].astype(np.float64)
    for buffer, size in (("lr", store.lr_size), ("hr", store.hr_size)):
        image = oiio.ImageInput.open(str(tmp_path / "train" / "0001" / buffer / "0004.exr"))
        spec = image.spec()
        to_camera = np.array(spec.getattribute("worldToCamera"), np.float64).reshape(4, 4)
        to_ndc = np.array(spec.getattribute("worldToNDC"), np.float64).reshape(4, 4)
        image.close()
        depth = data[f"depth_{buffer}"][0].astype(np.float64)
        ys, xs = np.nonzero(np.isfinite(depth))
        centres = np.stack([xs + 0.5, ys + 0.5], -1)
        # the LR sample of a pixel is the unjittered camera's view at centre + jitter
        seen_at = centres + (jitter if buffer == "lr" else 0.0)
        world = np.c_[unproject(proj @ view, seen_at, depth[ys, xs], size), np.ones(len(xs))]
        cam = world @ to_camera  # OpenEXR's row vectors
        np.testing.assert_allclose(cam[:, 2], depth[ys, xs], rtol=1e-4)  # +z forward: z is the depth
        np.testing.assert_allclose(cam[:, :3], (world @ view.T)[:, :3] * [1, 1, -1], rtol=1e-4, atol=1e-4)
        h = world @ to_ndc
        np.testing.assert_allclose(h[:, :2] / h[:, 3:] * np.array(size), centres, atol=2e-3)


def test_export_skips_sequences_that_are_not_complete(store, tmp_path):
    edit(store, "train", "complete")[0] = False
    proc = run("export", store, "--format", "exr", "--no-preview", "--out", tmp_path / "e")
    assert proc.returncode == 0, proc.stderr
    assert "exported 2 sequence(s), 12 frames" in proc.stdout and "skipped 1 sequence(s)" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "e" / "train").iterdir()) == ["0001"]
    proc = run("export", store, "--format", "exr", "--split", "train", "--sequence", "0",
               "--out", tmp_path / "f")
    assert_one_line_error(proc, "train sequence 0 is not complete")


# -- export --format nss ---------------------------------------------------------------------------


def exr_channels_as_nss_reads_them(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """{channel: (pixel type name, 2-D array)} through the legacy ``OpenEXR.InputFile`` API
    that Arm's NSS converter reads with."""
    import OpenEXR

    f = OpenEXR.InputFile(str(path))
    header = f.header()
    window = header["dataWindow"]
    w, h = window.max.x - window.min.x + 1, window.max.y - window.min.y + 1
    dtypes = {OpenEXR.HALF: np.float16, OpenEXR.FLOAT: np.float32, OpenEXR.UINT: np.uint32}
    out = {}
    for name, channel in header["channels"].items():
        ptype = channel.type.v if hasattr(channel.type, "v") else int(channel.type)
        dtype = dtypes[ptype]
        out[name] = (np.dtype(dtype).name, np.frombuffer(f.channel(name), dtype=dtype).reshape(h, w))
    return out


def test_export_nss_writes_every_field_of_the_spec(good_store, tmp_path):
    out = tmp_path / "nss"
    proc = run("export", good_store, "--format", "nss", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert f"exported 3 sequence(s), 18 frames, to {out}" in proc.stdout
    store = open_store(good_store)
    lr, hr = store.lr_size, store.hr_size
    for split, count in SEQUENCES.items():
        root = out / split
        names = [f"{i:04d}" for i in range(count)]
        assert sorted(p.name for p in root.glob("*.json")) == [f"{n}.json" for n in names]
        assert {p.parent.name for p in root.rglob("*.exr")} == set(names)  # how the converter finds sequences
        for kind in ("ground_truth", "motion_gt", "x2/color", "x2/depth", "x2/motion"):
            for name in names:
                files = sorted(p.name for p in (root / kind / name).iterdir())
                assert files == [f"{t:04d}.exr" for t in range(T)]
    assert not (out / "test").exists()

    root, data = out / "train", store.read_window("train", 1)
    doc = json.loads((root / "0001.json").read_text())
    assert doc["Version"] == "1.0.1" and doc["ReverseZ"] is False and doc["GTColorSpace"] == "Linear"
    assert doc["EmulatedFramerate"] == 30 and doc["TargetResolution"] == {"X": hr[0], "Y": hr[1]}
    assert doc["Samples"] == {"Sequence": "Halton", "Count": 32, "Quantized": False}
    assert doc["UpscalingRatiosIndices"] == {"x2_index": 0} and doc["MotionVectorsDilated"] is False
    assert doc["datagen"]["seed"] == 15 and doc["datagen"]["conventions"] == store.conventions
    cam = store.conventions
    fov_y = math.radians(50.0)
    fov_x = 2 * math.atan(math.tan(fov_y / 2) * hr[0] / hr[1])
    assert len(doc["Frames"]) == T
    for t, rec in enumerate(doc["Frames"]):
        assert rec["Frame"] == t and rec["CameraCut"] is (t == 0)
        assert rec["FovX"] == pytest.approx(fov_x, rel=1e-5) and rec["FovY"] == pytest.approx(fov_y, rel=1e-5)
        assert rec["CameraNearPlane"] == pytest.approx(cam["near"], rel=1e-5)
        assert rec["CameraFarPlane"] == pytest.approx(cam["far"], rel=1e-4)
        jitter = data["jitter_px"][t].astype(np.float64)
        assert [rec["Jitter"]["X"], rec["Jitter"]["Y"]] == jitter.tolist()
        assert jitter.tolist() == pytest.approx(cv.jitter_px(t, SCALE))
        (norm,) = rec["NormalizedPerRatioJitter"]
        assert [norm["X"], norm["Y"]] == pytest.approx((jitter / lr).tolist(), rel=1e-12)
        assert rec["Exposure"] == pytest.approx(float(data["exposure"][t]))
        # ViewProjection reshaped row-major (as the converter does) projects like proj @ view
        vp = np.array(rec["ViewProjection"]).reshape(4, 4)
        point = np.array([0.3, 0.5, -2.0, 1.0])
        clip = vp @ point
        want = data["proj"][t].astype(np.float64) @ data["view"][t].astype(np.float64) @ point
        np.testing.assert_allclose(clip, want, rtol=1e-6)

        images = {kind: exr_channels_as_nss_reads_them(root / kind / "0001" / f"{t:04d}.exr")
                  for kind in ("ground_truth", "motion_gt", "x2/color", "x2/depth", "x2/motion")}
        for kind, field in (("ground_truth", "color_hr"), ("x2/color", "color_lr")):
            assert {n: d for n, (d, _) in images[kind].items()} == dict.fromkeys("ABGR", "float16")
            for c, name in enumerate("RGB"):
                np.testing.assert_array_equal(images[kind][name][1], data[field][t][..., c])
            assert (images[kind]["A"][1] == 1).all()
        for kind, field, size in (("motion_gt", "motion_hr", hr), ("x2/motion", "motion_lr", lr)):
            assert {n: d for n, (d, _) in images[kind].items()} == {"R": "float16", "G": "float16"}
            uv = np.stack([images[kind]["R"][1], images[kind]["G"][1]], -1).astype(np.float64)
            want = -data[field][t].astype(np.float64) / np.array(size)  # UV, current - previous
            np.testing.assert_allclose(uv, want, rtol=2e-3, atol=1e-7)
        assert {n: d for n, (d, _) in images["x2/depth"].items()} == {"R": "float32"}
        depth, linear = images["x2/depth"]["R"][1], data["depth_lr"][t]
        sky = np.isinf(linear)
        assert sky.any() and (~sky).any()
        assert (depth[sky] == 1.0).all() and (depth[~sky] > 0).all() and (depth[~sky] < 1).all()
        back = cv.linear_depth(depth[~sky], cam["near"], cam["far"])
        np.testing.assert_allclose(back, linear[~sky], rtol=1e-3)


def test_export_nss_motion_passes_the_flow_warp_check(good_store, tmp_path):
    """Warp ground truth t-1 into t the NSS way (previous uv = uv - motion): closer to
    frame t than no warp, and than the warp with the motion's sign flipped."""
    out = tmp_path / "nss"
    assert run("export", good_store, "--format", "nss", "--split", "val", "--out", out).returncode == 0
    root = out / "val"
    gt = [read_exr(root / "ground_truth" / "0000" / f"{t:04d}.exr") for t in range(T)]
    errors = {"warp": [], "none": [], "flipped": []}
    for t in range(1, T):
        motion = read_exr(root / "motion_gt" / "0000" / f"{t:04d}.exr")
        uv = np.stack([motion["R"], motion["G"]], -1).astype(np.float64)
        prev = np.stack([gt[t - 1][c] for c in "RGB"], -1).astype(np.float64)
        cur = np.stack([gt[t][c] for c in "RGB"], -1).astype(np.float64)
        centres = cv.pixel_centres(HR)
        for key, sign in (("warp", 1.0), ("flipped", -1.0)):
            errors[key].append(np.abs(bilinear_sample(prev, centres - sign * uv * np.array(HR)) - cur).mean())
        errors["none"].append(np.abs(prev - cur).mean())
    warp, none, flipped = (float(np.mean(errors[k])) for k in ("warp", "none", "flipped"))
    assert warp < 0.6 * none and warp < 0.6 * flipped, (warp, none, flipped)


def test_export_nss_marks_the_stored_camera_cuts(store, tmp_path):
    edit(store, "val", "camera_cut")[0, 3] = True
    proc = run("export", store, "--format", "nss", "--split", "val", "--out", tmp_path / "e")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "e" / "val" / "0000.json").read_text())
    assert [f["CameraCut"] for f in doc["Frames"]] == [True, False, False, True, False, False]


@pytest.mark.parametrize("fmt", ["exr", "nss"])
def test_export_with_no_complete_sequence_fails(store, tmp_path, fmt):
    for split, count in SEQUENCES.items():
        edit(store, split, "complete")[:count] = False
    proc = run("export", store, "--format", fmt, "--out", tmp_path / "e")
    assert_one_line_error(proc, "any split has no complete sequence to export")
    proc = run("export", store, "--format", fmt, "--split", "test", "--out", tmp_path / "e")
    assert_one_line_error(proc, "split 'test' has no complete sequence to export")
    assert not (tmp_path / "e").exists()


def test_nss_ratio_names_follow_the_spec():
    from datagen.store.nss import ratio_name

    assert [ratio_name(s) for s in (2.0, 1.5, 1.7, 1.3, 3.0, 4.0)] == ["2", "1_5", "1_7", "1_3", "3", "4"]


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["info"], ["validate"], ["preview", "--out", "x.png"], ["export", "--format", "exr", "--out", "x"]])
@pytest.mark.parametrize("where, message", [
    ("missing", "not a store (no zarr.json)"),
    ("plain", "not a datagen store (its root attrs have no schema_version)"),
])
def test_a_path_that_is_not_a_store(tmp_path, command, where, message):
    if where == "plain":
        zarr.open_group(tmp_path / where, mode="w")
    proc = run(command[0], tmp_path / where, *command[1:], cwd=tmp_path)
    assert_one_line_error(proc, message)
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", [["info"], ["preview", "--out", "x.png"]])
def test_another_schema_version_is_refused(store, tmp_path, command):
    set_schema_version(store, 0)
    proc = run(command[0], store, *command[1:], cwd=tmp_path)
    assert_one_line_error(proc, "store schema version 0")
    assert "Rebuild the store with this version (`datagen build --overwrite`)" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["validate", "--split", "nope"], "no split 'nope'; valid: train, val, test"),
    (["export", "--format", "exr", "--out", "x", "--split", "train", "--sequence", "2"],
     "split 'train' has sequences 0..1; got --sequence 2"),
    (["preview", "--out", "x.png", "--split", "test"], "split 'test' has no complete sequence to show"),
    (["preview", "--out", "x.png", "--split", "test", "--sequence", "0"],
     "split 'test' has no sequences; got --sequence 0"),
    (["export", "--format", "tiff", "--out", "x"], "unknown --format 'tiff'; valid: exr, nss"),
    (["preview", "--out", "x.jpg"], "unknown preview format '.jpg'; valid: .png, .gif, .mp4"),
])
def test_bad_selection_or_format_is_one_line_and_exit_2(good_store, tmp_path, args, message):
    proc = run(args[0], good_store, *args[1:], cwd=tmp_path)
    assert_one_line_error(proc, message)
    assert not (tmp_path / "x").exists()


def test_export_into_a_path_under_a_file(good_store, tmp_path):
    (tmp_path / "file").write_text("in the way")
    proc = run("export", good_store, "--format", "exr", "--out", tmp_path / "file" / "out")
    assert_one_line_error(proc, f"{tmp_path / 'file'} is a file, so no folder can be made under it")
    assert "choose another --out" in proc.stderr


def test_export_to_a_read_only_disk(good_store, tmp_path, mounted):
    ro = mounted(tmp_path / "ro", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs")
    proc = run("export", good_store, "--format", "exr", "--out", ro / "out")
    assert_one_line_error(proc, f"{ro} is not writable (a read-only file system or no permission)")


def test_export_to_a_full_disk_is_a_runtime_failure(good_store, tmp_path, mounted):
    disk = mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=64k", "tmpfs")
    proc = run("export", good_store, "--format", "exr", "--out", disk / "out")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # exit 1: not the input's fault
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot write the sequence: No space left on device; free disk space" in proc.stderr


@pytest.mark.parametrize("command", ["info", "validate", "preview", "export"])
def test_help_has_examples(command):
    proc = run(command, "--help")
    assert proc.returncode == 0 and "examples:" in proc.stdout
    if command == "validate":
        assert "exit status: 0 every check passed; 3 a check failed" in proc.stdout
        assert "sum e(1) <= 0.8 sum e(0) where the image changed" in proc.stdout

