"""Helpers the store tests share: a small store, sequence metadata, version edits, mounts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import zarr

from datagen import conventions as cv
from datagen.store import create_store

CONFIG = {"scenes": ["primitives"], "spp": 8, "nested": {"a": [1, 2.5, "x"], "b": None}}

META = {"scene": "primitives", "seed": 7, "camera": {"rig": "dolly", "speed": 1.0},
        "augmentation": ["flip_x"]}


def make_store(path, frames=3, hr=(14, 10), scale=2.0, splits=None, config=CONFIG, **kwargs) -> Path:
    """An empty store (train 2, val 1 sequences unless ``splits``), spp 8, near 0.1, far 100."""
    return create_store(path, config, splits or {"train": 2, "val": 1}, frames, hr, scale,
                        cv.conventions_block(scale, 8, 0.1, 100.0), **kwargs)


def set_schema_version(path: Path, version: int) -> None:
    root = zarr.open_group(path, mode="r+")
    root.attrs["schema_version"] = version


def mount(*args: str) -> None:
    """Run mount(8); skip the test where mounting is not allowed."""
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount here (needs root and CAP_SYS_ADMIN): {done.stderr.strip()}")


def rendered_primitives_store(path: Path, ctx, splits: dict[str, int], frames: int, hr: tuple[int, int],
                              scale: float, spp: int, seed_step: int) -> Path:
    """A real rendered store of ``primitives`` sequences: sequence i of a split has seed
    ``seed_step * i + len(split)``; rendered on the session's GL context ``ctx``."""
    from datagen.render import RenderConfig, Renderer
    from datagen.scenes import generate
    from datagen.store.writer import write_sequence

    cam = generate("primitives", {}, 0).camera
    path = create_store(path, {"scene": "primitives"}, splits, frames, hr, scale,
                        cv.conventions_block(scale, spp, cam.near, cam.far))
    ctx.__enter__()
    renderer = Renderer(RenderConfig(*hr, scale, spp, shadow_map_size=256), ctx=ctx)
    try:
        for split, count in splits.items():
            for index in range(count):
                seed = seed_step * index + len(split)
                scene = generate("primitives", {}, seed)
                write_sequence(path, split, index, (renderer.render(scene, t) for t in range(frames)),
                               {"scene": "primitives", "seed": seed})
    finally:
        renderer.close()
        ctx.__exit__(None, None, None)
    return path
