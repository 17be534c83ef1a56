"""Tonemapping, image metrics and the training loss.

Everything is judged on tonemapped colour: ``tonemap(c, e) = e c / (1 + e c)``
(exposure, then Reinhard), which maps linear HDR into [0, 1). PSNR uses peak 1;
SSIM uses an 11-tap Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2, over the
valid region, averaged over channels. tPSNR is the PSNR of the frame-to-frame
difference (x_t - x_{t-1}) against the reference's (y_t - y_{t-1}), peak 1: it
rewards an output that changes over time as the reference does (no flicker, no lag).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from datagen.train.model import warp

TONEMAP = "reinhard"
"""recorded in eval JSON and run config: tonemap(c, e) = e c / (1 + e c)."""


def tonemap(color: torch.Tensor, exposure: torch.Tensor) -> torch.Tensor:
    """Linear HDR (..., 3, H, W) and ``exposure`` (...) -> [0, 1): exposure, then Reinhard."""
    e = exposure.reshape(*exposure.shape, 1, 1, 1).to(color.dtype)
    x = (e * color).clamp_min(0)
    return x / (1 + x)


def _gaussian(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM of (N, C, H, W) images in [0, 1]; windows shrink to the
    image for sides under 11. Returns (N, C, H', W')."""
    c = x.shape[1]
    size = min(11, x.shape[-1], x.shape[-2])
    g = _gaussian(size, 1.5, x.device)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, size, size).to(x.dtype)

    def blur(v):
        return F.conv2d(v, kernel, groups=c)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image: (N, C, H, W) -> (N,)."""
    return ssim_map(x, y).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB, peak 1, per image: (N, ...) -> (N,). Capped at 100 dB for equal images."""
    mse = (x - y).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms; saved with the run config. ``metrics.loss_terms`` sums the
    first three; the perceptual and adversarial terms live in ``losses`` (0: off)."""

    l1: float = 1.0
    """L1 on tonemapped colour."""
    ssim: float = 0.2
    """(1 - SSIM) on tonemapped colour."""
    temporal: float = 0.5
    """L1 between the output's and the reference's temporal change (motion-compensated)."""
    perceptual: float = 0.0
    """VGG16 feature L1 (needs the weights file, ``--perceptual-weights``)."""
    adversarial: float = 0.0
    """non-saturating GAN term against a patch discriminator trained alongside."""


def loss_terms(out: torch.Tensor, batch: dict[str, torch.Tensor],
               weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss on a window. ``out`` (B, K, 3, H, W) linear HDR; ``batch`` as
    the Dataset gives it. Returns the weighted sum and each unweighted term.

    Temporal term: with W the warp by ``motion_hr`` (the reference's own motion),
    |(T(o_t) - W(T(o_{t-1}))) - (T(y_t) - W(T(y_{t-1})))| averaged over frames t >= 1
    that do not follow a camera cut; it penalises flicker the reference lacks."""
    b, k = out.shape[:2]
    ref = batch["color_hr"]
    exposure = batch["exposure"]
    to = tonemap(out.float(), exposure)
    tr = tonemap(ref, exposure)
    l1 = (to - tr).abs().mean()
    ss = 1 - ssim(to.flatten(0, 1), tr.flatten(0, 1)).mean()
    if k > 1:
        motion = batch["motion_hr"][:, 1:].flatten(0, 1)
        prev_o, _ = warp(to[:, :-1].flatten(0, 1), motion)
        prev_r, _ = warp(tr[:, :-1].flatten(0, 1), motion)
        diff = ((to[:, 1:].flatten(0, 1) - prev_o) - (tr[:, 1:].flatten(0, 1) - prev_r)).abs()
        keep = (~batch["camera_cut"][:, 1:]).flatten().to(diff.dtype)
        temporal = (diff.flatten(1).mean(1) * keep).sum() / keep.sum().clamp_min(1)
    else:
        temporal = to.new_zeros(())
    total = weights.l1 * l1 + weights.ssim * ss + weights.temporal * temporal
    return total, {"l1": l1.item(), "ssim": ss.item(), "temporal": temporal.item()}


class MetricTally:
    """Per-frame PSNR/SSIM and per-pair tPSNR, grouped by scene; ``summary()`` gives
    SPEC §3's M = {psnr, ssim, tpsnr, per_scene: {scene: {...}}} (means over frames)."""

    def __init__(self):
        self.values: dict[str, dict[str, list[float]]] = {}

    def add_frame(self, scene: str, out_tm: torch.Tensor, ref_tm: torch.Tensor,
                  prev: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """One frame (1, 3, H, W) tonemapped; ``prev`` = (out, ref) of the previous
        frame of the same shot, or None at a sequence start or camera cut."""
        v = self.values.setdefault(scene, {"psnr": [], "ssim": [], "tpsnr": []})
        v["psnr"].append(float(psnr(out_tm, ref_tm)[0]))
        v["ssim"].append(float(ssim(out_tm, ref_tm)[0]))
        if prev is not None:
            v["tpsnr"].append(float(psnr(out_tm - prev[0], ref_tm - prev[1])[0]))

    @staticmethod
    def _means(v: dict[str, list[float]]) -> dict[str, float | None]:
        """Means over frames; None where there is nothing to average (tPSNR of 1-frame shots)."""
        return {name: (sum(xs) / len(xs) if xs else None) for name, xs in v.items()}

    def summary(self) -> dict:
        every: dict[str, list[float]] = {"psnr": [], "ssim": [], "tpsnr": []}
        for v in self.values.values():
            for name, xs in v.items():
                every[name] += xs
        return {**self._means(every),
                "per_scene": {scene: self._means(v) for scene, v in sorted(self.values.items())}}
