"""The ``datagen`` command line. The only module that prints or draws progress.

Exit codes: 0 success, 2 bad input (one line on stderr saying what to fix),
1 internal error, 3 ``validate`` found a failed check (one line per failure).

Each command's pieces sit together: its examples (the ``--help`` epilog), its handler
``cmd_X(args)`` and ``add_X_parser(sub)``, which declares its flags; ``build_parser``
only lists the commands in their ``datagen --help`` order.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from datagen import __version__
from datagen.errors import ConfigError, DatagenError, StoreError

log = logging.getLogger("datagen")

STORE_HELP = "a store made by `datagen build`: a path, a file:// URL or s3://BUCKET/PREFIX"

VALIDATE_FAILED = 3
"""exit status of ``datagen validate`` when a check fails."""


RAW = argparse.RawDescriptionHelpFormatter
"""the help layout of every command: epilogs (examples) keep their lines."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog may be a function, called only when help is shown
    (the validate epilog imports the store modules, which every command need not pay for),
    and whose errors are one line pointing at --help instead of the usage block."""

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _scales(text: str) -> tuple[float, ...]:
    """An argparse type: one ratio or several, comma-separated ("2,1.5,1.7")."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale must be numbers separated by commas, e.g. 2 or "
                                         f"2,1.5,1.7; got {text!r}") from None


def _int_at_least(name: str, minimum: int = 1) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, else an error naming the flag."""
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {value}")
        return value
    return check


def render_config(args) -> object:
    from datagen import conventions as cv
    from datagen.render_config import RenderConfig

    w, h = cv.parse_size(args.res, "--res")
    config = RenderConfig(hr_width=w, hr_height=h, scale=args.scale, spp=args.spp,
                          reference_resolve=args.reference_resolve)
    config.check()
    return config


RENDER_EXAMPLES = """\
examples:
  datagen render primitives --out storage/render/primitives
  datagen render primitives --frames 4 --res 640x360 --scale 2 --spp 32 --out /tmp/p
  datagen render path/to/recipe.toml --seed 7 --out /tmp/r
  datagen render scenes/assets/Duck.glb --frames 30 --out /tmp/duck   # orbit camera, first animation
  datagen render scenes/assets/mesh/textured_ball.obj --out /tmp/ball  # also .ply, .stl, .off

writes DIR/lr/NNNN.exr (R,G,B, Z, backward.u/v, N.X/Y/Z, albedo.R/G/B, roughness,
metallic, objectId), DIR/hr/NNNN.exr (R,G,B, Z, backward.u/v), DIR/sequence.json
and DIR/preview/NNNN.png; conventions in docs/conventions.md. A DIR that already
holds a sequence is refused unless --overwrite (which removes its frames first).
"""


def cmd_render(args) -> int:
    from tqdm import tqdm

    from datagen import conventions as cv
    from datagen.output import check_sequence_dir, write_sequence_dir
    from datagen.render import Renderer
    from datagen.scenes import recipes

    recipe = recipes.load(args.scene)
    config = render_config(args)
    out = Path(args.out)
    check_sequence_dir(out, args.overwrite)  # before the scene is built and anything rendered
    scene = recipe.build(args.seed)
    cam = scene.camera
    meta = {
        "conventions": cv.conventions_block(config.scale, config.spp, cam.near, cam.far,
                                            config.reference_resolve, ratio=config.ratio),
        "config": {
            "scene": recipe.name, "recipe": dataclasses.asdict(recipe), "seed": args.seed,
            "frames": args.frames, "render": dataclasses.asdict(config),
            "fps": scene.fps, "fov_y_deg": cam.fov_y_deg, "datagen_version": __version__,
        },
    }
    drawn = []  # frames that show some geometry

    def frames(renderer):
        for i in range(args.frames):
            frame = renderer.render(scene, i)
            if frame.object_id_lr.any():
                drawn.append(i)
            yield frame

    with Renderer(config) as renderer, tqdm(total=args.frames, unit="frame", desc=f"render {recipe.name}",
                                            disable=None) as bar:  # drawn on a terminal only
        write_sequence_dir(out, frames(renderer), meta, progress=lambda *_: bar.update(),
                           overwrite=args.overwrite)
    if not drawn:
        print(f"datagen render: warning: every frame of {recipe.name} shows only the sky: no geometry is "
              "in view (degenerate or zero-scale geometry, or a camera looking away)", file=sys.stderr)
    print(f"wrote {args.frames} frames of {recipe.name} "
          f"({config.lr_size[0]}x{config.lr_size[1]} LR, {config.hr_width}x{config.hr_height} HR, "
          f"{config.spp} spp) to {out}")
    return 0


def add_render_parser(sub) -> None:
    p = sub.add_parser("render", help="render one sequence to OpenEXR + PNG previews",
                       epilog=RENDER_EXAMPLES, formatter_class=RAW,
                       description="Render one sequence of a scene for inspection.")
    p.add_argument("scene", metavar="SCENE",
                   help="recipe name in scenes/, or a path to a .toml recipe or a mesh file "
                        "(.gltf/.glb, .obj with its .mtl, .ply, .stl, .off)")
    p.add_argument("--frames", type=_int_at_least("--frames"), default=8, help="frames (default 8)")
    p.add_argument("--res", default="1920x1080", help="HR (target) WIDTHxHEIGHT (default 1920x1080)")
    p.add_argument("--scale", type=float, default=2.0,
                   help="LR = HR / scale rounded to whole pixels: 1.3, 1.5, 1.7, 2, 3 or 4")
    p.add_argument("--spp", type=int, default=16, help="HR samples per pixel, 8-256 (default 16)")
    p.add_argument("--seed", type=_int_at_least("--seed", 0), default=0, help="scene seed (default 0)")
    p.add_argument("--reference-resolve", choices=("box", "karis"), default="box",
                   help="HR samples to a pixel: their mean (box, default) or Karis's tonemapped mean (karis)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a sequence already in --out (its frame files are removed first)")
    p.set_defaults(func=cmd_render)


BENCH_EXAMPLES = """\
examples:
  datagen bench --quick
  datagen bench --out storage/bench.json

