"""Measuring store layouts: how the chunking and codec of ``schema.DEFAULT_LAYOUT``
were chosen, and the store figures of ``datagen bench``.

For each candidate layout one small store is written from the same frames, then
read back three ways:

- write MB/s: uncompressed bytes of a sequence / time of ``write_sequence``;
- window MB/s: uncompressed bytes of every per-frame array over K=8 frames at a
  random start / time of ``Store.read_window``;
- crops/s: random aligned crops (``size_hr`` HR pixels square, the matching LR
  crop, every per-frame array) over K=8 frames, through ``Store.read_crop``.

Files are read warm from the page cache: these are decode costs, not disk speed.

Run ``python -m datagen.store.measure [--res 960x540]`` for the table in
docs/store.md on synthetic frames, or ``python -m datagen.bench --render ...``
on rendered ones (the store package never imports the renderer).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numcodecs
import numpy as np

from datagen import conventions as cv
from datagen.frame import Frame
from datagen.store.reader import ENGINES, open_store
from datagen.store.schema import Layout
from datagen.store.writer import create_store, write_sequence

LAYOUTS: dict[str, Layout] = {
    f"{chunk}/{codec}{level}": Layout(tile_hr=tile, codec=codec, level=level)
    for chunk, tile in (("frame", None), ("tile512", 512), ("tile256", 256), ("tile128", 128))
    for codec, level in (("zstd", 3), ("blosc-zstd", 3), ("blosc-zstd", 2), ("blosc-zstd", 1))
    if level == 3 or tile in (None, 256)
}
"""Candidates: whole-frame chunks vs ~512, ~256 and ~128 px tiles (``schema.tile_side``),
zstd vs blosc-zstd with byte shuffle, at compression level 3 (and 2 and 1)."""
WINDOW = 8
MB = 1e6


# -- frames -----------------------------------------------------------------------------------


def _smooth(rng: np.random.Generator, shape: tuple[int, int], cell: int, channels: int = 1) -> np.ndarray:
    """Bilinear upsampling of a coarse random field: (h, w, channels) in [0, 1)."""
    h, w = shape
    coarse = rng.random((h // cell + 2, w // cell + 2, channels))
    ys, xs = np.arange(h) / cell, np.arange(w) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def synthetic_frame(rng: np.random.Generator, t: int, hr_size: tuple[int, int], scale: float) -> Frame:
    """A frame of smooth fields with edges and a little sampling noise: roughly
    as compressible as a rendered one, with no GL needed."""
    (W, H), (w, h) = hr_size, cv.lr_size(hr_size, scale)

    def pixels(size, channels, lo, hi, noise, dtype):
        field = lo + (hi - lo) * _smooth(rng, size, 32, channels)
        field += noise * rng.standard_normal(field.shape)
        return field.astype(dtype).squeeze(-1) if channels == 1 else field.astype(dtype)

    ids = (_smooth(rng, (h, w), 48)[..., 0] * 8).astype(np.uint32)
    return Frame(
        color_lr=pixels((h, w), 3, 0.0, 4.0, 0.05, np.float16),
        depth_lr=pixels((h, w), 1, 2.0, 60.0, 0.0, np.float32),
        motion_lr=pixels((h, w), 2, -4.0, 4.0, 0.0, np.float32),
        normal_lr=pixels((h, w), 3, -1.0, 1.0, 0.0, np.float16),
        albedo_lr=pixels((h, w), 3, 0.0, 1.0, 0.0, np.float16),
        material_lr=np.repeat(((ids % 3) / 2.0).astype(np.float16)[..., None], 2, -1),
        object_id_lr=ids,
        color_hr=pixels((H, W), 3, 0.0, 4.0, 0.01, np.float16),
        depth_hr=pixels((H, W), 1, 2.0, 60.0, 0.0, np.float32),
        motion_hr=pixels((H, W), 2, -8.0, 8.0, 0.0, np.float32),
        jitter_px=np.asarray(cv.jitter_px(t, W / w), np.float32),
        view=np.eye(4, dtype=np.float32), proj=np.eye(4, dtype=np.float32),
        exposure=1.0, camera_cut=t == 0, time_s=t / 30.0,
    )


def synthetic_frames(hr_size: tuple[int, int], scale: float, count: int, seed: int = 0) -> Iterator[Frame]:
    rng = np.random.default_rng(seed)
    for t in range(count):
        yield synthetic_frame(rng, t, hr_size, scale)


def available_engines() -> tuple[str, ...]:
    """The read engines installed here: zarr always, tensorstore if importable."""
    try:
        import tensorstore  # noqa: F401
    except ImportError:
        return ("zarr",)
    return ENGINES


# -- one layout ---------------------------------------------------------------------------------


def _make(root: Path, frames: list[Frame], scale: float, layout: Layout,
          sequences: int) -> tuple[Path, float]:
    """A store of ``sequences`` copies of ``frames``; returns (path, write seconds)."""
    H, W = frames[0].color_hr.shape[:2]
    path = root / "store"
    shutil.rmtree(path, ignore_errors=True)
    create_store(path, {"measure": True}, {"train": sequences}, len(frames), (W, H), scale,
                 cv.conventions_block(scale, 8, 0.1, 500.0), layout=layout)
    start = time.perf_counter()
    for s in range(sequences):
        write_sequence(path, "train", s, iter(frames), {"scene": "measure", "seed": s})
    return path, time.perf_counter() - start


def _reads(store, rng: np.random.Generator, sequences: int, windows: int, crops: int,
           size_hr: int) -> dict:
    T, (W, H), step = store.frames, store.hr_size, store.crop_step
    k = min(WINDOW, T)
    start = time.perf_counter()
    nbytes = 0
    for _ in range(windows):
        data = store.read_window("train", int(rng.integers(sequences)), int(rng.integers(T - k + 1)), k)
        nbytes += sum(a.nbytes for a in data.values())
    window_s = time.perf_counter() - start

    size = min(size_hr, H, W) // step * step
    start = time.perf_counter()
    for _ in range(crops):
        y = int(rng.integers((H - size) // step + 1)) * step
        x = int(rng.integers((W - size) // step + 1)) * step
        store.read_crop("train", int(rng.integers(sequences)), int(rng.integers(T - k + 1)), k, y, x, size)
    crop_s = time.perf_counter() - start
    return {"window_mb_per_s": nbytes / window_s / MB, "crops_per_s": crops / crop_s,
            "crop_hr": size, "window": k}


def measure_layout(root: Path, frames: list[Frame], scale: float, layout: Layout, sequences: int = 2,
                   windows: int = 8, crops: int = 24, size_hr: int = 256, seed: int = 0,
                   engines: tuple[str, ...] | None = None) -> dict:
    """Write, window-read and crop-read figures of one layout (module docstring);
    read figures per engine, e.g. ``crops_per_s`` (zarr) and ``crops_per_s_tensorstore``."""
    path, write_s = _make(root, frames, scale, layout, sequences)
    out = {"layout": layout.to_json()}
    for engine in engines or available_engines():
        store = open_store(path, engine)
        reads = _reads(store, np.random.default_rng(seed), sequences, windows, crops, size_hr)
        suffix = "" if engine == "zarr" else f"_{engine}"
        out.update({k if k in ("crop_hr", "window") else k + suffix: v for k, v in reads.items()})
    per_seq = store.sequence_nbytes()
    disk = store.disk_bytes()
    out.update(write_mb_per_s=sequences * per_seq / write_s / MB,
               compression_ratio=sequences * per_seq / disk,
               files=sum(1 for f in path.rglob("*") if f.is_file()))
    return out


def measure_layouts(root: str | os.PathLike, frames: list[Frame], scale: float,
                    layouts: dict[str, Layout] | None = None, repeats: int = 1, **kwargs) -> list[dict]:
    """``measure_layout`` for each of ``layouts`` (default ``LAYOUTS``), named.

    With ``repeats`` > 1 the layouts are measured round-robin that many times and
    each rate is the best of its runs: on a shared machine, other work only ever
    slows a run down."""
    root = Path(root)
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for name, layout in (layouts or LAYOUTS).items():
            run = measure_layout(root, frames, scale, layout, **kwargs)
            old = best.setdefault(name, {"name": name, **run})
            for key, value in run.items():
                if key.endswith("_per_s"):
                    old[key] = max(old[key], value)
    shutil.rmtree(root / "store", ignore_errors=True)
    return list(best.values())


# -- memory --------------------------------------------------------------------------------------


def write_peak_rss(root: str | os.PathLike, hr_size: tuple[int, int] = (1920, 1080), scale: float = 2.0,
                   frames: int = 24, layout: Layout | None = None) -> float:
    """Peak resident MiB of a fresh process writing one synthetic sequence
    (frames made one at a time, as a renderer would hand them over)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_peak_rss_child, (str(root), hr_size, scale, frames, layout))


