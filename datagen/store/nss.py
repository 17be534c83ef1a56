"""``datagen export --format nss``: stored sequences in Arm's Neural Super Sampling
dataset layout (neural-graphics-model-gym, dataset specification v1.0.1), one NSS
root per split::

    OUT/SPLIT/NNNN.json                          per-sequence and per-frame metadata
    OUT/SPLIT/ground_truth/NNNN/FFFF.exr         R,G,B,A half: HR reference, linear HDR
    OUT/SPLIT/motion_gt/NNNN/FFFF.exr            R,G half: HR motion, UV, current - previous
    OUT/SPLIT/x{ratio}/color/NNNN/FFFF.exr       R,G,B,A half: jittered LR colour, linear HDR
    OUT/SPLIT/x{ratio}/depth/NNNN/FFFF.exr       R float: LR device depth in [0, 1], forward Z
    OUT/SPLIT/x{ratio}/motion/NNNN/FFFF.exr      R,G half: LR motion, UV, current - previous

NNNN is the sequence's index in its split, FFFF the frame (from 0000); ``ratio``
is the store's scale written as the spec names it (``2``, ``1_5``, ``1_7``). A store
of several ratios (``build --scale 2,1.5,1.7``) writes one ``x{ratio}`` folder per
ratio, the primary first in ``UpscalingRatiosIndices`` (``{"x2_index": 0,
"x1_5_index": 1, ...}``), and ``NormalizedPerRatioJitter[i]`` is ratio i's jitter
over its own LR size; ``Jitter`` and ``Samples`` are the primary ratio's.
The conversions are ``datagen.conventions`` functions (``nss_motion_uv``,
``device_depth``, ``normalized_jitter``, ``fov_rad``, ``near_far``,
``view_projection_rows``); docs/conventions.md lists the mapping field by field.

A sequence is streamed from the store one shard of frames at a time; its old
folders and JSON are removed first and the JSON is written last, atomically, so
a sequence without its JSON is an interrupted export.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from datagen import conventions as cv
from datagen.errors import StoreError
from datagen.exr import write_exr
from datagen.frame import Frame
from datagen.output import write_errors
from datagen.store.export import frames_of
from datagen.store.reader import SequenceInfo, Store

log = logging.getLogger(__name__)

NSS_VERSION = "1.0.1"
"""The NSS dataset specification version the export follows."""
ARM_READER_RATIOS = ("2",)
"""Ratio folder names Arm's NSSv1_0_1 reader handles today (it derives ``1_5`` wrongly)."""


def ratio_name(scale: float) -> str:
    """The spec's name of an upscaling ratio: 2 -> "2", 1.5 -> "1_5", 1.7 -> "1_7"."""
    return f"{scale:g}".replace(".", "_")


def image_dirs(root: Path, ratio: str) -> dict[str, Path]:
    """The five image folders of an NSS root (without the sequence level), by kind."""
    return {"ground_truth": root / "ground_truth", "motion_gt": root / "motion_gt",
            "color": root / f"x{ratio}" / "color", "depth": root / f"x{ratio}" / "depth",
            "motion": root / f"x{ratio}" / "motion"}


def _rgba(color: np.ndarray) -> dict[str, np.ndarray]:
    """(h, w, 3) linear colour as half R,G,B plus A = 1 (the spec's R16G16B16A16)."""
    rgb = np.asarray(color, np.float16)
    return {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2], "A": np.ones(rgb.shape[:2], np.float16)}


def _uv(motion: np.ndarray) -> dict[str, np.ndarray]:
    """(h, w, 2) datagen motion as NSS half R,G (UV of that buffer, current - previous)."""
    h, w = motion.shape[:2]
    uv = cv.nss_motion_uv(motion, (w, h)).astype(np.float16)
    return {"R": uv[..., 0], "G": uv[..., 1]}


def frame_images(frame: Frame) -> dict[str, dict[str, np.ndarray]]:
    """The channels of one frame's five NSS images, by kind (``image_dirs`` keys)."""
    return {"ground_truth": _rgba(frame.color_hr), "motion_gt": _uv(frame.motion_hr), **lr_images(frame)}


def lr_images(frame: Frame) -> dict[str, dict[str, np.ndarray]]:
    """The channels of one frame's three LR images (``color``, ``depth``, ``motion``)."""
    near, far = cv.near_far(frame.proj)
    return {
        "color": _rgba(frame.color_lr),
        "depth": {"R": cv.device_depth(frame.depth_lr, near, far).astype(np.float32)},
        "motion": _uv(frame.motion_lr),
    }


def _normalized(frame: Frame) -> dict[str, float]:
    h, w = frame.color_lr.shape[:2]
    nx, ny = (v + 0.0 for v in cv.normalized_jitter(frame.jitter_px, (w, h)).tolist())  # + 0.0: no -0.0
    return {"X": nx, "Y": ny}