prints one row per figure (value, reference, ratio, target); --out keeps the full JSON.
figures: render frames/s (LR + G-buffer + 16-spp HR, primitives, 1920x1080,
scale 2) against a bare moderngl loop drawing the same passes in the same run;
frame_time_spread (every scene at 64x36, 128x72, 640x360 and 1920x1080: the slowest
frame's CPU time over its sequence's median, target <= 3); store write and window-read
MB/s and crop samples/s against the bare codec; the same reads from S3 against local
disk (a moto server on 127.0.0.1 unless DATAGEN_BENCH_S3=s3://...); peak memory of a
process writing one 1080p sequence; train step time and data wait (local and S3).
Results: docs/benchmarks.md.
"""


def cmd_bench(args) -> int:
    from datagen.bench import run_bench
    from datagen.bench_report import summary_table
    from datagen.output import check_out_dir

    if args.out:  # before minutes of measuring
        check_out_dir(Path(args.out).parent)
    result = run_bench(quick=args.quick, progress=lambda msg: print(msg, file=sys.stderr))
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text if args.json else summary_table(result))
    if args.out and not args.json:
        print(f"every figure in full: {args.out}")
    return 0


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed and memory figures, as ratios measured in one run",
                       epilog=BENCH_EXAMPLES, formatter_class=RAW,
                       description="Measure the speed and memory figures as ratios in one run.")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument("--out", metavar="FILE.json", help="write every figure in full (JSON) here")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the summary table")
    p.set_defaults(func=cmd_bench)


BUILD_EXAMPLES = """\
examples:
  datagen build racing                                  # pipelines/dataset.toml -> storage/racing.zarr
  datagen build racing city --workers 2                 # several scenes -> storage/racing+city.zarr
  datagen build primitives --sequences 2 --frames 2 --res 32x18 --spp 8 --out /tmp/tiny.zarr
  datagen build --recipe pipelines/dataset.toml --seed 7 --out storage/seed7.zarr
  datagen build racing --scheduler tcp://10.0.0.5:8786  # an existing cluster (`dask scheduler`)
  datagen build --recipe pipelines/slurm.toml --cluster slurm --jobs 64 --out /shared/slurm.zarr
  datagen build racing --out s3://bucket/racing.zarr    # AWS credentials (AWS_ENDPOINT_URL: S3-compatible)

flags override the recipe (default pipelines/dataset.toml). Re-running the same
command skips complete sequences (resume); another config on an existing store is
refused unless --overwrite. Ends with the `datagen info` summary. --out is a path
(or file:// URL) that every worker sees, or s3://BUCKET/PREFIX; SLURM, Kubernetes and
what workers need: docs/cluster.md.
"""


def cmd_build(args) -> int:
    from tqdm import tqdm

    from datagen import conventions as cv
    from datagen.pipeline.build import build
    from datagen.pipeline.plan import load_config

    scales = args.scale or (None,)
    overrides = {"scenes": args.scenes or None, "sequences": args.sequences, "frames": args.frames,
                 "res": None if args.res is None else cv.parse_size(args.res, "--res"),
                 "scale": scales[0], "extra_scales": args.scale and scales[1:],
                 "spp": args.spp, "seed": args.seed,
                 "workers": args.workers, "scheduler": args.scheduler,
                 "reference_resolve": args.reference_resolve}
    config = load_config(args.recipe, **overrides)
    config = with_cluster_flags(config, args)
    if not args.verbose:
        from datagen.pipeline.build import quiet_dask_logs

        quiet_dask_logs()
    out = args.out or str(Path("storage") / ("+".join(Path(s).stem for s in config.scenes) + ".zarr"))
    bar = None

    def progress(done: int, total: int, fps: float) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done, unit="seq", desc=f"build {out}", file=sys.stderr)
            return
        bar.set_postfix_str(f"{fps:.2f} frames/s")
        bar.update(done - bar.n)

    def on_cluster(link: str) -> None:
        import importlib.util

        # a LocalCluster's scheduler runs here: its dashboard is served only with bokeh installed
        if not config.scheduler and importlib.util.find_spec("bokeh") is None:
            log.info("no Dask dashboard: pip install bokeh to serve one")
            return
        line = f"Dask dashboard: {link}"
        if bar is not None:  # above the bar, not inside it
            bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    from distributed import KilledWorker

    try:
        result = build(config, out, overwrite=args.overwrite, progress=progress,
                       on_cluster=on_cluster)
    except KilledWorker as exc:  # a sequence's worker died allowed-failures + 1 times
        if bar is not None:
            bar.close()  # so that the error is a line of its own
        print(f"datagen build: error: {exc}; the workers keep dying on it (out of memory? a GL driver "
              "crash?); complete sequences are kept, so fix the cause and run the same command "
              "again to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # main() says how to resume
        from datagen.pipeline.build import close_interrupted_clusters

        if bar is not None:
            bar.close()
        close_interrupted_clusters()
        raise
    finally:
        if bar is not None:
            bar.close()
    rate = f", {result.frames_per_s:.2f} frames/s" if result.frames else ""
    print(f"built {result.store}: rendered {result.rendered} sequence(s) ({result.frames} "
          f"frames) in {result.seconds:.1f} s{rate}; skipped {result.skipped} already complete\n")
    print(format_summary(_open(result.store).summary()))
    return 0


def add_build_parser(sub) -> None:
    p = sub.add_parser("build", help="render scenes on Dask into a Zarr store (resumable)",
                       epilog=BUILD_EXAMPLES, formatter_class=RAW,
                       description="Plan sequences from a build recipe, render them on a Dask cluster "
                                   "(a LocalCluster of single-threaded worker processes by default) and "
                                   "stream them into a Zarr store.")
    p.add_argument("scenes", nargs="*", metavar="SCENE",
                   help="scene recipe names (default: the recipe's scenes)")
    p.add_argument("--recipe", metavar="FILE.toml",
                   help="build recipe (default pipelines/dataset.toml)")
    p.add_argument("--out", metavar="STORE",
                   help="store path (default storage/SCENE[+SCENE...].zarr)")
    p.add_argument("--sequences", type=_int_at_least("--sequences"), help="sequences per scene")
    p.add_argument("--frames", type=_int_at_least("--frames"), help="frames per sequence")
    p.add_argument("--res", help="HR (target) WIDTHxHEIGHT")
    p.add_argument("--scale", type=_scales, metavar="S[,S...]",
                   help="LR = HR / scale rounded to whole pixels: 1.3, 1.5, 1.7, 2, 3 or 4; several "
                        "(2,1.5,1.7) store one LR per ratio beside one HR reference (the first is primary)")
    p.add_argument("--spp", type=_int_at_least("--spp"), help="HR samples per pixel, 8-256")
    p.add_argument("--seed", type=_int_at_least("--seed", 0), help="master seed")
    p.add_argument("--reference-resolve", choices=("box", "karis"),
                   help="HR samples to a pixel: box (mean) or karis (Karis's tonemapped mean)")
    p.add_argument("--workers", type=_int_at_least("--workers", 1),
                   help="local worker processes, one thread each (default: the recipe's, else one per core)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="existing Dask scheduler, e.g. tcp://HOST:8786 (default: a LocalCluster)")
    p.add_argument("--cluster", choices=("local", "slurm"),
                   help="slurm: start SLURM jobs as Dask workers (dask-jobqueue) for this build and "
                        "cancel them at the end; default: the recipe's [cluster] table, else local")
    p.add_argument("--jobs", type=_int_at_least("--jobs"), help="SLURM jobs to run (cluster.jobs)")
    p.add_argument("--partition", help="SLURM partition (cluster.partition)")
    p.add_argument("--account", help="SLURM account (cluster.account)")
    p.add_argument("--walltime", metavar="HH:MM:SS", help="SLURM time limit per job (cluster.walltime)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete a store of another config at --out and start fresh")
    p.set_defaults(func=cmd_build)


def with_cluster_flags(config, args):
    """``config`` with --cluster/--jobs/--partition/--account/--walltime laid over its
    ``[cluster]`` table."""
    flags = {"kind": args.cluster, "jobs": args.jobs, "partition": args.partition,
             "account": args.account, "walltime": args.walltime}
    flags = {k: v for k, v in flags.items() if v is not None}
    if not flags:
        return config
    config = dataclasses.replace(config, cluster=dataclasses.replace(config.cluster, **flags))
    config.check()
    return config


# -- store commands ---------------------------------------------------------------------------------


def _open(path: str):
    from datagen.store import open_store

    return open_store(path)


def _bar(total: int, unit: str, desc: str):
    """A tqdm bar on stderr, drawn only when stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, disable=None, leave=False)


def select_sequences(store, split: str | None, sequence: int | None, one: bool = False) -> list:
    """The sequences named by --split/--sequence (SequenceInfo records).

    No --split: every split, or with --sequence or ``one`` the first split with a
    complete sequence. No --sequence: every sequence of those splits, or with
    ``one`` the first complete one. A split or sequence that does not exist is a
    StoreError listing the valid ones."""
    if split is not None and split not in store.splits:
        raise StoreError(f"{store.path}: no split {split!r}; valid: {', '.join(store.splits)}")
    if split is None and (one or sequence is not None):
        split = next((s for s in store.splits if store.sequences(s, complete_only=True)),
                     next((s for s in store.splits if store.sequence_count(s)), store.splits[0]))
    splits = store.splits if split is None else (split,)
    found = [info for s in splits for info in store.sequences(s)]
    if sequence is not None:
        count = store.sequence_count(split)
        if not 0 <= sequence < count:
            have = f"sequences 0..{count - 1}" if count else "no sequences"
            raise StoreError(f"{store.path}: split {split!r} has {have}; got --sequence {sequence}")
        return [found[sequence]]
    if one:
        done = [info for info in found if info.complete]
        if not done:
            raise StoreError(f"{store.path}: split {split!r} has no complete sequence to show; "
                             "run the build (or pass another --split)")
        return done[:1]
    return found


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def format_summary(s: dict) -> str:
    """What ``datagen info`` prints for ``Store.summary()``."""
    (W, H), (w, h) = s["hr_size"], s["lr_size"]
    lines = [
        f"store       {s['path']}  (schema {s['schema_version']}, written by datagen {s['datagen_version']})",
        f"frames      {s['frames_per_sequence']} per sequence; HR {W}x{H}, LR {w}x{h} "
        f"(scale {s['scale']:g}; ratio {W / w:.6g} x {H / h:.6g}), {s['spp']} spp",
        *(["ratios      also " + ", ".join(f"{e['scale']:g} (LR {e['lr_size'][0]}x{e['lr_size'][1]}, "
                                           f"SPLIT/{e['group']})" for e in s["extra_lr"])]
          if s.get("extra_lr") else []),
        "",
        f"{'split':<8}{'sequences':>10}{'complete':>10}{'frames':>8}  scenes (complete sequences)",
    ]
    rows = [(split, row["sequences"], row["complete"], row["frames"], row["scenes"])
            for split, row in s["splits"].items()]
    rows.append(("total", s["sequences"], s["complete_sequences"], s["frames"], s["scenes"]))
    for name, total, complete, frames, scenes in rows:
        names = ", ".join(f"{scene} ({n})" for scene, n in sorted(scenes.items())) or "-"
        lines.append(f"{name:<8}{total:>10}{complete:>10}{frames:>8}  {names}")
    lines += ["", "arrays (shape per sequence, dtype, dimension names)"]
    for name, a in s["arrays"].items():
        shape = str(tuple(a["shape"]))
        lines.append(f"  {name:<13}{shape:<22}{a['dtype']:<9}{', '.join(a['dims'])}")
    layout = s["layout"]
    tiles = f"{layout['tile_hr']} px HR tiles" if layout["tile_hr"] else "whole-frame chunks"
    ratio = f"{s['compression_ratio']:.2f}x" if s["compression_ratio"] else "-"
    lines += ["",
              f"layout      {tiles}, {layout['frames_per_shard']} frames per shard, {layout['codec']} "
              f"level {layout['level']}",
              f"bytes       {_size(s['disk_bytes'])} on disk; {_size(s['logical_bytes'])} uncompressed in "
              f"complete sequences; compression ratio {ratio}"]
    return "\n".join(lines)


def _selection_args(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("store", metavar="STORE", help=STORE_HELP)
    p.add_argument("--split", metavar="S", help=f"train, val or test (default: {default})")
    p.add_argument("--sequence", metavar="I", type=_int_at_least("--sequence", 0),
                   help="sequence index within --split (without --split: within the first split that "
                        "has a complete sequence)")


INFO_EXAMPLES = """\
examples:
  datagen info storage/racing.zarr
  datagen info storage/racing.zarr --json > info.json

prints splits, scenes, sequences (complete/total), frames, LR/HR shapes of every
array, bytes on disk and the compression ratio (uncompressed bytes of the complete
sequences / bytes on disk).
"""


def cmd_info(args) -> int:
    summary = _open(args.store).summary()
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def add_info_parser(sub) -> None:
    p = sub.add_parser("info", help="summary of a store: splits, scenes, shapes, bytes",
                       epilog=INFO_EXAMPLES, formatter_class=RAW,
                       description="Summarise a Zarr store: splits, scenes, sequences, frames, shapes, "
                                   "bytes on disk and compression ratio.")
    p.add_argument("store", metavar="STORE", help=STORE_HELP)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_info)


def validate_epilog() -> str:
    from datagen.store.validate import CHECKS
    from datagen.store.validate_motion import describe_thresholds

    checks = "\n".join(f"  {name:<14} {doc}" for name, doc in CHECKS.items())
    return f"""\
examples:
  datagen validate storage/racing.zarr
  datagen validate storage/racing.zarr --split val --sequence 2

checks; each failure prints one line: CHECK: SPLIT sequence I frame T: what is wrong
{checks}

thresholds:
{describe_thresholds()}

exit status: 0 every check passed; {VALIDATE_FAILED} a check failed; 2 not a store, another schema
version, or a split/sequence that does not exist; 1 internal error.
"""


def cmd_validate(args) -> int:
    from datagen.store.validate import Tally, validate

    store = _open(args.store)
    sequences = select_sequences(store, args.split, args.sequence)
    tally, failures = Tally(), []
    with _bar(len(sequences), "sequence", "validate") as bar:
        for failure in validate(store, sequences, progress=bar.update, tally=tally):
            bar.clear()
            print(failure, flush=True)
            failures.append(failure)
    judged = ", ".join(f"{name} {n}" for name, n in tally.judged.items())
    what = (f"{tally.sequences} complete sequence(s) of {len(sequences)}, {tally.frames} frames; "
            f"frames judged by {judged}")
    if failures:
        checks = sorted({f.check for f in failures})
        print(f"FAILED: {len(failures)} failure(s) of {', '.join(checks)} in {store.path} ({what})")
        return VALIDATE_FAILED
    print(f"OK: {store.path} passes every check ({what})")
    return 0


def add_validate_parser(sub) -> None:
    p = sub.add_parser("validate", help="schema and numeric checks of a store",
                       epilog=validate_epilog, formatter_class=RAW,
                       description="Check a store: schema, dtypes, NaN/inf, complete flags, jitter, and "
                                   "motion vectors against colour, depth, cameras and each other. "
                                   f"Exit status {VALIDATE_FAILED} if any check fails.")
    _selection_args(p, "every split")
    p.set_defaults(func=cmd_validate)


PREVIEW_EXAMPLES = """\
examples:
  datagen preview storage/racing.zarr --out racing.png
  datagen preview storage/racing.zarr --split val --sequence 2 --out val2.gif
  datagen preview storage/racing.zarr --sequence 0 --out seq0.mp4

columns: LR colour upscaled nearest, HR colour (both tonemapped with the frame's
exposure), motion_hr on the colour wheel, depth_hr (sky blue). A .png holds a few
frames, one per row; a .gif or .mp4 every frame. Without --split/--sequence: the
first complete sequence of the first split that has one.
"""


def cmd_preview(args) -> int:
    from datagen.preview import check_format, write_preview

    check_format(args.out)
    store = _open(args.store)
    (info,) = select_sequences(store, args.split, args.sequence, one=True)
    with _bar(store.frames, "frame", "preview") as bar:
        shape = write_preview(store, info, args.out, rows=args.rows, max_width=args.max_width,
                              progress=bar.update)
    frames = f"{shape[0]} frames of " if len(shape) == 4 else ""
    print(f"wrote {args.out}: {frames}{shape[-2]}x{shape[-3]} of {info.split} sequence {info.index} "
          f"({info.scene or 'unknown scene'})")
    return 0


def add_preview_parser(sub) -> None:
    p = sub.add_parser("preview", help="contact sheet (.png) or video (.gif, .mp4) of a stored sequence",
                       epilog=PREVIEW_EXAMPLES, formatter_class=RAW,
                       description="Look at a stored sequence: LR, HR, motion and depth side by side.")
    _selection_args(p, "the first split with a complete sequence")
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.png, FILE.gif or FILE.mp4")
    p.add_argument("--rows", type=_int_at_least("--rows"), default=4,
                   help="frames in a .png sheet, spread over the sequence (default 4)")
    p.add_argument("--max-width", type=_int_at_least("--max-width"), default=3840,
                   help="shrink tiles (every k-th pixel) so the picture is at most this wide (default 3840)")
    p.set_defaults(func=cmd_preview)


EXPORT_EXAMPLES = """\
examples:
  datagen export storage/racing.zarr --format exr --out exported/
  datagen export storage/racing.zarr --format exr --split val --sequence 2 --out exported/ --no-preview
  datagen export storage/racing.zarr --format nss --out nss/      # Arm NSS layout, one root per split

writes OUT/SPLIT/NNNN/lr/NNNN.exr (R,G,B, Z, backward.u/v, N.X/Y/Z, albedo.R/G/B,
roughness, metallic, objectId), OUT/SPLIT/NNNN/hr/NNNN.exr (R,G,B, Z, backward.u/v),
OUT/SPLIT/NNNN/sequence.json (per-frame cameras, conventions, resolved config and the
sequence's metadata) and OUT/SPLIT/NNNN/preview/NNNN.png, for complete sequences only.

--format nss writes Arm's Neural Super Sampling dataset layout (spec 1.0.1), one root
per split: OUT/SPLIT/NNNN.json, OUT/SPLIT/ground_truth/NNNN/FFFF.exr, motion_gt/...,
x2/color/..., x2/depth/..., x2/motion/... (docs/conventions.md lists the mapping).
"""


def cmd_export(args) -> int:
    from datagen.store.export import FORMATS, export_exr
    from datagen.store.nss import ARM_READER_RATIOS, export_nss, ratio_name

    if args.format not in FORMATS:
        raise ConfigError(f"unknown --format {args.format!r}; valid: {', '.join(FORMATS)}")
    store = _open(args.store)
    sequences = select_sequences(store, args.split, args.sequence)
    # one sequence asked for by index is exported or refused; of many, the complete ones
    done = sequences if args.sequence is not None else [info for info in sequences if info.complete]
    if not done:
        where = f"split {args.split!r}" if args.split else "any split"
        raise StoreError(f"{store.path}: {where} has no complete sequence to export; run the build to "
                         "finish it (or pass another --split)")
    with _bar(len(done) * store.frames, "frame", "export") as bar:
        if args.format == "nss":
            export_nss(store, done, args.out, progress=bar.update)
        else:
            export_exr(store, done, args.out, previews=not args.no_preview, progress=bar.update)
    skipped = len(sequences) - len(done)
    note = f"; skipped {skipped} sequence(s) that are not complete" if skipped else ""
    others = [f"x{ratio_name(s)}" for s in store.scales if ratio_name(s) not in ARM_READER_RATIOS]
    if args.format == "nss" and others:
        note += f"; note: Arm's NSS reader handles x2 only, this store has {', '.join(others)}"
    print(f"exported {len(done)} sequence(s), {len(done) * store.frames} frames, to {args.out}{note}")
    return 0


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="stored sequences to OpenEXR folders (the datagen render layout) "
                                      "or Arm's NSS dataset layout",
                       epilog=EXPORT_EXAMPLES, formatter_class=RAW,
                       description="Write complete sequences of a store as per-frame OpenEXR files with "
                                   "the per-sequence metadata as JSON, the layout `datagen render` writes "
                                   "(--format exr) or Arm's Neural Super Sampling layout (--format nss).")
    _selection_args(p, "every split")
    p.add_argument("--format", required=True, help="output format: exr or nss")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder; sequences go to DIR/SPLIT/NNNN (exr) or the NSS root DIR/SPLIT (nss)")
    p.add_argument("--no-preview", action="store_true", help="skip the PNG previews (exr)")
    p.set_defaults(func=cmd_export)


