"""Scene generators: each is a pure function of (parameters, seed) -> Scene.

Recipes in the top-level ``scenes/`` folder name a generator and its parameters
(``datagen.scenes.recipes``). Every generator registers the documented range of each
parameter (``datagen.scenes.params``); ``generate`` checks the parameters against them
first, so bad values are a one-line ConfigError and every loop in a generator is bounded.
The generator modules register themselves when imported: ``load_generators`` imports
them all, and every function here calls it first.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

from datagen.errors import ConfigError, UnknownNameError
from datagen.scene import Scene
from datagen.scenes.params import Param, check_params

Generator = Callable[..., Scene]
GENERATORS: dict[str, Generator] = {}
PARAMS: dict[str, dict[str, Param]] = {}
"""each generator's documented parameter ranges."""
CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {}
"""each generator's rules between parameters (given every parameter, defaults filled in)."""
Clip = Callable[[dict[str, Any]], tuple[float, float]]
CLIPS: dict[str, Clip] = {}
"""each generator's camera (near, far) planes from its parameters (every parameter,
defaults filled in), where they are known without building the scene."""


def register(name: str, params: dict[str, Param], check: Callable[[dict[str, Any]], None] | None = None,
             clip: tuple[float, float] | Clip | None = None,
             depth_prepass: bool = False) -> Callable[[Generator], Generator]:
    """Register a generator with its parameter table (every keyword but ``seed``), its rules
    between parameters and its camera's (near, far) planes: fixed, or a function of the
    parameters (``clip_planes``). ``depth_prepass=True`` sets ``Scene.depth_prepass`` on
    every scene it makes (the registered function is wrapped, so direct calls get it too)."""
    def wrap(fn: Generator) -> Generator:
        if depth_prepass:
            fn = with_depth_prepass(fn)
        GENERATORS[name], PARAMS[name] = fn, params
        if check is not None:
            CHECKS[name] = check
        if clip is not None:
            CLIPS[name] = clip if callable(clip) else lambda _params: clip
        return fn
    return wrap


def with_depth_prepass(fn: Generator) -> Generator:
    """``fn`` whose scenes have ``depth_prepass`` set (same signature)."""
    @functools.wraps(fn)
    def generator(*args, **kwargs) -> Scene:
        return dataclasses.replace(fn(*args, **kwargs), depth_prepass=True)
    return generator


def param_table(name: str) -> dict[str, Param]:
    """The documented ranges of generator ``name``'s parameters (every keyword but ``seed``,
    in signature order); UnknownNameError for an unknown generator."""
    load_generators()
    if name not in GENERATORS:
        raise UnknownNameError(
            f"unknown scene generator {name!r}; valid: {', '.join(sorted(GENERATORS))}")
    return PARAMS[name]


def param_names(name: str) -> list[str]:
    """The names of generator ``name``'s parameters (every keyword but ``seed``)."""
    return list(param_table(name))


def check_names(name: str, names) -> None:
    """ConfigError listing the names that are not parameters of generator ``name``."""
    valid = param_names(name)
    unknown = sorted(set(names) - set(valid))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} of generator {name!r}; "
                          f"valid: {', '.join(valid)}")


def defaults(name: str) -> dict[str, Any]:
    """The generator's default parameters, from its signature."""
    load_generators()
    return {k: p.default for k, p in inspect.signature(GENERATORS[name]).parameters.items() if k != "seed"}


def check(name: str, params: dict[str, Any]) -> None:
    """ConfigError naming the first parameter of ``params`` that is unknown or out of the
    generator's documented range; UnknownNameError for an unknown generator."""
    check_names(name, params)
    check_params(PARAMS[name], params, defaults(name), CHECKS.get(name))


def generate(name: str, params: dict[str, Any], seed: int) -> Scene:
    """Run the generator ``name`` on checked ``params`` (``check``)."""
    check(name, params)
    return GENERATORS[name](seed=seed, **params)


def clip_planes(name: str, params: dict[str, Any], seed: int) -> tuple[float, float]:
    """The (near, far) planes of the camera of ``generate(name, params, seed)``: from the
    generator's registered clip when it has one (nothing is built), else read off the
    scene (glTF and mesh files, whose camera fits the model)."""
    check(name, params)
    clip = CLIPS.get(name)
    if clip is not None:
        return clip({**defaults(name), **params})
    camera = GENERATORS[name](seed=seed, **params).camera
    return camera.near, camera.far


def load_generators() -> None:
    """Import every generator module of this package: each registers its generators."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name not in ("params", "recipes"):
            importlib.import_module(f"{__name__}.{module.name}")
