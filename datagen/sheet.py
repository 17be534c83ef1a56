"""Contact sheets of the scenes for the docs: ``python -m datagen.sheet``.

Renders one frame of every scene recipe and lays them out one row per scene:
LR (upscaled nearest), HR reference, HR motion (colour wheel) and HR depth,
tonemapped for viewing. Writes docs/images/scenes.png (all scenes),
docs/images/racing.png (the README picture) and docs/images/compose.png (a
composed scene with its hard cases). ``make sheets`` runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from datagen import conventions as cv
from datagen.images import contact_sheet, depth_to_rgb, motion_to_rgb, tonemap, upscale_nearest
from datagen.output import preview_image
from datagen.render import RenderConfig, Renderer
from datagen.scenes import recipes

SHOWCASE_FRAME = {"racing": 112}
"""A frame worth showing per scene (racing: a car passing the fence); others use 30."""


def scene_tiles(renderer: Renderer, name: str) -> tuple[list[np.ndarray], object]:
    scene = recipes.load(name).build(seed=0)
    frame = renderer.render(scene, SHOWCASE_FRAME.get(name, 30))
    h, w = frame.color_hr.shape[:2]
    return [upscale_nearest(tonemap(frame.color_lr, frame.exposure), (w, h)),
            tonemap(frame.color_hr, frame.exposure), motion_to_rgb(frame.motion_hr),
            depth_to_rgb(frame.depth_hr)], frame


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m datagen.sheet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/images", help="folder for the PNGs")
    parser.add_argument("--res", default="320x180", help="HR size of each tile")
    args = parser.parse_args(argv)
    w, h = cv.parse_size(args.res, "--res")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tiles, labels = [], []
    with Renderer(RenderConfig(w, h, 2.0, 16)) as renderer:
        for name in recipes.available():
            row, _ = scene_tiles(renderer, name)
            tiles += row
            labels += [f"{name} LR", f"{name} HR (16 spp)", "motion_hr", "depth_hr"]
    iio.imwrite(out / "scenes.png", contact_sheet(tiles, labels, cols=4), optimize=True)
    with Renderer(RenderConfig(640, 360, 2.0, 16)) as renderer:
        for name in ("racing", "compose"):
            _, frame = scene_tiles(renderer, name)
            iio.imwrite(out / f"{name}.png", preview_image(frame), optimize=True)


if __name__ == "__main__":
    main()