# -- training --------------------------------------------------------------------------------------


def _channels(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--channels {text!r}: comma-separated integers, e.g. 32,64,128") \
            from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"--channels {text!r}: widths must be >= 1")
    return widths


TRAIN_EXAMPLES = """\
examples:
  datagen train storage/racing.zarr --out runs/racing                 # CUDA when present
  datagen train storage/racing.zarr --steps 20 --device cpu --batch 2 --crop 32 --out /tmp/smoke
  datagen train storage/racing.zarr --out runs/racing --resume        # continue from ckpt/last.pt
  datagen train storage/racing.zarr --out runs/racing --steps 40000 --resume  # train longer
  datagen train storage/racing.zarr --preset cpu --out runs/small     # a small model, minutes on a CPU
  datagen train storage/racing.zarr --stage single --out runs/s1      # stages: one-frame pre-training,
  datagen train storage/racing.zarr --stage temporal --init runs/s1 --out runs/s2   # then recurrent,
  datagen train storage/racing.zarr --stage finetune --init runs/s2 --out runs/s3   # then hard windows

writes RUN_DIR/config.json, RUN_DIR/run.json (stage, lineage), RUN_DIR/metrics.jsonl
(step, loss, lr, samples_per_s, data_wait_frac, loss terms), RUN_DIR/ckpt/step_NNNNNN.pt
and ckpt/last.pt, and
RUN_DIR/tb/ (TensorBoard). --resume takes the run's saved config; only --steps,
--device, --num-workers, --compile and --skip-bad-windows may change. Model, loss:
docs/training.md. A window holding NaN (or an infinity other than +inf depth) stops
the run with one line naming the store, split, sequence and frame (exit 1); so does a
non-finite loss, naming the step and keeping the checkpoints written before it.
"""


def cmd_train(args) -> int:
    from datagen.output import check_out_dir

    _open(args.store)  # a missing store or another schema version: one line before torch starts
    check_out_dir(Path(args.out))  # and an --out that cannot be written
    from tqdm import tqdm

    from datagen.train.metrics import LossWeights
    from datagen.train.trainer import preset, train

    sizes = ("steps", "batch", "window", "crop", "channels", "warmup", "ckpt_every", "lr")
    given = {name: getattr(args, name) for name in sizes if getattr(args, name) is not None}  # over --preset
    w_perceptual = args.w_perceptual if args.w_perceptual is not None else 0.1 * bool(args.perceptual_weights)
    config = preset(
        args.preset, **given, store=args.store, out=args.out, split=args.split,
        loss=LossWeights(args.w_l1, args.w_ssim, args.w_temporal, w_perceptual, args.w_adv),
        seed=args.seed, device=args.device, compile=args.compile, num_workers=args.num_workers,
        augment=not args.no_augment, log_every=args.log_every, skip_bad_windows=args.skip_bad_windows,
        stage=args.stage, init=args.init, hard_fraction=args.hard_fraction,
        perceptual_weights=args.perceptual_weights, rectify=args.rectify)
    bar = tqdm(total=config.steps, unit="step", desc=f"train {args.out}", file=sys.stderr, disable=None)
    every = args.progress_every or max(1, config.steps // 20)

    def progress(step: int, record: dict) -> None:
        if bar.disable:  # stderr is not a terminal (a SLURM log, a pipe): a line on stdout every N steps
            if step % every == 0 or step == config.steps:
                print(f"train {args.out}: step {step}/{config.steps} loss {record['loss']:.4f} "
                      f"lr {record['lr']:.2e} {record['samples_per_s']:.1f} samples/s data wait "
                      f"{100 * record['data_wait_frac']:.0f}%", flush=True)
            return
        if bar.n == 0 and step > 1:
            bar.update(step - 1)
        bar.set_postfix_str(f"loss {record['loss']:.4f} {record['samples_per_s']:.1f} samples/s "
                            f"data wait {100 * record['data_wait_frac']:.0f}%")
        bar.update(step - bar.n)

    try:
        result = train(config, resume=args.resume, stop_after=args.stop_after, progress=progress)
    finally:
        bar.close()
    state = "done" if result["finished"] else f"stopped at step {result['step']} (continue with --resume)"
    loss = f"{result['loss']:.4f}" if result["loss"] is not None else "-"
    skipped = result["bad_windows_skipped"]
    note = f"; skipped {skipped} bad window(s) (see the warnings above)" if skipped else ""
    print(f"trained {result['parameters']} parameters on {result['device']} ({result['stage']} stage) to "
          f"step {result['step']} of {config.steps}, loss {loss}: {state}; run folder "
          f"{result['run_dir']}{note}")
    return 0


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="fit the temporal CNN on a store (CUDA when present)",
                       epilog=TRAIN_EXAMPLES, formatter_class=RAW,
                       description="Train the recurrent temporal supersampling CNN on windows of a "
                                   "store's train split; checkpoints and metrics go to --out.")
    p.add_argument("store", metavar="STORE", help=STORE_HELP)
    p.add_argument("--out", default="runs/latest", metavar="RUN_DIR", help="run folder (default runs/latest)")
    p.add_argument("--steps", type=_int_at_least("--steps"),
                   help="total optimiser steps (default 2000; cpu preset 300)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="auto: CUDA when present (bf16 autocast, channels_last), else CPU fp32")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from ckpt/last.pt exactly")
    p.add_argument("--split", default="train", help="split to train on (default train)")
    p.add_argument("--batch", type=_int_at_least("--batch"),
                   help="windows per step (default 8; cpu preset 4)")
    p.add_argument("--window", type=_int_at_least("--window"),
                   help="K consecutive frames per window, trained recurrently (default 8, 1 for "
                        "--stage single; cpu preset 4)")
    p.add_argument("--crop", type=_int_at_least("--crop"),
                   help="HR crop side in pixels (default 128, cpu preset 48; LR crop = crop / scale)")
    p.add_argument("--lr", type=float, help="peak AdamW learning rate (default 1e-3; cpu preset 2e-3)")
    p.add_argument("--warmup", type=_int_at_least("--warmup", 0),
                   help="warm-up steps before the cosine decay (default 10%% of --steps, at most 100)")
    p.add_argument("--channels", type=_channels,
                   help="U-Net widths per level (default 32,64,128; cpu preset 16,32,64; with --init the "
                        "parent's)")
    p.add_argument("--rectify", action="store_true",
                   help="history rectification: the warped history clamped to the LR 3x3 neighbourhood as "
                        "an input and a blend candidate (with --init the parent's)")
    p.add_argument("--preset", choices=("cpu",), default="",
                   help="cpu: a small model, crop, batch, window and step count that train in minutes on "
                        "a CPU (flags given override it)")
    p.add_argument("--stage", choices=("single", "temporal", "finetune"), default="temporal",
                   help="single: one-frame pre-training (no history); temporal: recurrent training "
                        "(default); finetune: on the hardest windows under the --init model")
    p.add_argument("--init", metavar="RUN",
                   help="start from this run's weights (RUN_DIR or a checkpoint .pt); run.json records it")
    p.add_argument("--hard-fraction", type=float, default=0.25,
                   help="finetune: the fraction of windows, hardest first, to train on (default 0.25)")
    p.add_argument("--w-l1", type=float, default=1.0, help="weight of L1 (default 1)")
    p.add_argument("--w-ssim", type=float, default=0.2, help="weight of 1 - SSIM (default 0.2)")
    p.add_argument("--w-temporal", type=float, default=0.5, help="weight of the temporal term (default 0.5)")
    p.add_argument("--w-adv", "--adv-weight", dest="w_adv", type=float, default=0.0,
                   help="weight of the adversarial term against a patch discriminator (default 0: off)")
    p.add_argument("--perceptual-weights", metavar="FILE",
                   help="VGG16 state_dict (torch.save of torchvision's vgg16().state_dict()) for the "
                        "perceptual term; nothing is downloaded")
    p.add_argument("--w-perceptual", "--perceptual-weight", dest="w_perceptual", type=float,
                   help="weight of the perceptual term (default 0.1 with --perceptual-weights, else 0)")
    p.add_argument("--seed", type=_int_at_least("--seed", 0), default=0, help="seed (default 0)")
    p.add_argument("--num-workers", type=_int_at_least("--num-workers", 0), default=2,
                   help="DataLoader worker processes (default 2)")
    p.add_argument("--no-augment", action="store_true", help="no random flips")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--log-every", type=_int_at_least("--log-every"), default=1,
                   help="metrics.jsonl line every N steps (default 1)")
    p.add_argument("--ckpt-every", type=_int_at_least("--ckpt-every"),
                   help="checkpoint every N steps, and at the end (default 500; cpu preset 100)")
    p.add_argument("--progress-every", type=_int_at_least("--progress-every"), metavar="N",
                   help="when stderr is not a terminal (SLURM logs): a progress line on stdout every N steps "
                        "(default 5%% of --steps)")
    p.add_argument("--skip-bad-windows", action="store_true",
                   help="pass over windows holding NaN/inf (each one warned about and counted) instead "
                        "of stopping with an error naming it")
    p.add_argument("--stop-after", type=_int_at_least("--stop-after"), metavar="N",
                   help="stop this invocation after N steps with a checkpoint (time-sliced jobs)")
    p.set_defaults(func=cmd_train)


