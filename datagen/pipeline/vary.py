"""Per-sequence variation of a scene's own generator parameters: the recipe's
``[vary.SCENE]`` tables.

    [vary.racing]
    time_of_day = [7.0, 18.0]                    # uniform float in [lo, hi]
    cars = [2, 4]                                # both integers: uniform integer, inclusive
    first_shot = {choices = ["chase", "trackside"]}
    car_colors = {rgb = [0.02, 0.9], count = 4}  # 4 linear RGB triples, each channel uniform

Values are drawn in ``plan()`` (one generator per sequence and parameter, so adding a
parameter never changes what the others draw), laid over the scene recipe's
``[params]``, and recorded in the sequence's metadata.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.errors import ConfigError
from datagen.scenes.params import is_number

FORMS = "[lo, hi], {choices = [...]} or {rgb = [lo, hi], count = N}"


def check_vary(table: dict, where: str) -> dict:
    """The ``vary`` table checked for form (parameter names are checked per scene by
    ``check_params``); returns a plain copy."""
    if not isinstance(table, dict) or not all(isinstance(t, dict) for t in table.values()):
        raise ConfigError(f"{where}: vary must hold one table per scene, e.g. "
                          "[vary.racing] time_of_day = [8.0, 18.0]")
    out = {}
    for scene, params in table.items():
        out[scene] = {}
        for name, spec in params.items():
            _check_spec(f"vary.{scene}.{name}", spec, where)
            out[scene][name] = spec
    return out



def _check_spec(key: str, spec, where: str) -> None:
    if isinstance(spec, list | tuple):
        if len(spec) == 2 and all(is_number(x) for x in spec) and spec[0] <= spec[1]:
            return
        raise ConfigError(f"{where}: {key} must be a range [lo, hi] with lo <= hi, got {spec!r} "
                          f"(forms: {FORMS})")
    if isinstance(spec, dict) and set(spec) == {"choices"}:
        if isinstance(spec["choices"], list | tuple) and spec["choices"]:
            return
        raise ConfigError(f"{where}: {key}.choices must be a non-empty list, got {spec['choices']!r}")
    if isinstance(spec, dict) and set(spec) == {"rgb", "count"}:
        lo_hi, count = spec["rgb"], spec["count"]
        if (isinstance(lo_hi, list | tuple) and len(lo_hi) == 2 and all(is_number(x) for x in lo_hi)
                and 0 <= lo_hi[0] <= lo_hi[1] and isinstance(count, int) and 1 <= count <= 64):
            return
        raise ConfigError(f"{where}: {key} must be {{rgb = [lo, hi], count = N}} with 0 <= lo <= hi "
                          f"and 1 <= N <= 64, got {spec!r}")
    raise ConfigError(f"{where}: {key} is {spec!r}; use one of {FORMS}")


def check_params(scene: str, specs: dict) -> None:
    """ConfigError if the scene's generator has no parameter of one of ``specs``' names,
    or if a spec can draw a value outside that parameter's documented range
    (``datagen.scenes.params``): both ends of a range, every choice, the colour range."""
    from datagen.scenes import check_names, param_table
    from datagen.scenes.params import problem
    from datagen.scenes.recipes import load

    recipe = load(scene)
    try:
        check_names(recipe.generator, specs)
    except ConfigError as exc:
        raise ConfigError(f"vary.{scene}: {exc}") from None
    table = param_table(recipe.generator)
    for name, spec in specs.items():
        param = table[name]
        if isinstance(spec, list | tuple):
            lo, hi = spec
            values = [lo, hi] if param.kind != "int" or (isinstance(lo, int) and isinstance(hi, int)) \
                else [float(lo)]  # a float range of an integer parameter draws floats
        elif "choices" in spec:
            values = list(spec["choices"])
        else:
            values = [[[x] * 3] * spec["count"] for x in spec["rgb"]]
        for v in values:
            why = problem(param, v)
            if why:
                raise ConfigError(f"vary.{scene}.{name} = {spec!r} can draw {v!r}, but {name} {why} "
                                  f"(generator {recipe.generator!r})")


def draw_params(specs: dict, rng_for) -> dict[str, Any]:
    """One value per parameter of ``specs``; ``rng_for(name)`` is that parameter's generator."""
    out: dict[str, Any] = {}
    for name in sorted(specs):
        spec, rng = specs[name], rng_for(name)
        if isinstance(spec, list | tuple):
            lo, hi = spec
            if isinstance(lo, int) and isinstance(hi, int):
                out[name] = int(rng.integers(lo, hi + 1))
            else:
                out[name] = float(rng.uniform(lo, hi))
        elif "choices" in spec:
            out[name] = spec["choices"][int(rng.integers(len(spec["choices"])))]
        else:
            lo, hi = spec["rgb"]
            out[name] = np.round(rng.uniform(lo, hi, (spec["count"], 3)), 4).tolist()
    return out


def freeze(value):
    """Lists to tuples, recursively, so a drawn value can sit in a frozen record."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    return value
