"""Build configs and the plan: which sequences to render, with which seed, into which split.

A ``BuildConfig`` comes from a TOML recipe (``pipelines/dataset.toml`` by default)
with command-line flags laid over it by ``dataclasses.replace``. ``plan(config)``
is a pure function of the config: the same config always gives the same tasks,
seeds, splits, augmentations and varied scene parameters, so a build can be
resumed or repeated anywhere.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen import conventions as cv
from datagen.errors import ConfigError, DatagenError
from datagen.pipeline import vary as vary_mod
from datagen.pipeline.augment import Augmentation, AugmentConfig, augment_from_dict, draw, lr_crop
from datagen.pipeline.cluster import ClusterConfig, cluster_from_dict
from datagen.render_config import RenderConfig
from datagen.store.schema import SPLITS
from datagen.tomlfile import read_toml


def pipelines_dir() -> Path:
    """The folder of build recipes: ``pipelines/`` beside the package."""
    return Path(__file__).resolve().parent.parent.parent / "pipelines"


def default_recipe() -> Path:
    return pipelines_dir() / "dataset.toml"


@dataclass(frozen=True)
class Splits:
    """Fractions of each scene's sequences per split, assigned by whole sequence."""

    train: float = 0.8
    """fraction of a scene's sequences for training."""
    val: float = 0.1
    """fraction for validation (rounded to whole sequences)."""
    test: float = 0.1
    """fraction for test (rounded to whole sequences)."""


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on. ``workers`` and ``scheduler`` say where it runs,
    not what it makes, so they are not recorded in the store (a resume may use others)."""

    scenes: tuple[str, ...] = ("racing",)
    """scene recipe names in scenes/ (or paths to .toml recipes)."""
    sequences: int = 6
    """sequences per scene."""
    frames: int = 12
    """frames per sequence."""
    res: tuple[int, int] = (640, 360)
    """HR (target) (width, height), written "WIDTHxHEIGHT" in a recipe and a flag (parsed
    on construction by ``conventions.parse_size``)."""
    scale: float = 2.0
    """LR = HR / scale rounded to whole pixels; one of 1.3, 1.5, 1.7, 2, 3, 4. A recipe may
    give a list (``scale = [2, 1.5, 1.7]``): the first is ``scale``, the rest ``extra_scales``."""
    extra_scales: tuple[float, ...] = ()
    """more LR ratios stored beside ``scale`` with the same HR reference (each frame's HR is
    rendered once, with one jittered LR G-buffer per ratio); docs/store.md."""
    spp: int = 16
    """HR reference samples per pixel (8-256)."""
    seed: int = 0
    """master seed; every sequence's seed derives from (seed, scene, sequence number)."""
    shadow_map_size: int = 2048
    """sun shadow map size in texels."""
    reference_resolve: str = "box"
    """how the HR samples become a pixel: "box" (their mean) or "karis" (Karis's tonemapped
    mean, as Arm's NSS ground truth; suppresses fireflies)."""
    splits: Splits = field(default_factory=Splits)
    """train/val/test fractions per scene, by whole sequence."""
    holdout_scene: str = ""
    """a scene whose sequences all go to test ("" for none); it must be one of ``scenes``."""
    workers: int = 0
    """worker processes of the local cluster (one thread each); 0 = one per CPU core."""
    scheduler: str = ""
    """address of an existing Dask scheduler (tcp://HOST:PORT); "" starts a LocalCluster."""
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """the ``[cluster]`` table: start a SLURM cluster for the build (datagen/pipeline/cluster.py)."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """the ``[augment]`` table: flips, rotations, exposure, colour, stride, crop (drawn per
    sequence in ``plan``; see datagen/pipeline/augment.py)."""
    vary: dict = field(default_factory=dict)
    """the ``[vary.SCENE]`` tables: per-sequence ranges or choices of a scene generator's
    parameters (see datagen/pipeline/vary.py); tables of scenes not built are ignored."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "res", cv.parse_size(self.res, "res"))

    @property
    def render_size(self) -> tuple[int, int]:
        """The (width, height) every frame is rendered at: ``res``."""
        return self.res

    @property
    def hr_size(self) -> tuple[int, int]:
        """The HR (width, height) the store holds: ``augment.crop`` if set, else ``res``.
        (Odd quarter turns need it square, so they do not change it.)"""
        return self.augment.crop_size() or self.render_size

    @property
    def lr_size(self) -> tuple[int, int]:
        """The LR (width, height) the store holds: HR / scale rounded to whole pixels, or
        the LR of the aligned ``augment.crop`` (the same exact HR / LR ratio)."""
        render_lr = cv.lr_size(self.render_size, self.scale)
        crop = self.augment.crop_size()
        return render_lr if crop is None else lr_crop((0, 0, *crop), self.render_size, render_lr)[2:]

    @property
    def scales(self) -> tuple[float, ...]:
        """Every stored LR ratio: ``scale`` first, then ``extra_scales``."""
        return (self.scale, *self.extra_scales)

    def render_config(self) -> RenderConfig:
        w, h = self.render_size
        return RenderConfig(hr_width=w, hr_height=h, scale=self.scale, spp=self.spp,
                            shadow_map_size=self.shadow_map_size, reference_resolve=self.reference_resolve,
                            extra_scales=tuple(self.extra_scales))

    def check(self) -> None:
        """ConfigError naming the key of the first out-of-range value."""
        if not self.scenes:
            raise ConfigError("scenes is empty; name at least one scene")
        if len(set(self.scenes)) != len(self.scenes):
            raise ConfigError(f"scenes {list(self.scenes)} names a scene twice")
        for key in ("sequences", "frames"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"workers must be an integer >= 0 (0 = one per core), got {self.workers!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not 64 <= self.shadow_map_size <= 8192:
            raise ConfigError(f"shadow_map_size must be 64 to 8192, got {self.shadow_map_size}")
        try:
            self.render_config().check()
        except ConfigError as exc:
            raise ConfigError(f"{exc} (keys scale, spp, res, reference_resolve)") from None
        fractions = dataclasses.asdict(self.splits)
        for name, value in fractions.items():
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(f"splits.{name} must be a fraction in [0, 1], got {value!r}")
        if abs(sum(fractions.values()) - 1) > 1e-6:
            raise ConfigError(f"splits fractions must sum to 1; got {fractions}")
        if self.holdout_scene and self.holdout_scene not in self.scenes:
            raise ConfigError(f"holdout_scene {self.holdout_scene!r} is not among scenes "
                              f"{list(self.scenes)}")
        if self.scheduler and "://" not in self.scheduler:
            raise ConfigError(f"scheduler {self.scheduler!r} is not an address like tcp://HOST:8786")
        self.cluster.check()
        if self.scheduler and self.cluster.kind != "local":
            raise ConfigError(f"scheduler and cluster.kind = {self.cluster.kind!r} both say where to run; "
                              "give one of them")
        self.augment.check(self.render_size, self.scale)
        if self.extra_scales and self.augment.crop_size() is not None:
            scales = ", ".join(f"{s:g}" for s in self.scales)
            raise ConfigError(f"augment.crop cannot be used with several scales ({scales}): a crop lies on "
                              "the HR/LR grid of one ratio only; drop augment.crop or build one scale")
        vary_mod.check_vary(self.vary, "vary")
        for scene in self.scenes:
            if scene in self.vary:
                vary_mod.check_params(scene, self.vary[scene])

    def recorded(self) -> dict:
        """The config as stored in the store's attrs: what the data depends on."""
        d = dataclasses.asdict(self)
        for key in ("workers", "scheduler", "cluster"):
            d.pop(key)
        if not self.extra_scales:  # a single-ratio store's attrs as before several ratios existed
            d.pop("extra_scales")
        d["scenes"] = list(self.scenes)
        d["res"] = cv.format_size(self.res)
        d["augment"] = self.augment.recorded()
        return d


def _keys(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def config_from_dict(data: dict, where: str = "recipe") -> BuildConfig:
    """A checked BuildConfig from a recipe's table; unknown keys are a ConfigError
    listing the valid ones."""
    unknown = set(data) - set(_keys(BuildConfig))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"valid: {', '.join(_keys(BuildConfig))}")
    values = dict(data)
    if "augment" in values:
        values["augment"] = augment_from_dict(values["augment"], where)
    if "vary" in values:
        values["vary"] = vary_mod.check_vary(values["vary"], where)
    if "cluster" in values:
        values["cluster"] = cluster_from_dict(values["cluster"], where)
    if "splits" in values:
        table = values["splits"]
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: splits must be a table like {{train = 0.8, val = 0.1, test = 0.1}}")
        bad = set(table) - set(_keys(Splits))
        if bad:
            raise ConfigError(f"{where}: unknown key(s) splits.{', splits.'.join(sorted(bad))}; "
                              f"valid: {', '.join(_keys(Splits))}")
        values["splits"] = Splits(**{**dataclasses.asdict(Splits(train=0, val=0, test=0)), **table})
    if "scenes" in values:
        scenes = values["scenes"]
        if isinstance(scenes, str) or not all(isinstance(s, str) for s in scenes):
            raise ConfigError(f"{where}: scenes must be a list of names, e.g. [\"racing\"]")
        values["scenes"] = tuple(scenes)
    if isinstance(values.get("scale"), list | tuple):
        if "extra_scales" in values:
            raise ConfigError(f"{where}: give the ratios either as a scale list or as scale and "
                              "extra_scales, not both")
        values["scale"], values["extra_scales"] = _scale_list(values["scale"], where, "scale")
    elif "extra_scales" in values:
        extra = values["extra_scales"]
        values["extra_scales"] = _scale_list([1.0, *extra] if isinstance(extra, list | tuple) else extra,
                                             where, "extra_scales")[1]
    if "scale" in values and isinstance(values["scale"], int) and not isinstance(values["scale"], bool):
        values["scale"] = float(values["scale"])
    types = {"sequences": int, "frames": int, "spp": int, "seed": int, "workers": int,
             "shadow_map_size": int, "res": str, "scale": float, "holdout_scene": str, "scheduler": str,
             "reference_resolve": str}
    for key, kind in types.items():
        if key in values and (not isinstance(values[key], kind) or isinstance(values[key], bool)):
            raise ConfigError(f"{where}: {key} must be a {kind.__name__}, got {values[key]!r}")
    try:
        config = BuildConfig(**values)
        config.check()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return config


def _scale_list(value, where: str, key: str) -> tuple[float, tuple[float, ...]]:
    """(first, rest) of a recipe's list of ratios, as floats; ConfigError if it is not a
    non-empty list of numbers."""
    if not isinstance(value, list | tuple) or not value or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of numbers, e.g. [2, 1.5, 1.7]; got {value!r}")
    return float(value[0]), tuple(float(v) for v in value[1:])


def load_config(path: str | Path | None = None, **overrides) -> BuildConfig:
    """The recipe at ``path`` (default ``pipelines/dataset.toml``) with ``overrides``
    (None values ignored) laid over it, checked."""
    path = Path(path) if path is not None else default_recipe()
    if not path.is_file():
        raise ConfigError(f"{path}: no such build recipe; see pipelines/README.md")
    data = read_toml(path)
    config = config_from_dict(data, str(path))
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes:
        if "scenes" in changes:
            changes["scenes"] = tuple(changes["scenes"])
            if config.holdout_scene and config.holdout_scene not in changes["scenes"]:
                changes.setdefault("holdout_scene", "")
        config = dataclasses.replace(config, **changes)
        config.check()
    return config


@dataclass(frozen=True)
class SequenceTask:
    """One sequence to render: where it goes and how it is made."""

    split: str
    """train, val or test."""
    index: int
    """index within the split."""
    scene: str
    """scene recipe name."""
    number: int
    """sequence number within the scene (0 .. sequences-1)."""
    seed: int
    """the scene seed, derived from (config.seed, scene, number)."""
    augmentation: Augmentation = Augmentation()
    """the augmentation drawn for this sequence (the worker applies it)."""
    params: tuple = ()
    """(name, value) pairs of the scene parameters drawn from ``config.vary``, laid
    over the recipe's params."""


@dataclass(frozen=True)
class SequenceResult:
    """What the task of one sequence hands back to the build client."""

    split: str
    index: int
    """index within the split."""
    scene: str
    frames: int
    """frames written (0 for a sequence that failed)."""
    seconds: float
    """wall seconds of the task (0 for a sequence found complete)."""
    error: DatagenError | None = None
    """the error that stopped the sequence; the client stops the build with it."""


def _scene_key(scene: str) -> int:
    return zlib.crc32(scene.encode())


def sequence_seed(master: int, scene: str, number: int) -> int:
    """A 31-bit seed, a pure function of (master seed, scene name, sequence number)."""
    ss = np.random.SeedSequence(master, spawn_key=(_scene_key(scene), number))
    return int(ss.generate_state(1, np.uint32)[0] >> 1)


def sequence_rng(master: int, scene: str, number: int, stream: str, key: str) -> np.random.Generator:
    """The generator of one augmentation or variation key of one sequence: a pure function
    of (master seed, scene, sequence number, stream, key)."""
    ss = np.random.SeedSequence(master, spawn_key=(_scene_key(scene), number, zlib.crc32(stream.encode()),
                                                   zlib.crc32(key.encode())))
    return np.random.default_rng(ss)


def split_counts(n: int, splits: Splits) -> dict[str, int]:
    """Sequences per split for a scene of ``n`` (val and test rounded; train the rest)."""
    val = min(n, round(n * splits.val))
    test = min(n - val, round(n * splits.test))
    return {"train": n - val - test, "val": val, "test": test}


def plan(config: BuildConfig) -> list[SequenceTask]:
    """Every sequence of the build, in a fixed order, with its split, index, augmentation
    and varied scene parameters (each key drawn from its own ``sequence_rng``)."""
    next_index = dict.fromkeys(SPLITS, 0)
    tasks = []
    for scene in config.scenes:
        n = config.sequences
        if scene == config.holdout_scene:
            assignment = ["test"] * n
        else:
            counts = split_counts(n, config.splits)
            assignment = [name for name in SPLITS for _ in range(counts[name])]
            rng = np.random.default_rng(np.random.SeedSequence(config.seed,
                                                               spawn_key=(_scene_key(scene),)))
            assignment = [assignment[i] for i in rng.permutation(n)]
        for number, split in enumerate(assignment):
            def rng_for(stream: str, number: int = number, scene: str = scene):
                return lambda key: sequence_rng(config.seed, scene, number, stream, key)

            augmentation = draw(config.augment, config.render_size, config.scale, rng_for("augment"))
            params = vary_mod.draw_params(config.vary.get(scene, {}), rng_for("vary"))
            tasks.append(SequenceTask(split, next_index[split], scene, number,
                                      sequence_seed(config.seed, scene, number), augmentation,
                                      tuple((k, vary_mod.freeze(v)) for k, v in params.items())))
            next_index[split] += 1
    return tasks


def split_sizes(tasks: list[SequenceTask]) -> dict[str, int]:
    sizes = dict.fromkeys(SPLITS, 0)
    for task in tasks:
        sizes[task.split] += 1
    return sizes