def _peak_rss_child(root: str, hr_size, scale, frames, layout) -> float:
    path = Path(root) / "rss-store"
    shutil.rmtree(path, ignore_errors=True)
    create_store(path, {"measure": "rss"}, {"train": 1}, frames, hr_size, scale,
                 cv.conventions_block(scale, 8, 0.1, 500.0), **({"layout": layout} if layout else {}))
    write_sequence(path, "train", 0, synthetic_frames(hr_size, scale, frames), {"scene": "m", "seed": 0})
    shutil.rmtree(path, ignore_errors=True)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- bench --------------------------------------------------------------------------------------


def _codec_chunks(frames: list[Frame], scale: float, layout: Layout) -> tuple[object, list[np.ndarray]]:
    """The layout's compressor as a numcodecs codec, and the pixel chunks of ``frames``
    as the store cuts them (every pixel array, every frame, every tile)."""
    from datagen.store.schema import FRAME_ARRAYS, chunking, compressors, dim_sizes

    H, W = frames[0].color_hr.shape[:2]
    sizes = dim_sizes(len(frames), (W, H), cv.lr_size((W, H), scale))
    compressors(layout)  # an unknown codec name raises here
    numcodec = (numcodecs.Zstd(level=layout.level) if layout.codec == "zstd"
                else numcodecs.Blosc("zstd", layout.level, numcodecs.Blosc.SHUFFLE))
    tiles = []
    for spec in FRAME_ARRAYS:
        ty, tx = chunking(spec, sizes, layout)[0][2:4]
        for f in frames:
            a = np.asarray(getattr(f, spec.name), spec.dtype)
            tiles += [np.ascontiguousarray(a[y:y + ty, x:x + tx])
                      for y in range(0, a.shape[0], ty) for x in range(0, a.shape[1], tx)]
    return numcodec, tiles


