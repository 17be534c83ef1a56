"""Classical upscalers the model is compared with, in torch.

- ``bicubic``: spatial upscaling of the LR frame alone (jitter ignored, no history).
- ``Taau``: temporal anti-aliasing upsampling, the method DLSS replaced. Each HR
  pixel takes the LR sample nearest to its centre (SPEC §4 positions: LR pixel x
  was sampled at x + 0.5 + jx), weighted by a Gaussian of the distance; the
  history is reprojected with the upsampled motion vectors (bilinear), clamped
  to the min/max of the current LR frame's 3x3 neighbourhood (to reject stale
  history after disocclusion or shading change), and blended by accumulated
  weight, capped so that the history adapts. On a static scene with jitter the
  sub-pixel samples of successive frames accumulate into a sharper image than
  any single LR frame gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from datagen.train.model import (
    Ratio,
    lr_coords,
    ratio_xy,
    sample_at,
    upsample_jittered,
    upsample_motion,
    warp,
)


def bicubic(color_lr: torch.Tensor, hr_size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, h, w) -> (B, 3, H, W), clamped to >= 0 (bicubic overshoots)."""
    return F.interpolate(color_lr, size=hr_size, mode="bicubic", align_corners=False).clamp_min(0)


@dataclass(frozen=True)
class TaauConfig:
    """Knobs of the TAAU baseline."""

    sigma_hr: float = 0.5
    """Gaussian width of a sample's weight, in HR pixels from the HR pixel centre."""
    max_history: float = 16.0
    """cap on the accumulated history weight (about that many frames' worth)."""
    clamp: bool = True
    """clamp the reprojected history to the LR 3x3 neighbourhood's min/max."""


class Taau:
    """Stateful TAAU over one sequence: call ``step`` per frame, in order."""

    def __init__(self, ratio: Ratio, config: TaauConfig = TaauConfig()):
        """``ratio``: HR / LR, one number or per axis (x, y): the store's ``ratio``."""
        self.ratio, self.config = ratio_xy(ratio), config
        self.color: torch.Tensor | None = None
        self.weight: torch.Tensor | None = None

    def reset(self) -> None:
        self.color = self.weight = None

    def step(self, color_lr: torch.Tensor, motion_lr: torch.Tensor, jitter: torch.Tensor,
             hr_size: tuple[int, int], camera_cut: bool = False) -> torch.Tensor:
        """One frame: color_lr (B, 3, h, w), motion_lr (B, 2, h, w) LR px, jitter (B, 2)
        -> HR colour (B, 3, H, W), linear HDR."""
        s, c = self.ratio, self.config
        h, w = color_lr.shape[-2:]
        fx, fy = lr_coords(hr_size, s, jitter)
        nx, ny = fx.round().clamp(0, w - 1), fy.round().clamp(0, h - 1)
        sample = sample_at(color_lr, nx + 0.5, ny + 0.5, mode="nearest")
        dist2 = ((fx - nx) * s[0]) ** 2 + ((fy - ny) * s[1]) ** 2  # HR pixels
        weight = torch.exp(-dist2 / (2 * c.sigma_hr ** 2))[:, None]
        fallback = upsample_jittered(color_lr, hr_size, s, jitter)
        if self.color is None or camera_cut:
            hist, hist_w = fallback, torch.zeros_like(weight)
        else:
            motion = upsample_motion(motion_lr, hr_size, s, jitter)
            hist, outside = warp(self.color, motion)
            hist_w, _ = warp(self.weight, motion)
            hist_w = hist_w * (1 - outside)
            if c.clamp:
                lo = -F.max_pool2d(-color_lr, 3, stride=1, padding=1)
                hi = F.max_pool2d(color_lr, 3, stride=1, padding=1)
                lo = sample_at(lo, nx + 0.5, ny + 0.5, mode="nearest")
                hi = sample_at(hi, nx + 0.5, ny + 0.5, mode="nearest")
                hist = torch.minimum(torch.maximum(hist, lo), hi)
            hist_w = hist_w.clamp_max(c.max_history)
        eps = 1e-3
        out = (hist * hist_w + sample * weight + fallback * eps) / (hist_w + weight + eps)
        self.color, self.weight = out, hist_w + weight
        return out
