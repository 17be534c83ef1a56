"""Scene generators: each is a pure function of (parameters, seed) -> Scene.

Recipes in the top-level ``scenes/`` folder name a generator and its parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datagen.errors import UnknownNameError
from datagen.scene import Scene

Generator = Callable[..., Scene]
GENERATORS: dict[str, Generator] = {}


def register(name: str) -> Callable[[Generator], Generator]:
    def wrap(fn: Generator) -> Generator:
        GENERATORS[name] = fn
        return fn
    return wrap


def generate(name: str, params: dict[str, Any], seed: int) -> Scene:
    """Run the generator ``name``; unknown names list the valid ones."""
    _load_builtin()
    if name not in GENERATORS:
        raise UnknownNameError(
            f"unknown scene generator {name!r}; valid: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[name](seed=seed, **params)


def _load_builtin() -> None:
    """Import every module of this package: each registers its generators."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