EVAL_EXAMPLES = """\
examples:
  datagen eval runs/racing storage/racing.zarr                 # split test, ckpt/last.pt
  datagen eval runs/racing/ckpt/step_002000.pt storage/racing.zarr --split val

prints PSNR, SSIM and tPSNR (on exposure + Reinhard tonemapped HR) of the model, bicubic
and TAAU, overall and per scene, and writes RUN_DIR/eval_SPLIT.json.
"""


def cmd_eval(args) -> int:
    from datagen.train.checkpoint import checkpoint_path
    from datagen.train.evaluate import evaluate, format_table

    checkpoint_path(args.run)  # a missing run folder: one line before torch starts
    store = _open(args.store)
    if args.onnx:
        from datagen.train import variants

        with _bar(None, "frame", f"eval {args.split}") as bar:
            result = variants.evaluate_onnx(args.run, store.path, args.onnx, args.split, progress=bar.update)
        print(variants.format_table(result))
        print(f"wrote {result['path']}")
        return 0
    with _bar(None, "frame", f"eval {args.split}") as bar:
        result = evaluate(args.run, store.path, args.split, device=args.device, progress=bar.update)
    print(format_table(result))
    print(f"wrote {result['path']}")
    return 0


def add_eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="model vs bicubic vs TAAU: PSNR, SSIM, tPSNR per scene",
                       epilog=EVAL_EXAMPLES, formatter_class=RAW,
                       description="Evaluate a trained model and the classical baselines on whole "
                                   "sequences of a split; writes RUN_DIR/eval_SPLIT.json.")
    p.add_argument("run", metavar="RUN_DIR_OR_CKPT", help="run folder (uses ckpt/last.pt) or a .pt file")
    p.add_argument("store", metavar="STORE", help=STORE_HELP)
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="default auto")
    p.add_argument("--onnx", nargs="+", metavar="FILE",
                   help="instead: these ONNX files from `datagen export-model` (ONNX Runtime, CPU) "
                        "against the run's fp32 model and bicubic; writes RUN_DIR/eval_onnx_SPLIT.json")
    p.set_defaults(func=cmd_eval)