@contextlib.contextmanager
def _one_blosc_thread() -> Iterator[None]:
    threads = numcodecs.blosc.get_nthreads()
    numcodecs.blosc.set_nthreads(1)
    try:
        yield
    finally:
        numcodecs.blosc.set_nthreads(threads)


def bare_codec(frames: list[Frame], scale: float, layout: Layout) -> dict:
    """MB/s of the layout's compressor alone, one thread, on the same pixel chunks
    (the reference that store write and read speeds are compared with)."""
    numcodec, tiles = _codec_chunks(frames, scale, layout)
    nbytes = sum(t.nbytes for t in tiles)
    with _one_blosc_thread():
        start = time.perf_counter()
        encoded = [numcodec.encode(t) for t in tiles]
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        for e in encoded:
            numcodec.decode(e)
        decode_s = time.perf_counter() - start
    return {"encode_mb_per_s": nbytes / encode_s / MB, "decode_mb_per_s": nbytes / decode_s / MB}


def writer_vs_codec(root: str | os.PathLike, frames: list[Frame], scale: float,
                    layout: Layout | None = None, repeats: int = 3, source: str = "synthetic") -> dict:
    """Figure ``writer_vs_codec``: CPU-seconds of ``write_sequence`` writing ``frames`` as
    one sequence (every thread of this process: the caller's, the writer thread,
    tensorstore's; the store's metadata, flags and per-frame arrays included) against
    CPU-seconds of the bare compressor on one thread encoding the same pixel chunks.
    The best of ``repeats`` for each, after one untimed write (the first opens the
    tensorstore context and warms the page cache). Target: ratio <= 3."""
    from datagen.store.schema import DEFAULT_LAYOUT

    layout = layout or DEFAULT_LAYOUT
    H, W = frames[0].color_hr.shape[:2]
    path = Path(root) / "writer-vs-codec"
    shutil.rmtree(path, ignore_errors=True)
    create_store(path, {"measure": "writer_vs_codec"}, {"train": 1}, len(frames), (W, H), scale,
                 cv.conventions_block(scale, 8, 0.1, 500.0), layout=layout)
    write_s = []
    for _ in range(repeats + 1):
        start = time.process_time()
        write_sequence(path, "train", 0, iter(frames), {"scene": "measure", "seed": 0})
        write_s.append(time.process_time() - start)
    shutil.rmtree(path, ignore_errors=True)
    numcodec, tiles = _codec_chunks(frames, scale, layout)
    codec_s = []
    with _one_blosc_thread():
        for _ in range(repeats):
            start = time.process_time()
            encoded = [numcodec.encode(t) for t in tiles]
            codec_s.append(time.process_time() - start)
    writer, codec = min(write_s[1:]), min(codec_s)
    return {
        "figure": "writer_vs_codec",
        "what": f"CPU-seconds of write_sequence, one {W}x{H} sequence of {len(frames)} frames "
                f"({source}, scale {scale:g}), every thread of the process",
        "cpu_seconds": writer,
        "mb": sum(t.nbytes for t in tiles) / MB,
        "compressed_mb": sum(len(e) for e in encoded) / MB,
        "reference": {"what": "bare compressor on the same pixel chunks, one thread", "cpu_seconds": codec},
        "ratio": writer / codec,
        "target": f"ratio <= {WRITER_VS_CODEC_TARGET:g}",
        "rounds": {"writer_cpu_s": write_s[1:], "codec_cpu_s": codec_s},
        "layout": layout.to_json(), "machine": machine(),
    }


