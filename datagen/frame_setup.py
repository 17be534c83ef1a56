"""What the passes of one frame share, computed on the CPU before any GL call: the
camera matrices of each pass, every node's draw with the uniforms that stay fixed
across the passes, and the sun's shadow projection. GL-free: ``datagen.render``
draws with it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from datagen import conventions as cv
from datagen.scene import Node, Scene

NDC_TO_UNIT = np.array([[0.5, 0, 0, 0.5], [0, 0.5, 0, 0.5], [0, 0, 0.5, 0.5], [0, 0, 0, 1.0]])


def ortho(l: float, r: float, b: float, t: float, n: float, f: float) -> np.ndarray:  # noqa: E741
    m = np.eye(4)
    m[0, 0], m[1, 1], m[2, 2] = 2 / (r - l), 2 / (t - b), -2 / (f - n)
    m[:3, 3] = -(r + l) / (r - l), -(t + b) / (t - b), -(f + n) / (f - n)
    return m


def shadow_view_proj(scene: Scene) -> np.ndarray:
    """Orthographic sun view covering the scene bounds."""
    lo, hi = scene.bounds
    centre, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2
    d = np.asarray(scene.sun.direction, dtype=np.float64)
    d /= np.linalg.norm(d)
    view = cv.look_at(centre + d * radius * 2, centre)
    return ortho(-radius, radius, -radius, radius, radius * 0.5, radius * 3.5) @ view


def rotation_only(view: np.ndarray) -> np.ndarray:
    r = view.copy()
    r[:3, 3] = 0
    return r


class PassCamera(NamedTuple):
    """The camera matrices of one pass: float64 (4, 4), row-major, world to clip space."""

    view: np.ndarray
    """world to eye at the frame's time."""
    view_prev: np.ndarray
    """world to eye one frame earlier (for motion vectors)."""
    proj_raster: np.ndarray
    """the projection the pass rasterises with: jittered for the LR pass and each HR
    sample, ``proj`` itself for the HR motion and depth."""
    proj: np.ndarray
    """the unjittered projection (motion vectors and depth are measured with it)."""


@dataclass(eq=False)
class Draw:
    """One node's draw in one frame: its world matrices now and one frame
    earlier, and every uniform that does not change between the frame's passes,
    computed once (bytes for matrices, values for the rest)."""

    node: Node
    model: np.ndarray
    model_prev: np.ndarray
    matrices: dict[str, bytes] = dataclasses.field(default_factory=dict)
    values: dict[str, object] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class FrameSetup:
    """What every pass of a frame shares (``Renderer.prepare``)."""

    frame_index: int
    """the frame's index in its sequence."""
    t: float
    """the frame's time in seconds."""
    cam: PassCamera
    """the unjittered camera (``proj_raster`` is ``proj``)."""
    jitter: tuple[float, float]
    """the LR sample's offset from the pixel centre, in LR pixels (``conventions.jitter_px``)."""
    draws: list[Draw]
    """every drawn node, in scene order."""


def draw_order(draws: list[Draw], view: np.ndarray, blend: bool) -> list[Draw]:
    """The draws of one kind, in drawing order.

    By eye-space z of each node's origin: alpha-blended nodes back to front
    (for "over"), opaque ones front to back so that the early depth test skips
    hidden fragments.
    """
    todo = [d for d in draws if (d.node.material.alpha_mode == "BLEND") == blend]
    todo.sort(key=lambda d: (view @ d.model[:, 3])[2], reverse=not blend)
    return todo


def frame_setup(scene: Scene, frame_index: int, hr_size: tuple[int, int], ratio_x: float) -> FrameSetup:
    """Frame ``frame_index`` of ``scene`` for HR targets of ``hr_size`` pixels and an
    LR ratio (HR / LR along x) of ``ratio_x``, which sets the jitter sequence."""
    t, t_prev = scene.frame_time(frame_index), scene.frame_time(frame_index - 1)
    camera = scene.camera
    view, view_prev = camera.view(t), camera.view(t_prev)
    proj = cv.perspective(camera.fov_y_deg, hr_size[0] / hr_size[1], camera.near, camera.far)
    jitter = cv.jitter_px(frame_index, ratio_x)
    draws = prepare_draws(scene, t, t_prev, view, view_prev, proj)
    return FrameSetup(frame_index, t, PassCamera(view, view_prev, proj, proj), jitter, draws)


def prepare_draws(scene: Scene, t: float, t_prev: float, view: np.ndarray, view_prev: np.ndarray,
                  proj: np.ndarray) -> list[Draw]:
    """Every node's draw record for the frame: the uniforms that stay fixed
    across its passes, computed once."""
    shadow_vp = shadow_view_proj(scene)
    shadow = NDC_TO_UNIT @ shadow_vp
    draws = []
    for (node, model), (_, model_prev) in zip(scene.walk(t), scene.walk(t_prev), strict=True):
        m = node.material
        normal_mat = np.linalg.inv(model[:3, :3]).T
        draws.append(Draw(node, model, model_prev, matrices={
            "u_model": cv.gl_bytes(model),
            "u_mvp_cur": cv.gl_bytes(proj @ view @ model),
            "u_mvp_prev": cv.gl_bytes(proj @ view_prev @ model_prev),
            "u_shadow_mvp": cv.gl_bytes(shadow @ model),
            "u_normal_mat": np.ascontiguousarray(normal_mat.T, dtype="f4").tobytes(),
            "u_mvp": cv.gl_bytes(shadow_vp @ model),
        }, values={
            "u_mv_row2": tuple((view @ model)[2]),
            "u_object_id": node.object_id,
            "u_base_color": tuple(m.base_color),
            "u_metallic": m.metallic,
            "u_roughness": m.roughness,
            "u_emissive": tuple(m.emissive),
            "u_alpha_cutoff": m.alpha_cutoff,
            "u_alpha_factor": m.base_color[3],
        }))
    return draws