EXPORT_MODEL_EXAMPLES = """\
examples:
  datagen export-model runs/racing --out runs/racing/export               # at the store's HR size
  datagen export-model runs/racing --res 1920x1080 --out runs/racing/export1080
  datagen export-model runs/racing --precision fp32,fp16,int8 --out runs/racing/deploy
  datagen export-model runs/racing --prune 0.25 --tune-steps 300 --precision fp32,int8 --out pruned
  datagen export-model runs/racing --distill 8,16,32 --tune-steps 2000 --lr 2e-3 --out student

writes DIR/model.onnx, DIR/model.pt2 (torch.export) and DIR/export.json: one recurrent
step (inputs color_lr, depth_lr, motion_lr, jitter, exposure, prev_out, prev_depth,
history; outputs out, depth), batch 1, fixed size. With --precision: DIR/model_P.onnx
per precision instead (float32 inputs and outputs; int8 calibrated on the train split).
--prune and --distill train the derived model into DIR/pruned or DIR/student first.
Compare the files with `datagen eval RUN STORE --onnx FILE...`. docs/training.md shows
how to run them.
"""


def cmd_export_model(args) -> int:
    from datagen import conventions as cv
    from datagen.output import check_out_dir
    from datagen.train.evaluate import load_model
    from datagen.train.export import export_model

    check_out_dir(Path(args.out))
    precisions = None
    if args.precision:
        from datagen.train.quantize import parse_precisions

        precisions = parse_precisions(args.precision)
    if args.prune is not None and args.distill:
        raise ConfigError("--prune and --distill: give one (prune the model, or distil it into a student)")
    distill_channels = _distill_widths(args.distill) if args.distill else None
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):  # as TrainConfig.check
        raise ConfigError(f"--lr {args.lr:g}: give a positive learning rate, a finite number such as 5e-4")
    model, ckpt, path = load_model(args.run)
    store = args.store or ckpt["config"]["store"]
    w, h = cv.parse_size(args.res, "--res") if args.res else _open(store).hr_size
    step = ckpt["step"]
    if args.prune is not None or distill_channels:
        model, path = _derive_model(args, model, ckpt, path, store, distill_channels)
        step = args.tune_steps
    if precisions:
        from datagen.train.quantize import export_precisions

        info = export_precisions(model, args.out, (h, w), precisions, store=store,
                                 calibration_frames=args.calibration_frames, checkpoint=str(path))
    else:
        info = export_model(model, args.out, (h, w), checkpoint=str(path))
    print(f"exported step {step} of {path} at {w}x{h} HR to {args.out}: {', '.join(info['files'])}")
    return 0