WRITER_VS_CODEC_TARGET = 3.0
WRITE_PEAK_TARGET_MIB = 1024.0


def bench_store(tmpdir: str | os.PathLike, quick: bool) -> list[dict]:
    """The store figures of ``datagen bench`` for the default layout (figure dicts):

    - ``store_write``: MB/s of ``write_sequence``, against the bare compressor on
      one thread (``ratio`` = store / bare);
    - ``store_read_window``: MB/s of a K=8 window read, against bare decoding;
    - ``store_read_crop``: samples/s of aligned 256 px HR + LR crops over K=8
      frames (zarr engine; ``*_tensorstore`` fields when it is installed);
    - ``writer_vs_codec``: CPU-seconds of writing one sequence against the bare
      compressor on the same chunks (``writer_vs_codec``; target <= 3);
    - ``store_write_peak_rss`` (not ``quick``): peak MiB of a process writing one
      1080p sequence of 24 frames, against the 1 GiB target.

    Quick: synthetic 480x270 frames; otherwise synthetic 960x540 (no GL needed).
    """
    from datagen.store.schema import DEFAULT_LAYOUT

    hr, count = ((480, 270), 8) if quick else ((960, 540), 16)
    frames = list(synthetic_frames(hr, 2.0, count))
    m = measure_layout(Path(tmpdir), frames, 2.0, DEFAULT_LAYOUT, sequences=1 if quick else 2,
                       windows=4 if quick else 8, crops=8 if quick else 24)
    bare = bare_codec(frames, 2.0, DEFAULT_LAYOUT)
    shutil.rmtree(Path(tmpdir) / "store", ignore_errors=True)
    common = {"layout": m["layout"], "hr_size": list(hr), "scale": 2.0, "frames": count,
              "source": "synthetic", "machine": machine()}
    extra = {k: v for k, v in m.items() if k.endswith("_tensorstore")}
    figures = [
        {"figure": "store_write", "mb_per_s": m["write_mb_per_s"],
         "reference": {"what": "bare compressor, one thread", "mb_per_s": bare["encode_mb_per_s"]},
         "ratio": m["write_mb_per_s"] / bare["encode_mb_per_s"],
         "compression_ratio": m["compression_ratio"], **common},
        {"figure": "store_read_window", "mb_per_s": m["window_mb_per_s"], "window": m["window"],
         "reference": {"what": "bare decompressor, one thread", "mb_per_s": bare["decode_mb_per_s"]},
         "ratio": m["window_mb_per_s"] / bare["decode_mb_per_s"],
         **{k: v for k, v in extra.items() if k.startswith("window")}, **common},
        {"figure": "store_read_crop", "samples_per_s": m["crops_per_s"], "crop_hr": m["crop_hr"],
         "window": m["window"], **{k: v for k, v in extra.items() if k.startswith("crops")}, **common},
    ]
    figures.append(writer_vs_codec(tmpdir, frames, 2.0, DEFAULT_LAYOUT, repeats=2 if quick else 3))
    if not quick:
        rss = write_peak_rss(tmpdir)
        figures.append({"figure": "store_write_peak_rss", "mib": rss,
                        "reference": {"what": "target for writing 1080p", "mib": WRITE_PEAK_TARGET_MIB},
                        "ratio": rss / WRITE_PEAK_TARGET_MIB, "target": "ratio <= 1",
                        "hr_size": [1920, 1080], "frames": 24,
                        "layout": m["layout"], "machine": machine()})
    return figures


