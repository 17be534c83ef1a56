"""The optional loss terms beyond L1, SSIM and temporal (``metrics.loss_terms``):

- **perceptual**: L1 between features of the tonemapped output and reference in a
  frozen VGG16 (up to relu3_3: relu1_2, relu2_2 and relu3_3, each term the mean
  absolute difference), whose weights the user passes by path
  (``--perceptual-weights FILE``: a torchvision ``vgg16().state_dict()`` or just its
  ``features.*`` entries, saved with ``torch.save``). Nothing is fetched at run time;
  a missing or incompatible file is one ``ConfigError`` line.
- **adversarial**: a small patch discriminator (``PatchDiscriminator``), trained from
  scratch alongside the model on tonemapped frames (reference = real, output = fake;
  non-saturating logistic loss). The model's term is softplus(-D(output)).

``ExtraLosses`` owns both (and the discriminator's optimiser), so the trainer calls
``extra(out, batch)`` for the model's terms and ``extra.train_discriminator(out, batch)``
after the model's step (``out`` (B, K, 3, H, W) linear HDR, ``batch`` as the Dataset gives
it); its ``state_dict`` goes into checkpoints so a resumed run continues exactly. Both
see every frame of the window as an image, tonemapped (``metrics.tonemap``).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from datagen.errors import ConfigError
from datagen.train.metrics import tonemap

VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256)
"""torchvision's VGG16 ``features`` up to relu3_3 (indices 0..15)."""
VGG16_TAPS = (3, 8, 15)
"""indices in ``features`` of relu1_2, relu2_2, relu3_3: the layers compared."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_features() -> nn.Sequential:
    """VGG16's ``features`` up to relu3_3, with torchvision's indices (so its state_dict loads)."""
    layers: list[nn.Module] = []
    c = 3
    for v in VGG16_LAYERS:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers)


def load_feature_network(path: str | os.PathLike) -> nn.Sequential:
    """The frozen VGG16 features from ``path``; ConfigError (one line) when the file is
    missing, not a torch file, or does not hold VGG16's ``features.*`` weights."""
    path = Path(path)
    hint = ("give a torchvision VGG16 state_dict saved with torch.save(vgg16(weights=...).state_dict(), "
            "FILE)")
    if not path.is_file():
        raise ConfigError(f"--perceptual-weights {path}: no such file; {hint}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            AttributeError) as exc:
        why = str(exc).splitlines()[0][:100]
        raise ConfigError(f"--perceptual-weights {path}: not a torch file ({why}); {hint}") from None
    net = vgg16_features()
    if not isinstance(state, dict):
        raise ConfigError(f"--perceptual-weights {path}: holds a {type(state).__name__}, not a state_dict; "
                          f"{hint}")
    wanted = net.state_dict()
    found = {k.removeprefix("features."): v for k, v in state.items()
             if isinstance(k, str) and k.removeprefix("features.") in wanted}
    missing = sorted(set(wanted) - set(found))
    wrong = [k for k in sorted(found) if not isinstance(found[k], torch.Tensor)
             or found[k].shape != wanted[k].shape]
    if missing or wrong:
        what = (f"missing {', '.join('features.' + k for k in missing[:3])}" if missing else
                f"features.{wrong[0]} has shape {tuple(getattr(found[wrong[0]], 'shape', ()))}, "
                f"VGG16's is {tuple(wanted[wrong[0]].shape)}")
        raise ConfigError(f"--perceptual-weights {path}: not VGG16 weights ({what}); {hint}")
    net.load_state_dict(found)
    return net.eval().requires_grad_(False)


class PerceptualLoss(nn.Module):
    """Mean over VGG16_TAPS of mean |phi(x) - phi(y)|, x and y (N, 3, H, W) in [0, 1]."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[None, :, None, None])
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[None, :, None, None])

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        both = (torch.cat((x, y)) - self.mean) / self.std
        total = both.new_zeros(())
        for i, layer in enumerate(self.features[:VGG16_TAPS[-1] + 1]):
            both = layer(both)
            if i in VGG16_TAPS:
                fx, fy = both.chunk(2)
                total = total + (fx - fy.detach()).abs().mean()
        return total / len(VGG16_TAPS)


class PatchDiscriminator(nn.Module):
    """A small PatchGAN: three stride-2 convolutions and a 1-channel head, one logit
    per ~22x22 patch. (N, 3, H, W) -> (N, 1, H / 8, W / 8)."""

    def __init__(self, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for w in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c = w
        layers.append(nn.Conv2d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def frames(out: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Output and reference windows (B, K, 3, H, W) -> tonemapped frames (B K, 3, H, W)."""
    exposure = batch["exposure"]
    return (tonemap(out.float(), exposure).flatten(0, 1),
            tonemap(batch["color_hr"], exposure).flatten(0, 1))


class ExtraLosses:
    """The perceptual and adversarial terms of one run (either may be off: weight 0)."""

    def __init__(self, perceptual_weight: float, perceptual_file: str | None, adversarial_weight: float,
                 lr: float, device: torch.device):
        self.perceptual_weight, self.adversarial_weight = perceptual_weight, adversarial_weight
        self.perceptual = None
        if perceptual_weight > 0:
            if not perceptual_file:
                raise ConfigError("a perceptual weight > 0 needs --perceptual-weights FILE (VGG16 weights)")
            self.perceptual = PerceptualLoss(load_feature_network(perceptual_file)).to(device)
        self.disc = self.disc_opt = None
        if adversarial_weight > 0:
            self.disc = PatchDiscriminator().to(device)
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.999))

    def __call__(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """The weighted sum of the model's extra terms (0 when both are off) and each unweighted term."""
        total, terms = out.new_zeros(()), {}
        if self.perceptual is None and self.disc is None:
            return total, terms
        out_tm, ref_tm = frames(out, batch)
        if self.perceptual is not None:
            p = self.perceptual(out_tm, ref_tm)
            total, terms["perceptual"] = total + self.perceptual_weight * p, p.item()
        if self.disc is not None:
            self.disc.requires_grad_(False)  # the model's term moves the model only
            g = F.softplus(-self.disc(out_tm)).mean()
            self.disc.requires_grad_(True)
            total, terms["adversarial"] = total + self.adversarial_weight * g, g.item()
        return total, terms

    def train_discriminator(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One discriminator step on (detached) output vs reference; its loss, or {}."""
        if self.disc is None:
            return {}
        out_tm, ref_tm = frames(out, batch)
        loss = F.softplus(-self.disc(ref_tm)).mean() + F.softplus(self.disc(out_tm.detach())).mean()
        self.disc_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.disc_opt.step()
        return {"discriminator": loss.item()}

    def state_dict(self) -> dict:
        if self.disc is None:
            return {}
        return {"discriminator": self.disc.state_dict(), "optimizer": self.disc_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.disc is not None and state:
            self.disc.load_state_dict(state["discriminator"])
            self.disc_opt.load_state_dict(state["optimizer"])
