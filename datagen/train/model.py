"""The recurrent temporal CNN: a small neural supersampler in the line of DLSS 2.

One call of ``TemporalUpscaler.step`` turns one LR frame and the previous HR
output into the current HR output; ``forward`` runs it over a window of K frames
(trained recurrently, back-propagating through the whole window). B = batch,
h, w = LR size, H, W = HR size. ``ratio`` = (rx, ry) is the exact HR / LR ratio per
axis of the frames the LR came from (the store's ``ratio``: 1920 / 1129 and
1080 / 635 at 1.7x of 1080p, where LR was rounded); by default W / w, H / h, exact
for whole frames. HR position X maps to LR position X / rx.

Inputs of ``step`` (float32; any finite depth, +inf for sky is fine):

    color_lr   (B, 3, h, w)  linear HDR, one jittered sample per pixel (SPEC §4)
    depth_lr   (B, 1, h, w)  metres along the view axis, +inf on sky
    motion_lr  (B, 2, h, w)  p_prev - p_cur in LR pixels, y down
    jitter     (B, 2)        LR sample offset from the pixel centre, LR pixels (for a crop
                             whose LR origin is not aligned with its HR origin: minus that
                             offset, ``datagen.train.data.model_jitter``)
    exposure   (B,)          exposure multiplier (the network works on exposed colour)
    prev_out   (B, 3, H, W)  the previous HR output, linear HDR (zeros on the first frame)
    prev_depth (B, 1, H, W)  the previous frame's depth feature on the HR grid
    history    (B,)          1 where prev_out is valid, 0 on a first frame or a camera cut

Returns ``(out, depth)``: out (B, 3, H, W) linear HDR, depth (B, 1, H, W) the
depth feature to pass back in as ``prev_depth``.

What the network sees, all on the HR grid (13 channels):

1. Jitter-aware upsampling: the LR frame resampled bilinearly at the HR pixel
   centres, knowing that LR pixel (x, y) was sampled at (x + 0.5 + jx, y + 0.5 + jy)
   (3 channels), and the LR samples scattered to the HR pixel their sample falls
   in, with a mask of the pixels that got one (3 + 1).
2. The previous HR output warped by the upsampled motion vectors, bilinearly
   (3); depth-based disocclusion cues: |log depth now - warped log depth before|
   (1), and where the warp samples outside the frame or there is no history (1).
3. The depth feature log1p(min(depth, 1000)) / log1p(1000) (1).

Colour enters as log1p(exposure * colour) (bounded, like a tonemap, and
invertible). A U-Net (``channels``, default 32 -> 64 -> 128 and back, after a 2x
space-to-depth so it runs at HR / 2) predicts a per-pixel blend weight a and a
residual r: y = a * history + (1 - a) * upsampled + r, and the output is
expm1(relu(y)) / exposure, linear HDR again.

With ``ModelConfig.rectify`` the warped history clamped to the current LR frame's 3x3
neighbourhood (``neighbourhood_clamp``) is 3 more inputs (16) and a third candidate:
softmax weights of history, clamped history and upsampled frame, plus the residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

DEPTH_CLAMP_M = 1000.0
"""depths beyond this (and sky) read as this, before the log."""


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network; saved in every checkpoint."""

    scale: float = 2.0
    """nominal HR / LR scale of the store the model is for (the exact per-axis ratio
    comes with the data: ``step(..., ratio)``)."""
    channels: tuple[int, ...] = (32, 64, 128)
    """U-Net widths, one per level; each level halves the resolution."""
    rectify: bool = False
    """history rectification: the warped history clamped to the current LR frame's 3x3
    neighbourhood is a 14th to 16th input and a third blend candidate (``step``)."""


# -- sampling on pixel grids (SPEC §4: pixel x covers [x, x+1), centre x + 0.5) --------------------


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> tuple[torch.Tensor, ...]:
    """Pixel-centre coordinates (y + 0.5, x + 0.5), each (1, H, W)."""
    ys = torch.arange(height, device=device, dtype=dtype) + 0.5
    xs = torch.arange(width, device=device, dtype=dtype) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return gy[None], gx[None]