def machine() -> str:
    """CPU model and count, for the record."""
    model = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                         model)
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}"


def _table(rows: list[dict]) -> str:
    lines = ["| layout | write MB/s | window MB/s zarr / ts | crops/s zarr / ts | ratio | files |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['write_mb_per_s']:.0f} | {r['window_mb_per_s']:.0f} / "
                     f"{r.get('window_mb_per_s_tensorstore', float('nan')):.0f} | {r['crops_per_s']:.1f} / "
                     f"{r.get('crops_per_s_tensorstore', float('nan')):.1f} | {r['compression_ratio']:.2f} | "
                     f"{r['files']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None,
         render_frames: Callable[[tuple[int, int], float, int], list[Frame]] | None = None) -> None:
    """The layout table; ``render_frames(hr_size, scale, count)`` makes the frames of
    ``--render`` (datagen.bench passes the renderer's)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--res", default="960x540", help="HR WxH (default 960x540)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--render", action="store_true", help="rendered primitives frames (needs GL)")
    parser.add_argument("--windows", type=int, default=8, help="window reads per layout and engine")
    parser.add_argument("--crops", type=int, default=24, help="crop reads per layout and engine")
    parser.add_argument("--sequences", type=int, default=2, help="sequences written per layout")
    parser.add_argument("--repeat", type=int, default=1, help="best of this many round-robin runs")
    parser.add_argument("--rss", action="store_true", help="also the peak memory of a 1080p write")
    args = parser.parse_args(argv)
    if args.render and render_frames is None:
        parser.error("--render needs the renderer: run `python -m datagen.bench --render ...`")
    hr = cv.parse_size(args.res, "--res")
    frames = (render_frames(hr, 2.0, args.frames) if args.render
              else list(synthetic_frames(hr, 2.0, args.frames)))
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure_layouts(tmp, frames, 2.0, repeats=args.repeat, sequences=args.sequences,
                               windows=args.windows, crops=args.crops)
        print(f"{'rendered primitives' if args.render else 'synthetic'} frames, HR {args.res}, scale 2, "
              f"T={args.frames}, {args.sequences} sequences, best of {args.repeat}, {machine()}")
        print(_table(rows))
        if args.rss:
            print(f"peak RSS of a 1080p T=24 sequence write: {write_peak_rss(tmp):.0f} MiB")


if __name__ == "__main__":
    main()
