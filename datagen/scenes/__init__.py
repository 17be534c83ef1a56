"""Scene generators: each is a pure function of (parameters, seed) -> Scene.

Recipes in the top-level ``scenes/`` folder name a generator and its parameters.
Every generator registers the documented range of each parameter
(``datagen.scenes.params``); ``generate`` checks the parameters against them first,
so bad values are a one-line ConfigError and every loop in a generator is bounded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from datagen.errors import UnknownNameError
from datagen.scene import Scene
from datagen.scenes.params import Param, check_params

Generator = Callable[..., Scene]
GENERATORS: dict[str, Generator] = {}
PARAMS: dict[str, dict[str, Param]] = {}
"""each generator's documented parameter ranges."""
CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {}
"""each generator's rules between parameters (given every parameter, defaults filled in)."""


def register(name: str, params: dict[str, Param],
             check: Callable[[dict[str, Any]], None] | None = None) -> Callable[[Generator], Generator]:
    """Register a generator with its parameter table (every keyword but ``seed``)."""
    def wrap(fn: Generator) -> Generator:
        GENERATORS[name], PARAMS[name] = fn, params
        if check is not None:
            CHECKS[name] = check
        return fn
    return wrap


def defaults(name: str) -> dict[str, Any]:
    """The generator's default parameters, from its signature."""
    return {k: p.default for k, p in inspect.signature(GENERATORS[name]).parameters.items() if k != "seed"}


def check(name: str, params: dict[str, Any]) -> None:
    """ConfigError naming the first parameter of ``params`` that is unknown or out of the
    generator's documented range; UnknownNameError for an unknown generator."""
    _load_builtin()
    if name not in GENERATORS:
        raise UnknownNameError(
            f"unknown scene generator {name!r}; valid: {', '.join(sorted(GENERATORS))}")
    check_params(name, PARAMS[name], params, defaults(name), CHECKS.get(name))


def generate(name: str, params: dict[str, Any], seed: int) -> Scene:
    """Run the generator ``name`` on checked ``params`` (``check``)."""
    check(name, params)
    return GENERATORS[name](seed=seed, **params)


def _load_builtin() -> None:
    """Import every module of this package: each registers its generators."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        if module.name != "params":
            importlib.import_module(f"{__name__}.{module.name}")