def frame_record(frame: Frame, index: int, camera_cut: bool, others: Sequence[Frame] = ()) -> dict:
    """One entry of the JSON's ``Frames`` list (spec "Per-frame"); ``others``: the same
    frame at the store's extra ratios, whose normalised jitter follows the primary's."""
    fov_x, fov_y = cv.fov_rad(frame.proj)
    near, far = cv.near_far(frame.proj)
    jx, jy = (float(v) + 0.0 for v in frame.jitter_px)  # + 0.0: no -0.0 in the JSON
    return {
        "Frame": index,
        "FovX": fov_x,
        "FovY": fov_y,
        "CameraNearPlane": near,
        "CameraFarPlane": far,
        "ViewProjection": cv.view_projection_rows(frame.proj, frame.view),
        "Jitter": {"X": jx, "Y": jy},
        "NormalizedPerRatioJitter": [_normalized(f) for f in (frame, *others)],
        "Exposure": float(frame.exposure),
        "CameraCut": camera_cut,
    }


def frame_rate(times: Sequence[float], fallback: float) -> int:
    """Whole frames per second from frame times (s); ``fallback`` for one frame."""
    steps = np.diff(np.asarray(times, np.float64))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    return round(1.0 / float(np.median(steps))) if steps.size else round(fallback)


def sequence_doc(store: Store, info: SequenceInfo, frames: list[dict], times: list[float],
                 ratio: str | Sequence[str]) -> dict:
    """The per-sequence JSON (spec "Per-sequence"), plus a ``datagen`` provenance block
    that NSS readers ignore."""
    return {
        "Version": NSS_VERSION,
        "EmulatedFramerate": frame_rate(times, info.meta.get("fps", 30.0)),
        "TargetResolution": {"X": store.hr_size[0], "Y": store.hr_size[1]},
        "Samples": {"Sequence": "Halton", "Count": cv.jitter_phase_count(store.ratio[0]), "Quantized": False},
        "ReverseZ": False,
        "MotionVectorsDilated": False,
        "OpaqueOnlyColor_Exported": False,
        "UnjitteredSrcColor_Exported": False,
        "GTColorSpace": "Linear",
        "UpscalingRatiosIndices": {f"x{r}_index": i for i, r in enumerate([ratio] if isinstance(ratio, str)
                                                                        else ratio)},
        "Frames": frames,
        "datagen": {"split": info.split, "index": info.index, "scene": info.scene, "seed": info.seed,
                    "meta": info.meta, "store": str(store.path),
                    "schema_version": store.attrs["schema_version"], "conventions": store.conventions},
    }


def export_sequence(store: Store, info: SequenceInfo, root: Path, progress: Callable[[], object] | None = None
                    ) -> Path:
    """Write one complete sequence into the NSS root ``root``, at every ratio of the store;
    return its JSON path."""
    store, *extra = [store if scale == store.scale else Store(store.path, store.engine, scale)
                     for scale in store.scales]  # the primary ratio first
    ratios, name = [ratio_name(s) for s in store.scales], f"{info.index:04d}"
    dirs = {kind: folder / name for kind, folder in image_dirs(root, ratios[0]).items()}
    extra_dirs = [{kind: root / f"x{r}" / kind / name for kind in ("color", "depth", "motion")}
                  for r in ratios[1:]]
    final = root / f"{name}.json"
    final.unlink(missing_ok=True)
    for folder in [*dirs.values(), *(d for ratio_dirs in extra_dirs for d in ratio_dirs.values())]:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    records, times = [], []
    streams = [frames_of(at, info) for at in (store, *extra)]
    for t, (frame, *others) in enumerate(zip(*streams, strict=True)):
        for kind, channels in frame_images(frame).items():
            write_exr(dirs[kind] / f"{t:04d}.exr", channels)
        for ratio_dirs, other in zip(extra_dirs, others, strict=True):
            for kind, channels in lr_images(other).items():
                write_exr(ratio_dirs[kind] / f"{t:04d}.exr", channels)
        records.append(frame_record(frame, t, camera_cut=t == 0 or bool(frame.camera_cut), others=others))
        times.append(frame.time_s)
        if progress is not None:
            progress()
    tmp = final.with_name(final.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(sequence_doc(store, info, records, times, ratios), fh, indent=1, allow_nan=False)
        fh.write("\n")
    os.replace(tmp, final)
    return final


def export_nss(store: Store, sequences: Sequence[SequenceInfo], out: str | os.PathLike,
               progress: Callable[[], object] | None = None) -> list[Path]:
    """Write each complete sequence of ``sequences`` into the NSS root ``out/SPLIT``;
    return the JSON paths. ``progress`` is called after every frame."""
    out = Path(out)
    for scale in store.scales:
        if ratio_name(scale) not in ARM_READER_RATIOS:
            log.warning("scale %g is written as x%s as the NSS spec names it; Arm's NSSv1_0_1 reader "
                        "handles x2 only", scale, ratio_name(scale))
    written = []
    for info in sequences:
        if not info.complete:
            raise StoreError(f"{info.split} sequence {info.index} is not complete; export complete sequences "
                             "only (run the build again to finish it)")
        with write_errors(out, "write the export"):
            written.append(export_sequence(store, info, out / info.split, progress))
        log.info("exported %s sequence %d as NSS to %s", info.split, info.index, out / info.split)
    return written
