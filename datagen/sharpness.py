"""How sharp the LR pass's textures are: the measurement behind ``RenderConfig.lr_probes``.

    python -m datagen.sharpness --res 640x360 --probes 1,2,4,8,16

Renders LR frames of two views that need anisotropic filtering — the racing
track (road, paint, curbs) under the chase camera and the city's facades along
a street, both at grazing angles — once per texture filter: the shader's probes
at each budget, and the GL driver's own 16x anisotropic filtering (what the LR
pass used before the probes; on llvmpipe its cost has no bound). Per filter and
per class of viewing angle (``ANGLES``: the angle between surface normal and view
ray, from the G-buffer) it reports, over those surfaces' pixels:

- ``sharpness``: the mean gradient magnitude of the tonemapped LR luminance
  (|dL/dx| + |dL/dy|, neighbours on the same surfaces), the usual acutance
  measure: trilinear filtering blurs the far road and facades, so it scores low
  (aliasing would score high too: read it with the difference below);
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
from datagen.frame import Frame
from datagen.scene import Scene
from datagen.scenes import recipes

VIEWS = {  # scene -> (node names whose surfaces are judged, frames)
    "racing": (("road", "paint", "curbs"), (10, 40, 60)),
    "city": (("facades0", "facades1", "facades2"), (0, 30, 60)),
}
ANGLES = {"81-87 deg": (0.05, 0.15), "87-90 deg": (0.0, 0.05)}
"""Classes of grazing pixels by |cos| of the angle between surface normal and view ray:
footprints about 7-20 and over 20 times longer than wide."""


def luminance(frame: Frame) -> np.ndarray:
    """(h, w) tonemapped luminance c / (1 + c) of the exposed LR colour."""
    c = np.maximum(frame.color_lr.astype(np.float64), 0.0) * frame.exposure
    y = c @ np.array([0.2126, 0.7152, 0.0722])
    return y / (1.0 + y)


def grazing_mask(frame: Frame, scene: Scene, names: tuple[str, ...],
                 cos_range: tuple[float, float]) -> np.ndarray:
    """(h, w) bool: pixels of the named nodes seen with |cos| (normal, view ray) in
    ``cos_range``, with their four neighbours on those nodes too (so gradients stay
    inside the surfaces)."""
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
    inner = on & (cos >= cos_range[0]) & (cos < cos_range[1])
    inner[1:-1, 1:-1] &= on[:-2, 1:-1] & on[2:, 1:-1] & on[1:-1, :-2] & on[1:-1, 2:]
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    return inner


def sharpness(lum: np.ndarray, mask: np.ndarray) -> float:
    """Mean |dL/dx| + |dL/dy| (central differences / 2) over ``mask``."""
    gx = np.abs(np.roll(lum, -1, 1) - np.roll(lum, 1, 1)) / 2
    gy = np.abs(np.roll(lum, -1, 0) - np.roll(lum, 1, 0)) / 2
    return float((gx + gy)[mask].mean())


def measure(res: tuple[int, int], probes: tuple[int, ...], scale: float = 2.0) -> dict:
    """{view: {"pixels": {angle class: per frame}, filter: {angle class: figures}}} for
    each view of ``VIEWS`` (module docstring); figures of the driver's filter are the
    reference."""
    from datagen.render import RenderConfig, Renderer

    filters = {"driver16": {"driver_anisotropy": 16.0}, **{f"probes{k}": {"lr_probes": k} for k in probes}}
    out: dict = {}
    for scene_name, (names, frames) in VIEWS.items():
        scene = recipes.load(scene_name).build(0)
        lums: dict[str, list[np.ndarray]] = {}
        seconds: dict[str, float] = {}
        masks: dict[str, list[np.ndarray]] = {a: [] for a in ANGLES}
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
                        for angle, cos_range in ANGLES.items():
                            masks[angle].append(grazing_mask(frame, scene, names, cos_range))
                seconds[label] = total / len(frames)
        view = out[scene_name] = {"frames": list(frames),
                                  "pixels": {a: [int(m.sum()) for m in ms] for a, ms in masks.items()}}
        for label in filters:
            view[label] = {"cpu_s_per_frame": seconds[label]}
            for angle, ms in masks.items():
                sharp = np.mean([sharpness(lum, m) for lum, m in zip(lums[label], ms, strict=True)])
                ref = np.mean([sharpness(lum, m) for lum, m in zip(lums["driver16"], ms, strict=True)])
                diff = np.mean([np.abs(lum - d)[m].mean()
                                for lum, d, m in zip(lums[label], lums["driver16"], ms, strict=True)])
                view[label][angle] = {"sharpness": float(sharp), "vs_driver": float(sharp / ref),
                                      "diff_driver": float(diff)}
    return out


def table(result: dict) -> str:
    """The figures as a Markdown table: one row per view and filter."""
    angles = list(ANGLES)
    lines = ["| view | filter | CPU s a frame | " + " | ".join(
        f"{a}: sharpness (vs driver) | {a}: mean diff to driver" for a in angles) + " |",
        "| --- | --- | --- | " + " | ".join("--- | ---" for _ in angles) + " |"]
    for view, figures in result.items():
        for label, f in figures.items():
            if not isinstance(f, dict) or "cpu_s_per_frame" not in f:
                continue
            cells = [f"{f[a]['sharpness']:.4f} ({f[a]['vs_driver']:.3f}) | {f[a]['diff_driver']:.4f}"
                     for a in angles]
            lines.append(f"| {view} | {label} | {f['cpu_s_per_frame']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--res", default="640x360", help="HR size; LR = HR / scale")
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--probes", default="1,2,4,8,16", help="probe budgets to compare")
    args = parser.parse_args()
    w, h = cv.parse_size(args.res, "--res")
    result = measure((w, h), tuple(int(k) for k in args.probes.split(",")), args.scale)
    print(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    main()
