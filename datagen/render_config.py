"""What a Renderer renders: sizes, ratios, samples and filtering, checked before any GL
context exists (``RenderConfig``). GL-free, so that build plans and workers' configs
can be made and checked anywhere."""

from __future__ import annotations

from dataclasses import dataclass

from datagen import conventions as cv
from datagen.errors import ConfigError

LR_PROBES = 8
"""Default probe budget of the LR pass's anisotropic filtering, chosen by measurement
(docs/benchmarks.md, "LR texture filtering")."""
LR_PROBES_MAX = 16


@dataclass(frozen=True)
class RenderConfig:
    """What to render at; independent of the scene."""

    hr_width: int = 1920
    """target (HR) width in pixels."""
    hr_height: int = 1080
    """target (HR) height in pixels."""
    scale: float = 2.0
    """LR = HR / scale rounded to whole pixels (``conventions.lr_size``); one of
    conventions.SCALES."""
    spp: int = 16
    """HR reference samples per pixel, 8-256 (1+ accepted for tests)."""
    shadow_map_size: int = 2048
    lr_probes: int = LR_PROBES
    """most trilinear probes per texture lookup of the LR pass: anisotropic filtering
    done in the shader along the footprint's major axis (datagen/shaders.py), so its
    cost is bounded and every driver computes the same image; 1 = trilinear. HR
    reference samples are trilinear: the spp stratified samples integrate the
    pixel footprint."""
    driver_anisotropy: float = 0.0
    """for measurements only: > 0 samples LR textures with the GL driver's own
    anisotropic filtering at this max anisotropy instead of the probes. Its cost
    on llvmpipe is unbounded (one 64x36 frame took 205 s, measured), and its
    image differs between drivers."""
    sample_seed: int = 0
    """seed of the stratified HR sample pattern."""
    reference_resolve: str = "box"
    """how the HR samples become a pixel: "box" (their mean) or "karis" (the mean of
    c / (1 + max(c)), inverted afterwards, as Arm's NSS ground truth; suppresses fireflies)."""
    extra_scales: tuple[float, ...] = ()
    """more LR ratios rendered beside ``scale`` with the same HR reference
    (``Renderer.render_ratios``): one jittered LR G-buffer each, with that ratio's own
    jitter phases and mip bias; each one of conventions.SCALES."""

    @property
    def hr_size(self) -> tuple[int, int]:
        return self.hr_width, self.hr_height

    @property
    def lr_size(self) -> tuple[int, int]:
        return cv.lr_size(self.hr_size, self.scale)

    @property
    def ratio(self) -> tuple[float, float]:
        """The exact per-axis HR / LR ratio (``conventions.ratio_of``)."""
        return cv.ratio_of(self.hr_size, self.lr_size)

    @property
    def scales(self) -> tuple[float, ...]:
        """Every LR ratio a frame is rendered at: ``scale`` first, then ``extra_scales``."""
        return (self.scale, *self.extra_scales)

    def check(self, min_spp: int = cv.SPP_RANGE[0]) -> None:
        """Raise ConfigError naming the bad field and the allowed values."""
        for scale in self.scales:
            if scale not in cv.SCALES:
                raise ConfigError(f"scale {scale:g} is not supported; use one of "
                                  + ", ".join(f"{s:g}" for s in cv.SCALES))
        if len(set(self.scales)) != len(self.scales):
            raise ConfigError(f"scales {', '.join(f'{s:g}' for s in self.scales)} name a ratio twice")
        if not min_spp <= self.spp <= cv.SPP_RANGE[1]:
            raise ConfigError(f"spp {self.spp} is out of range; use {min_spp} to {cv.SPP_RANGE[1]}")
        if not 1 <= self.lr_probes <= LR_PROBES_MAX:
            raise ConfigError(f"lr_probes {self.lr_probes} is out of range; use 1 to {LR_PROBES_MAX}")
        if self.reference_resolve not in cv.REFERENCE_RESOLVES:
            raise ConfigError(f"reference_resolve {self.reference_resolve!r} is not one of "
                              + ", ".join(cv.REFERENCE_RESOLVES))
        if self.hr_width < 1 or self.hr_height < 1:
            raise ConfigError(f"resolution {self.hr_width}x{self.hr_height} must be positive")


def check_target_size(config: RenderConfig, limit: int, renderer: str = "this GL renderer") -> None:
    """ConfigError, before anything is allocated, if the HR targets or the shadow map would be
    larger than ``limit`` pixels a side (``gl.max_target_size``)."""
    w, h = config.hr_size
    if max(w, h) > limit:
        raise ConfigError(f"--res {w}x{h} is larger than {renderer} can render: at most {limit} pixels a "
                          "side; choose a smaller --res")
    if config.shadow_map_size > limit:
        raise ConfigError(f"shadow_map_size {config.shadow_map_size} is larger than {renderer} allows "
                          f"({limit}); choose a smaller one")
