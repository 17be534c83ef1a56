"""The record the renderer hands to every later stage: one frame as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One rendered frame. h, w = LR size; H, W = HR size. Row 0 is the top.

    See datagen.conventions for the meaning of every unit and sign.
    """

    color_lr: np.ndarray
    """(h, w, 3) float16, linear HDR, 1 jittered sample per pixel."""
    depth_lr: np.ndarray
    """(h, w) float32, metres along the view axis; sky +inf."""
    motion_lr: np.ndarray
    """(h, w, 2) float32, p_prev - p_cur in LR pixels, y down."""
    normal_lr: np.ndarray
    """(h, w, 3) float16, world space, unit (0 on sky)."""
    albedo_lr: np.ndarray
    """(h, w, 3) float16, linear base colour (0 on sky)."""
    material_lr: np.ndarray
    """(h, w, 2) float16, roughness and metallic."""
    object_id_lr: np.ndarray
    """(h, w) uint32, 0 = sky."""
    color_hr: np.ndarray
    """(H, W, 3) float16, linear HDR, mean of spp stratified samples (box filter)."""
    depth_hr: np.ndarray
    """(H, W) float32, at HR pixel centres."""
    motion_hr: np.ndarray
    """(H, W, 2) float32, p_prev - p_cur in HR pixels, at HR pixel centres."""
    jitter_px: np.ndarray
    """(2,) float32, LR sample offset from the pixel centre, LR pixels, y down."""
    view: np.ndarray
    """(4, 4) float32, world-to-camera at this frame."""
    proj: np.ndarray
    """(4, 4) float32, unjittered OpenGL projection."""
    exposure: float
    camera_cut: bool
    time_s: float