def sample_at(image: torch.Tensor, px: torch.Tensor, py: torch.Tensor, mode: str = "bilinear",
              padding: str = "border") -> torch.Tensor:
    """``image`` (B, C, h, w) read at continuous pixel coordinates ``px, py``
    (B, H, W), where pixel (x, y)'s centre is (x + 0.5, y + 0.5). Returns (B, C, H, W)."""
    h, w = image.shape[-2:]
    grid = torch.stack((2.0 * px / w - 1.0, 2.0 * py / h - 1.0), dim=-1)
    return F.grid_sample(image, grid.to(image.dtype), mode=mode, padding_mode=padding, align_corners=False)


def warp(image: torch.Tensor, motion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Previous-frame ``image`` (B, C, H, W) brought to the current frame with
    ``motion`` (B, 2, H, W) in its pixels (p_prev - p_cur): pixel (x, y) reads
    ``image`` at (x + 0.5 + mx, y + 0.5 + my), bilinearly. Returns the warped
    image and a (B, 1, H, W) mask, 1 where that point lies outside the frame."""
    h, w = image.shape[-2:]
    gy, gx = pixel_grid(h, w, image.device, motion.dtype)
    px, py = gx + motion[:, 0], gy + motion[:, 1]
    outside = (px < 0) | (px > w) | (py < 0) | (py > h)
    return sample_at(image, px, py), outside[:, None].to(image.dtype)


Ratio = float | tuple[float, float]
"""HR / LR: one number, or (x, y) per axis."""


def ratio_xy(ratio: Ratio) -> tuple[float, float]:
    """(rx, ry) of a ratio given as one number or per axis."""
    if isinstance(ratio, int | float):
        return float(ratio), float(ratio)
    rx, ry = ratio
    return float(rx), float(ry)


def lr_coords(hr_size: tuple[int, int], ratio: Ratio, jitter: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Where each HR pixel centre lies in the LR *sample* lattice: (fx, fy), each
    (B, H, W), such that fx == x exactly where LR pixel x's jittered sample is.
    HR centre X + 0.5 is LR position (X + 0.5) / rx; the sample of LR pixel x
    is at x + 0.5 + jx, so fx = (X + 0.5) / rx - 0.5 - jx (likewise y with ry)."""
    rx, ry = ratio_xy(ratio)
    height, width = hr_size
    gy, gx = pixel_grid(height, width, jitter.device, jitter.dtype)
    fx = gx / rx - 0.5 - jitter[:, 0, None, None]
    fy = gy / ry - 0.5 - jitter[:, 1, None, None]
    return fx, fy


def upsample_jittered(color_lr: torch.Tensor, hr_size: tuple[int, int], ratio: Ratio,
                      jitter: torch.Tensor) -> torch.Tensor:
    """Bilinear reconstruction of the LR frame at the HR pixel centres, knowing its
    samples sit at the jittered positions: (B, C, h, w) -> (B, C, H, W)."""
    fx, fy = lr_coords(hr_size, ratio, jitter)
    return sample_at(color_lr, fx + 0.5, fy + 0.5)


def scatter_samples(color_lr: torch.Tensor, hr_size: tuple[int, int], ratio: Ratio,
                    jitter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each LR sample placed in the HR pixel its jittered position falls in.

    HR pixel X holds LR pixel x if (x + 0.5 + jx) * rx lies in [X, X + 1), i.e.
    x = ceil(X / rx - 0.5 - jx) and x < (X + 1) / rx - 0.5 - jx (at most one
    x, since rx > 1). Written as a gather so it exports to ONNX.
    Returns (samples (B, C, H, W), mask (B, 1, H, W))."""
    rx, ry = ratio_xy(ratio)
    fx, fy = lr_coords(hr_size, ratio, jitter)  # at HR centres; the pixel's left edge is fx - 0.5/rx
    h, w = color_lr.shape[-2:]
    x = torch.ceil(fx - 0.5 / rx)
    y = torch.ceil(fy - 0.5 / ry)
    hit = (x < fx + 0.5 / rx) & (y < fy + 0.5 / ry) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
    samples = sample_at(color_lr, x + 0.5, y + 0.5, mode="nearest")
    mask = hit[:, None].to(color_lr.dtype)
    return samples * mask, mask


def upsample_motion(motion_lr: torch.Tensor, hr_size: tuple[int, int], ratio: Ratio,
                    jitter: torch.Tensor) -> torch.Tensor:
    """LR motion (LR pixels; each vector belongs to its pixel's jittered sample, SPEC §4)
    -> HR motion in HR pixels: resampled like the colour (``upsample_jittered``), then
    each component times its axis's ratio."""
    rx, ry = ratio_xy(ratio)
    scale = torch.tensor([rx, ry], dtype=motion_lr.dtype, device=motion_lr.device)[None, :, None, None]
    return upsample_jittered(motion_lr, hr_size, ratio, jitter) * scale


def depth_feature(depth: torch.Tensor) -> torch.Tensor:
    """Sanitised depth in [0, 1]: log1p(min(depth, 1000 m)) / log1p(1000); sky -> 1."""
    return torch.log1p(torch.clamp(torch.nan_to_num(depth, posinf=DEPTH_CLAMP_M), 0.0, DEPTH_CLAMP_M)) \
        / torch.log1p(torch.tensor(DEPTH_CLAMP_M))


def hr_size_of(lr_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """(H, W) for an LR (h, w) where HR / scale is whole (else pass the HR size)."""
    return round(lr_size[0] * scale), round(lr_size[1] * scale)


# -- the network ----------------------------------------------------------------------------------


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Encoder-decoder with skip connections; ``channels`` per level."""

    def __init__(self, c_in: int, c_out: int, channels: tuple[int, ...]):
        super().__init__()
        self.down = nn.ModuleList()
        c = c_in
        for width in channels:
            self.down.append(_block(c, width))
            c = width
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for width in reversed(channels[:-1]):
            self.up.append(nn.ConvTranspose2d(c, width, 2, stride=2))
            self.fuse.append(_block(2 * width, width))
            c = width
        self.head = nn.Conv2d(c, c_out, 1)

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** (len(self.down) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, fuse, skip in zip(self.up, self.fuse, reversed(skips[:-1]), strict=True):
            x = fuse(torch.cat((up(x), skip), dim=1))
        return self.head(x)


IN_CHANNELS = 13
RECTIFIED_CHANNELS = 3
"""with ``ModelConfig.rectify``: the clamped history."""
SPACE_TO_DEPTH = 2


def neighbourhood_clamp(history: torch.Tensor, lr: torch.Tensor, hr_size: tuple[int, int], ratio: Ratio,
                        jitter: torch.Tensor) -> torch.Tensor:
    """``history`` (B, C, H, W) clamped per channel to the min and max of the 3x3 LR
    neighbourhood (``lr``, B, C, h, w) around each HR pixel, the bounds resampled like the
    colour (``upsample_jittered``): TAA's history rectification."""
    lo = upsample_jittered(-F.max_pool2d(-lr, 3, stride=1, padding=1), hr_size, ratio, jitter)
    hi = upsample_jittered(F.max_pool2d(lr, 3, stride=1, padding=1), hr_size, ratio, jitter)
    return torch.minimum(torch.maximum(history, lo), hi)


class TemporalUpscaler(nn.Module):
    """The recurrent supersampler (module docstring)."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        s = SPACE_TO_DEPTH
        c_in, c_out = (IN_CHANNELS + RECTIFIED_CHANNELS, 5) if config.rectify else (IN_CHANNELS, 4)
        self.unet = UNet(c_in * s * s, c_out * s * s, tuple(config.channels))

    def step(self, color_lr, depth_lr, motion_lr, jitter, exposure, prev_out, prev_depth, history,
             ratio: Ratio | None = None):
        """One frame (module docstring); ``ratio`` (rx, ry) defaults to W / w, H / h."""
        hr = prev_out.shape[-2:]
        if ratio is None:
            ratio = (hr[1] / color_lr.shape[-1], hr[0] / color_lr.shape[-2])
        e = exposure[:, None, None, None]
        up = torch.log1p(e * upsample_jittered(color_lr, hr, ratio, jitter).clamp_min(0))
        samples, hit = scatter_samples(color_lr, hr, ratio, jitter)
        samples = torch.log1p(e * samples.clamp_min(0))
        depth = upsample_jittered(depth_feature(depth_lr), hr, ratio, jitter)
        motion = upsample_motion(motion_lr, hr, ratio, jitter)
        valid = history[:, None, None, None]
        prev, outside = warp(torch.log1p(e * prev_out.clamp_min(0)), motion)
        prev_d, _ = warp(prev_depth, motion)
        prev = valid * prev + (1 - valid) * up
        disocclusion = valid * (depth - prev_d).abs() + (1 - valid)
        no_history = torch.maximum(outside, 1 - valid)
        x = torch.cat((up, samples, hit, prev, disocclusion, no_history, depth), dim=1)
        if not self.config.rectify:
            y = self._run_unet(x)
            blend = torch.sigmoid(y[:, :1])
            out = blend * prev + (1 - blend) * up + y[:, 1:4]
        else:  # a softmax blend of the history, the clamped history and the upsampled frame
            clamped = neighbourhood_clamp(prev, torch.log1p(e * color_lr.clamp_min(0)), hr, ratio, jitter)
            y = self._run_unet(torch.cat((x, clamped), dim=1))
            w = torch.softmax(torch.cat((y[:, :2], torch.zeros_like(y[:, :1])), dim=1), dim=1)
            out = w[:, :1] * prev + w[:, 1:2] * clamped + w[:, 2:3] * up + y[:, 2:5]
        return torch.expm1(F.relu(out)) / e, depth

    def _run_unet(self, x: torch.Tensor) -> torch.Tensor:
        """The U-Net at HR / 2 (space-to-depth), with replicate padding to its multiple."""
        h, w = x.shape[-2:]
        m = self.unet.multiple * SPACE_TO_DEPTH
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        y = F.pixel_shuffle(self.unet(F.pixel_unshuffle(x, SPACE_TO_DEPTH)), SPACE_TO_DEPTH)
        return y[..., :h, :w]

    def forward(self, color_lr, depth_lr, motion_lr, jitter, exposure, camera_cut=None,
                hr_size: tuple[int, int] | None = None, ratio: Ratio | None = None):
        """A window: inputs with a leading (B, K, ...) -> outputs (B, K, 3, H, W), (H, W) =
        ``hr_size`` (default LR x scale, where that is whole). History starts empty and is
        dropped at every camera cut."""
        b, k = color_lr.shape[:2]
        hr = tuple(hr_size) if hr_size is not None else hr_size_of(tuple(color_lr.shape[-2:]),
                                                                  self.config.scale)
        prev = color_lr.new_zeros((b, 3, *hr))
        prev_depth = color_lr.new_zeros((b, 1, *hr))
        outs = []
        for t in range(k):
            history = color_lr.new_full((b,), float(t > 0))
            if camera_cut is not None:
                history = history * (~camera_cut[:, t]).to(history.dtype)
            prev, prev_depth = self.step(color_lr[:, t], depth_lr[:, t], motion_lr[:, t], jitter[:, t],
                                         exposure[:, t], prev, prev_depth, history, ratio)
            outs.append(prev)
        return torch.stack(outs, dim=1)


class StepModule(nn.Module):
    """``TemporalUpscaler.step`` as a plain forward, for export (ONNX, torch.export)."""

    def __init__(self, model: TemporalUpscaler):
        super().__init__()
        self.model = model

    def forward(self, color_lr, depth_lr, motion_lr, jitter, exposure, prev_out, prev_depth, history):
        return self.model.step(color_lr, depth_lr, motion_lr, jitter, exposure, prev_out, prev_depth,
                               history)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