def _distill_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(c) for c in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise ConfigError(f"--distill {text!r}: give the student's U-Net widths, e.g. 8,16,32")
    return widths


def _derive_model(args, model, ckpt, path, store, distill_channels):
    """--prune or --distill: the derived model, trained into DIR/pruned or DIR/student."""
    from tqdm import tqdm

    steps = args.tune_steps
    bar = tqdm(total=steps, unit="step", desc="fine-tune" if distill_channels is None else "distil",
               file=sys.stderr, disable=None)

    def progress(step: int, record: dict) -> None:
        bar.set_postfix_str(f"loss {record['loss']:.4f}")
        bar.update(step - bar.n)

    try:
        if distill_channels is None:
            from datagen.train.prune import prune_and_tune

            small, small_path = prune_and_tune(model, ckpt["config"], args.prune, steps,
                                               str(Path(args.out) / "pruned"), store, str(path),
                                               device=args.device, lr=args.lr, progress=progress)
        else:
            from datagen.train.distill import distill

            small, small_path = distill(model, ckpt["config"], distill_channels, steps,
                                        str(Path(args.out) / "student"), store, checkpoint=str(path),
                                        device=args.device, lr=args.lr, progress=progress)
    finally:
        bar.close()
    from datagen.train.model import parameter_count
    from datagen.train.prune import flops

    hr = (_open(store).hr_size[1], _open(store).hr_size[0])
    print(f"{'pruned' if distill_channels is None else 'student'}: channels "
          f"{','.join(map(str, small.config.channels))}, {parameter_count(small)} parameters "
          f"(from {parameter_count(model)}), {flops(small, hr) / 1e9:.3f} GFLOP a frame at {hr[1]}x{hr[0]} "
          f"(from {flops(model, hr) / 1e9:.3f}); {steps} steps, run folder {Path(small_path).parent.parent}")
    return small, small_path


