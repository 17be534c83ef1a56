"""Structured channel pruning of the U-Net, and counting its FLOPs.

``prune(model, 0.3)`` returns a new, smaller ``TemporalUpscaler`` whose U-Net has
``round(w * 0.7)`` channels where the original had ``w`` (every level, every
convolution: the pruned model is an ordinary model with a narrower ``channels``
config, so every tool that loads a checkpoint loads it). Which channels stay is
decided per convolution by the L1 norm of their filters (Li et al., "Pruning
Filters for Efficient ConvNets", 2017): the strongest filters of each layer are
kept, and every layer that reads a pruned tensor keeps the matching input slices
(the next convolution, the skip connection into the decoder, the transposed
convolution, the head). After pruning, a short fine-tune (``datagen.train.tune``)
recovers most of the loss.

Pruning by ratio r removes about 1 - (1 - r)^2 of the U-Net's multiply-adds (both
sides of most convolutions shrink); ``flops`` counts them at a given HR size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from datagen.errors import ConfigError
from datagen.train.model import TemporalUpscaler


def pruned_channels(channels: tuple[int, ...], ratio: float) -> tuple[int, ...]:
    """Widths after removing ``ratio`` of each level's channels (at least 1 kept)."""
    if not 0 < ratio < 1:
        raise ConfigError(f"--prune {ratio:g}: give the fraction of channels to remove, 0 < r < 1")
    return tuple(max(1, round(w * (1 - ratio))) for w in channels)


def _strongest(weight: torch.Tensor, keep: int, out_dim: int = 0) -> torch.Tensor:
    """Indices (sorted) of the ``keep`` output channels with the largest filter L1 norms."""
    norms = weight.abs().transpose(0, out_dim).flatten(1).sum(1)
    return torch.sort(torch.topk(norms, keep).indices).values


def _conv(old: nn.Conv2d, out_idx: torch.Tensor, in_idx: torch.Tensor, new: nn.Conv2d) -> None:
    new.weight.data.copy_(old.weight.data[out_idx][:, in_idx])
    new.bias.data.copy_(old.bias.data[out_idx])


def _block(old: nn.Sequential, new: nn.Sequential, in_idx: torch.Tensor) -> torch.Tensor:
    """Copy the kept filters of one conv-relu-conv-relu block; returns its kept outputs."""
    width = new[0].out_channels
    inner = _strongest(old[0].weight, width)
    _conv(old[0], inner, in_idx, new[0])
    outer = _strongest(old[2].weight, width)
    _conv(old[2], outer, inner, new[2])
    return outer


@torch.no_grad()
def prune(model: TemporalUpscaler, ratio: float) -> TemporalUpscaler:
    """A new model with ``ratio`` of every U-Net level's channels removed (module docstring)."""
    channels = pruned_channels(tuple(model.config.channels), ratio)
    small = TemporalUpscaler(dataclasses.replace(model.config, channels=channels))
    old, new = model.unet, small.unet
    kept = torch.arange(old.down[0][0].in_channels)
    skips = []
    for old_block, new_block in zip(old.down, new.down, strict=True):
        kept = _block(old_block, new_block, kept)
        skips.append(kept)
    for old_up, new_up, old_fuse, new_fuse, skip in zip(old.up, new.up, old.fuse, new.fuse,
                                                         reversed(skips[:-1]), strict=True):
        up_out = _strongest(old_up.weight, new_up.out_channels, out_dim=1)  # weight (in, out, k, k)
        new_up.weight.copy_(old_up.weight[kept][:, up_out])
        new_up.bias.copy_(old_up.bias[up_out])
        concat = torch.cat((up_out, old_up.out_channels + skip))  # fuse reads cat(up(x), skip)
        kept = _block(old_fuse, new_fuse, concat)
    new.head.weight.copy_(old.head.weight[:, kept])
    new.head.bias.copy_(old.head.bias)
    return small


def flops(model: TemporalUpscaler, hr_size: tuple[int, int]) -> int:
    """Multiply-adds x 2 of the U-Net's convolutions for one step at HR (H, W) (the
    sampling and warping around it are a few operations per pixel, left out)."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            macs = inputs[0].numel() * module.out_channels * module.kernel_size[0] * module.kernel_size[1]
        else:
            macs = output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        total += 2 * macs // module.groups

    hooks = [m.register_forward_hook(count) for m in model.unet.modules()
             if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    try:
        from datagen.train.export import example_inputs

        with torch.no_grad():
            model.step(*example_inputs(hr_size, model.config.scale))
    finally:
        for h in hooks:
            h.remove()
    return total


def prune_and_tune(model: TemporalUpscaler, run_config: dict, ratio: float, steps: int, out: str,
                   store: str, checkpoint: str = "", device: str = "auto", lr: float | None = None,
                   progress=lambda step, record: None) -> tuple[TemporalUpscaler, str]:
    """Prune ``model`` by ``ratio`` and fine-tune it ``steps`` steps at peak ``lr`` (default
    ``tune.TUNE_LR``) on ``store``'s train split with its run's config (``run_config``, a
    checkpoint's ``config``) into the run folder ``out``. Returns (the pruned model, its
    checkpoint path)."""
    from datagen.train.trainer import TrainConfig
    from datagen.train.tune import TUNE_LR, tune

    small = prune(model, ratio)
    tune(small, store, out, steps, TrainConfig.from_json(run_config), lr=TUNE_LR if lr is None else lr,
         device=device, progress=progress,
         derived_from={"checkpoint": checkpoint, "prune": ratio, "channels": list(model.config.channels)})
    return small.cpu().eval(), str(Path(out) / "ckpt" / "last.pt")
