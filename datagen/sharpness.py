"""How sharp the LR pass's textures are: the measurement behind ``RenderConfig.lr_probes``.

    python -m datagen.sharpness --res 640x360 --probes 1,2,4,8,16

Renders LR frames of two views that need anisotropic filtering — the racing
track (road, paint, curbs) under the chase camera and the city's facades along
a street, both at grazing angles — once per texture filter: the shader's probes
at each budget, and the GL driver's own 16x anisotropic filtering (what the LR
pass used before the probes; on llvmpipe its cost has no bound). Per filter it
reports, over the grazing-angle pixels of those surfaces:

- ``sharpness``: the mean gradient magnitude of the tonemapped LR luminance
  (|dL/dx| + |dL/dy|, neighbours inside the mask), the usual acutance measure:
  trilinear filtering blurs the far road and facades, so it scores low;
- ``vs_driver``: that sharpness over the driver's 16x;
- ``diff_driver``: the mean |L - L_driver|, how far the image is from the driver's.

Only the LR pass matters here, so the HR reference is rendered at 1 spp.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from datagen import conventions as cv
from datagen import recipes
from datagen.frame import Frame
from datagen.scene import Scene

VIEWS = {  # scene -> (node names whose surfaces are judged, frames)
    "racing": (("road", "paint", "curbs"), (10, 40, 60)),
    "city": (("facades0", "facades1", "facades2"), (0, 30, 60)),
}
GRAZING_COS = 0.15
"""A pixel is seen at a grazing angle when |cos| of the angle between its surface
normal and its view ray is below this (more than 81 degrees from head-on)."""


def luminance(frame: Frame) -> np.ndarray:
    """(h, w) tonemapped luminance c / (1 + c) of the exposed LR colour."""
    c = np.maximum(frame.color_lr.astype(np.float64), 0.0) * frame.exposure
    y = c @ np.array([0.2126, 0.7152, 0.0722])
    return y / (1.0 + y)


def grazing_mask(frame: Frame, scene: Scene, names: tuple[str, ...]) -> np.ndarray:
    """(h, w) bool: pixels of the named nodes seen at a grazing angle, with their four
    neighbours in the mask too (so gradients stay inside the surfaces)."""
    ids = [n.object_id for n in scene.drawables() if n.name in names]
    h, w = frame.depth_lr.shape
    on = np.isin(frame.object_id_lr, ids)
    ndc = (cv.pixel_centres((w, h)) + frame.jitter_px) / (w, h) * 2.0 - 1.0
    ndc[..., 1] *= -1.0
    inv = np.linalg.inv(frame.proj.astype(np.float64) @ frame.view.astype(np.float64))
    far = np.concatenate([ndc, np.ones((h, w, 2))], -1) @ inv.T
    near = np.concatenate([ndc, -np.ones((h, w, 1)), np.ones((h, w, 1))], -1) @ inv.T
    ray = far[..., :3] / far[..., 3:] - near[..., :3] / near[..., 3:]
    ray /= np.linalg.norm(ray, axis=-1, keepdims=True)
    cos = np.abs((ray * frame.normal_lr.astype(np.float64)).sum(-1))
    mask = on & (cos < GRAZING_COS)
    inner = mask.copy()
    inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    return inner


def sharpness(lum: np.ndarray, mask: np.ndarray) -> float:
    """Mean |dL/dx| + |dL/dy| (central differences / 2) over ``mask``."""
    gx = np.abs(np.roll(lum, -1, 1) - np.roll(lum, 1, 1)) / 2
    gy = np.abs(np.roll(lum, -1, 0) - np.roll(lum, 1, 0)) / 2
    return float((gx + gy)[mask].mean())


def measure(res: tuple[int, int], probes: tuple[int, ...], scale: float = 2.0) -> dict:
    """{view: {filter: figures}} for each view of ``VIEWS`` (module docstring)."""
    from datagen.render import RenderConfig, Renderer

    filters = {"driver16": {"driver_anisotropy": 16.0}, **{f"probes{k}": {"lr_probes": k} for k in probes}}
    out: dict = {}
    for scene_name, (names, frames) in VIEWS.items():
        scene = recipes.load(scene_name).build(0)
        lums: dict[str, list[np.ndarray]] = {}
        seconds: dict[str, float] = {}
        masks = []
        for label, options in filters.items():
            config = RenderConfig(res[0], res[1], scale, spp=1, **options)
            with Renderer(config) as renderer:
                renderer.render(scene, frames[0])  # warm-up: upload, compile
                lums[label], total = [], 0.0
                for i in frames:
                    start = time.process_time()
                    frame = renderer.render(scene, i)
                    total += time.process_time() - start
                    lums[label].append(luminance(frame))
                    if label == "driver16":
                        masks.append(grazing_mask(frame, scene, names))
                seconds[label] = total / len(frames)
        ref = [sharpness(lum, m) for lum, m in zip(lums["driver16"], masks, strict=True)]
        out[scene_name] = {"pixels": [int(m.sum()) for m in masks], "frames": list(frames)}
        for label in filters:
            sharp = [sharpness(lum, m) for lum, m in zip(lums[label], masks, strict=True)]
            diff = [float(np.abs(lum - d)[m].mean())
                    for lum, d, m in zip(lums[label], lums["driver16"], masks, strict=True)]
            out[scene_name][label] = {
                "sharpness": float(np.mean(sharp)),
                "vs_driver": float(np.mean(sharp) / np.mean(ref)),
                "diff_driver": float(np.mean(diff)),
                "cpu_s_per_frame": seconds[label],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--res", default="640x360", help="HR size; LR = HR / scale")
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--probes", default="1,2,4,8,16", help="probe budgets to compare")
    args = parser.parse_args()
    w, h = (int(v) for v in args.res.split("x"))
    result = measure((w, h), tuple(int(k) for k in args.probes.split(",")), args.scale)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
