"""The ``datagen`` command line. The only module that prints or draws progress.

Exit codes: 0 success, 2 bad input (one line on stderr saying what to fix),
1 internal error.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import textwrap
from pathlib import Path

from datagen import __version__
from datagen.errors import ConfigError, DatagenError

log = logging.getLogger("datagen")

RENDER_EXAMPLES = """\
examples:
  datagen render primitives --out storage/render/primitives
  datagen render primitives --frames 4 --res 640x360 --scale 2 --spp 32 --out /tmp/p
  datagen render path/to/recipe.toml --seed 7 --out /tmp/r

writes DIR/lr/NNNN.exr (R,G,B, Z, backward.u/v, N.X/Y/Z, albedo.R/G/B, roughness,
metallic, objectId), DIR/hr/NNNN.exr (R,G,B, Z, backward.u/v), DIR/sequence.json
and DIR/preview/NNNN.png; conventions in docs/conventions.md.
"""

BENCH_EXAMPLES = """\
examples:
  datagen bench --quick
  datagen bench --out storage/bench.json

figures (SPEC §8): render frames/s (LR + G-buffer + 16-spp HR, primitives, 1920x1080,
scale 2) against a bare moderngl loop drawing the same passes in the same run.
"""


def parse_res(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080), or ConfigError."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--res {text!r} is not WIDTHxHEIGHT, e.g. 1920x1080") from None
    if w < 1 or h < 1:
        raise ConfigError(f"--res {text!r} must be positive")
    return w, h


def _positive(name: str):
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {value}")
        return value
    return check


def render_config(args) -> object:
    from datagen.render import RenderConfig

    w, h = parse_res(args.res)
    config = RenderConfig(hr_width=w, hr_height=h, scale=args.scale, spp=args.spp)
    config.check()
    return config


def cmd_render(args) -> int:
    from tqdm import tqdm

    from datagen import conventions as cv
    from datagen import recipes
    from datagen.output import write_sequence_dir
    from datagen.render import Renderer

    recipe = recipes.load(args.scene)
    config = render_config(args)
    scene = recipe.build(args.seed)
    cam = scene.camera
    meta = {
        "conventions": cv.conventions_block(config.scale, config.spp, cam.near, cam.far),
        "config": {
            "scene": recipe.name, "recipe": dataclasses.asdict(recipe), "seed": args.seed,
            "frames": args.frames, "render": dataclasses.asdict(config),
            "fps": scene.fps, "fov_y_deg": cam.fov_y_deg, "datagen_version": __version__,
        },
    }
    out = Path(args.out)
    with Renderer(config) as renderer, tqdm(total=args.frames, unit="frame",
                                            desc=f"render {recipe.name}") as bar:
        frames = (renderer.render(scene, i) for i in range(args.frames))
        write_sequence_dir(out, frames, meta, progress=lambda *_: bar.update())
    print(f"wrote {args.frames} frames of {recipe.name} "
          f"({config.lr_size[0]}x{config.lr_size[1]} LR, {config.hr_width}x{config.hr_height} HR, "
          f"{config.spp} spp) to {out}")
    return 0


def cmd_bench(args) -> int:
    import json

    from datagen.bench import run_bench

    result = run_bench(quick=args.quick, progress=lambda msg: print(msg, file=sys.stderr))
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datagen",
        description="Training data for neural temporal supersampling: jittered LR G-buffers and "
                    "supersampled HR references, rendered headless with OpenGL.",
        epilog="run `datagen COMMAND --help` for a command's options and examples",
    )
    parser.add_argument("--version", action="version", version=f"datagen {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("render", help="render one sequence to OpenEXR + PNG previews",
                       epilog=RENDER_EXAMPLES, formatter_class=fmt,
                       description="Render one sequence of a scene for inspection.")
    p.add_argument("scene", metavar="SCENE", help="recipe name in scenes/ or path to a .toml")
    p.add_argument("--frames", type=_positive("--frames"), default=8, help="frames (default 8)")
    p.add_argument("--res", default="1920x1080", help="HR (target) WIDTHxHEIGHT (default 1920x1080)")
    p.add_argument("--scale", type=float, default=2.0, help="LR = HR / scale: 1.5, 1.7, 2, 3 or 4")
    p.add_argument("--spp", type=int, default=16, help="HR samples per pixel, 8-256 (default 16)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("bench", help="benchmarks of SPEC §8", epilog=BENCH_EXAMPLES,
                       formatter_class=fmt, description="Measure the §8 figures as ratios in one run.")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument("--out", metavar="FILE.json", help="also write the JSON here")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except DatagenError as exc:
        print(f"datagen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("datagen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # internal error: say so, keep the traceback for reports
        import traceback

        traceback.print_exc()
        print(textwrap.shorten(f"datagen {args.command}: internal error: {exc!r}", 300),
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
