"""Scene recipes: TOML files in the top-level ``scenes/`` folder naming a
generator and its parameters.

    # scenes/primitives.toml
    generator = "primitives"
    description = "analytic validation scene"
    [params]
    boxes = 3

A scene is a pure function of (recipe, seed).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen import scenes
from datagen.errors import ConfigError, SceneLoadError, UnknownNameError
from datagen.scene import Scene
from datagen.tomlfile import read_toml

RECIPE_KEYS = {"generator", "description", "params"}
RECIPE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""a recipe name: the stem of a .toml file in ``scenes_dir()``, never a path out of it."""


def scenes_dir() -> Path:
    """The recipe folder: $DATAGEN_SCENES, else ``scenes/`` beside the package."""
    env = os.environ.get("DATAGEN_SCENES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "scenes"


@dataclass(frozen=True)
class Recipe:
    name: str
    generator: str
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: str = ""

    def build(self, seed: int) -> Scene:
        """The scene for ``seed``; a bad parameter is a ConfigError naming the recipe."""
        try:
            return scenes.generate(self.generator, self.params, seed)
        except ConfigError as exc:
            raise ConfigError(f"{self.where}: {exc}") from None

    def clip_planes(self, seed: int) -> tuple[float, float]:
        """The (near, far) planes of the camera of ``build(seed)``, without building the
        scene where the generator knows them (``datagen.scenes.clip_planes``)."""
        try:
            return scenes.clip_planes(self.generator, self.params, seed)
        except ConfigError as exc:
            raise ConfigError(f"{self.where}: {exc}") from None

    @property
    def where(self) -> str:
        """How messages name the recipe: ``scene racing (scenes/racing.toml)``."""
        return f"scene {self.name}" + (f" ({self.path})" if self.path else "")

    def check(self) -> None:
        """ConfigError naming the recipe and its unknown generator, its unknown parameters or
        the first parameter out of its generator's documented range
        (``datagen.scenes.params``), without building anything."""
        try:
            scenes.check(self.generator, self.params)
        except ConfigError as exc:
            raise ConfigError(f"{self.where}: {exc}") from None


def available() -> list[str]:
    return sorted(p.stem for p in scenes_dir().glob("*.toml"))


def load(name_or_path: str) -> Recipe:
    """A recipe by name (``primitives``, a file in ``scenes_dir()``; a name with a folder
    or ``..`` in it is refused), by path to a .toml file, a path to a .gltf/.glb file
    (the ``gltf`` generator with an orbit camera) or to another mesh file (.obj, .ply,
    .stl, .off, ...: the ``mesh`` generator, see datagen.assets)."""
    from datagen.assets import GLTF_SUFFIXES, asset_suffixes

    path = Path(name_or_path)
    if path.suffix.lower() in GLTF_SUFFIXES:
        if not path.is_file():
            raise SceneLoadError(f"{path}: no such glTF file")
        return Recipe(path.stem, "gltf", {"path": str(path)}, f"glTF file {path}", str(path))
    if path.suffix.lower() in asset_suffixes():
        if not path.is_file():
            raise SceneLoadError(f"{path}: no such mesh file")
        return Recipe(path.stem, "mesh", {"path": str(path)}, f"mesh file {path}", str(path))
    if path.suffix.lower() != ".toml":
        if not RECIPE_NAME.fullmatch(name_or_path) or ".." in name_or_path:
            raise UnknownNameError(
                f"scene {name_or_path!r} is not a recipe name (letters, digits, '_', '-', '.'; no "
                f"folders); valid: {', '.join(available())}, or a path to a .toml recipe or a "
                ".gltf/.glb file")
        path = scenes_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise UnknownNameError(
                f"unknown scene {name_or_path!r}; valid: {', '.join(available())} "
                "(or a path to a .toml recipe)")
    if not path.is_file():
        raise SceneLoadError(f"{path}: no such recipe file")
    data = read_toml(path, SceneLoadError)
    unknown = set(data) - RECIPE_KEYS
    if unknown:
        raise SceneLoadError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
                             f"valid: {', '.join(sorted(RECIPE_KEYS))}")
    if "generator" not in data:
        raise SceneLoadError(f"{path}: missing 'generator'")
    params = dict(data.get("params", {}))
    if data["generator"] in ("gltf", "mesh") and isinstance(params.get("path"), str):
        params["path"] = str(path.parent / params["path"])  # relative to the recipe
    recipe = Recipe(path.stem, data["generator"], params, data.get("description", ""), str(path))
    recipe.check()
    return recipe