def add_export_model_parser(sub) -> None:
    p = sub.add_parser("export-model", help="a trained model to ONNX and torch.export (.pt2)",
                       epilog=EXPORT_MODEL_EXAMPLES, formatter_class=RAW,
                       description="Export one recurrent step of a trained model for inference.")
    p.add_argument("run", metavar="RUN_DIR_OR_CKPT", help="run folder (uses ckpt/last.pt) or a .pt file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--res", help="HR WIDTHxHEIGHT to export at (default: the training store's)")
    p.add_argument("--precision", metavar="P,...",
                   help="write DIR/model_P.onnx for each of fp32, fp16, int8 (comma-separated) instead of "
                        "model.onnx and model.pt2; int8 is calibrated on the store's train split")
    p.add_argument("--store", metavar="STORE", help="store for int8 calibration and fine-tuning (default: "
                                                    "the run's training store)")
    p.add_argument("--calibration-frames", type=_int_at_least("--calibration-frames"), default=16,
                   metavar="N", help="int8: recurrent steps of the train split to calibrate on (default 16)")
    p.add_argument("--prune", type=float, metavar="R",
                   help="remove this fraction of every U-Net level's channels (0 < R < 1), fine-tune "
                        "--tune-steps steps into DIR/pruned, and export that")
    p.add_argument("--distill", metavar="W,...",
                   help="train a student of these U-Net widths from the model (the teacher) for "
                        "--tune-steps steps into DIR/student, and export that")
    p.add_argument("--tune-steps", type=_int_at_least("--tune-steps"), default=300, metavar="N",
                   help="steps of fine-tuning (--prune) or distillation (--distill) (default 300)")
    p.add_argument("--lr", type=float, metavar="LR",
                   help="peak learning rate of --prune's fine-tune (default 5e-4) or --distill's student "
                        "(default: the teacher run's; a student from scratch wants the first stage's, "
                        "e.g. 2e-3)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="for --prune and --distill training (default auto)")
    p.set_defaults(func=cmd_export_model)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="datagen",
        description="Training data for neural temporal supersampling: jittered LR G-buffers and "
                    "supersampled HR references, rendered headless with OpenGL.",
        epilog="run `datagen COMMAND --help` for a command's options and examples",
    )
    parser.add_argument("--version", action="version", version=f"datagen {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for add in (add_render_parser, add_build_parser, add_bench_parser, add_info_parser, add_validate_parser,
                add_preview_parser, add_export_parser, add_train_parser, add_eval_parser,
                add_export_model_parser):  # the order of `datagen --help`
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # zarr reads on an event loop: a chunk that fails to decode leaves its
        # sibling reads pending, and at exit asyncio logs each as "Task was destroyed" (ERROR)
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        return args.func(args)
    except DatagenError as exc:
        print(f"datagen {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        hint = ("; complete sequences are kept: run the same command again to resume"
                if args.command == "build" else "")
        print(f"datagen {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`datagen validate STORE | head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by the signal
    except Exception as exc:  # internal error: say so, keep the traceback for reports
        import traceback

        traceback.print_exc()
        print(textwrap.shorten(f"datagen {args.command}: internal error: {exc!r}", 300),
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
