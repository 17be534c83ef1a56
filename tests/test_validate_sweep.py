"""A clean build validates: every scene with no augmentation and with each augmentation,
rendered at 64x36 and 128x72 into real stores, passes every check of validate; and the
sequence of the issue's 128x72 racing build that failed motion_warp (val 0: chase shot,
left-right flip, stride 2), rendered by the build's own worker code, passes the real
`datagen validate`.

Kept small: 3 frames, 8 spp, one seed per scene, scenes built and rendered once (each
augmentation but the stride applies to rendered frames, as the build's does), with the
renderer's own bounded LR texture filtering.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from datagen import conventions as cv
from datagen.pipeline.augment import Augmentation, with_stride
from datagen.store import create_store, open_store, write_sequence
from datagen.store.validate import validate as check_store

SCALE, SPP, FRAMES = 2.0, 8, 3
SCENES = {"racing": {"first_shot": "chase"}, "city": {}, "forest": {}, "showroom": {}, "primitives": {}}


def augmentations(w: int, h: int) -> dict[str, Augmentation]:
    """No augmentation and each one alone; crops are aligned to the scale's step (2)."""
    half = (w // 4 * 2, h // 4 * 2)
    return {
        "none": Augmentation(), "hflip": Augmentation(hflip=True), "vflip": Augmentation(vflip=True),
        "rot180": Augmentation(quarter_turns=2), "exposure": Augmentation(exposure_ev=1.5),
        "white_balance": Augmentation(wb_gains=(1.25, 0.93, 0.8)), "hue": Augmentation(hue_deg=60.0),
        "stride": Augmentation(stride=2), "crop": Augmentation(crop=(w // 4 * 2, 0, *half)),
        "rot90": Augmentation(quarter_turns=1, crop=(2, 0, h, h)),
    }


@pytest.fixture(scope="module")
def scenes():
    from datagen.scenes import recipes

    out = {}
    for name, params in SCENES.items():
        recipe = recipes.load(name)
        out[name] = dataclasses.replace(recipe, params={**recipe.params, **params}).build(1)
    return out


@pytest.mark.parametrize("res", [(64, 36), (128, 72)])
def test_every_scene_and_augmentation_validates_clean(gl_session_ctx, scenes, tmp_path, res):
    from datagen.render import RenderConfig, Renderer

    cams = [scene.camera for scene in scenes.values()]
    conventions = cv.conventions_block(SCALE, SPP, min(c.near for c in cams), max(c.far for c in cams))
    groups: dict[tuple[int, int], list[tuple[str, str, Augmentation]]] = {}
    for aug_name, aug in augmentations(*res).items():
        for name in scenes:
            groups.setdefault(aug.stored_size(res), []).append((name, aug_name, aug))
    ctx = gl_session_ctx
    ctx.__enter__()
    renderer = Renderer(RenderConfig(*res, SCALE, SPP, shadow_map_size=512), ctx=ctx)
    try:
        stores, rendered = [], {}
        for size, items in groups.items():
            path = create_store(tmp_path / f"{size[0]}x{size[1]}.zarr", {"sweep": True},
                                {"train": len(items)}, FRAMES, size, SCALE, conventions)
            for index, (name, aug_name, aug) in enumerate(items):
                key = (name, aug.stride)  # augmentations apply to rendered frames: render each once
                if key not in rendered:
                    scene = with_stride(scenes[name], aug.stride)
                    rendered[key] = [renderer.render(scene, t) for t in range(FRAMES)]
                frames = (aug.apply(frame) for frame in rendered[key])
                write_sequence(path, "train", index, frames, {"scene": name, "seed": 1, "variant": aug_name,
                                                              "augmentation": aug.to_json()})
            stores.append((path, items))
    finally:
        renderer.close()
        error = ctx.error
        ctx.__exit__(None, None, None)
    assert error == "GL_NO_ERROR"
    assert sum(len(items) for _, items in stores) == len(SCENES) * len(augmentations(*res))
    for path, items in stores:
        failures = [f"{failure}  [{items[failure.sequence][0]} {items[failure.sequence][1]}]"
                    for failure in check_store(open_store(path))]
        assert failures == []


def test_the_issue_build_sequence_validates(tmp_path):
    """val 0 of `datagen build racing --sequences 8 --frames 6 --res 128x72 --scale 2 --spp 8`,
    written by the build's worker code into a store of that build's shape."""
    from datagen.pipeline.build import store_config
    from datagen.pipeline.plan import load_config, plan, split_sizes
    from datagen.pipeline.worker import close_renderer, render_sequence_task

    config = load_config(None, scenes=("racing",), sequences=8, frames=6, res="128x72", scale=2.0, spp=8)
    tasks = plan(config)
    (task,) = [t for t in tasks if (t.split, t.index) == ("val", 0)]
    assert task.augmentation.hflip and task.augmentation.stride == 2
    assert dict(task.params)["first_shot"] == "chase"
    from datagen.scenes import recipes

    cam = recipes.load("racing").build(task.seed).camera
    path = create_store(tmp_path / "B.zarr", store_config(config, {"racing": recipes.load("racing")}),
                        split_sizes(tasks), config.frames, config.hr_size, config.scale,
                        cv.conventions_block(config.scale, config.spp, cam.near, cam.far))
    try:
        render_sequence_task(str(path), task, config)
    finally:
        close_renderer()
    proc = subprocess.run([sys.executable, "-m", "datagen", "validate", str(path), "--split", "val",
                           "--sequence", "0"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "LP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout
    assert "motion_warp 5" in proc.stdout  # every frame after the first judged
