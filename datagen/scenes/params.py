"""The documented parameter ranges of scene generators, and their checks.

Each generator registers a table ``{name: Param}`` with its function
(``datagen.scenes.register``); ``check_params`` holds a recipe's ``[params]`` (or a
sequence's varied values) to it before any geometry is made, so a wrong type, a
wrong sign or a value out of range is a one-line ConfigError naming the parameter,
never a crash or a hang inside the generator. The ranges also bound the work a
scene takes to build (counts of trees, blocks, cars ...). Rules between parameters
(``speed_min <= speed_max``) are the generator's ``check`` function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from datagen.errors import ConfigError


@dataclass(frozen=True)
class Param:
    """One parameter: its kind and range."""

    kind: str
    """"int", "float" (an int is accepted), "str", "rgb_list" (a list of [r, g, b]
    triples, each in [lo, hi]), "str_list" (a list of strings, of ``choices`` where
    given) or "span" (a number or a [a, b] pair with lo <= a <= b <= hi: a range the
    generator draws from)."""
    lo: float | None = None
    """smallest value (for lists: of each entry; "str_list", "rgb_list": see ``count``)."""
    hi: float | None = None
    """largest value."""
    choices: tuple[str, ...] = ()
    """the allowed strings of a "str"."""
    optional: bool = False
    """None (the TOML key left out) is allowed and means the generator's own choice."""
    count: tuple[int, int] = (1, 64)
    """allowed list lengths of "rgb_list" and "str_list"."""
    integer: bool = False
    """a "span" of integers."""

    def describe(self) -> str:
        """The range in words, e.g. "an integer 1 to 4"."""
        if self.kind in ("int", "float"):
            what = "an integer" if self.kind == "int" else "a number"
            text = f"{what} {self.lo:g} to {self.hi:g}"
        elif self.kind == "str":
            text = "one of " + ", ".join(repr(c) for c in self.choices) if self.choices else "a string"
        elif self.kind == "rgb_list":
            text = (f"a list of {self.count[0]} to {self.count[1]} [r, g, b] triples, each "
                    f"{self.lo:g} to {self.hi:g}")
        elif self.kind == "span":
            what = "integers" if self.integer else "numbers"
            text = f"a number or [lo, hi] {what} with {self.lo:g} <= lo <= hi <= {self.hi:g}"
        else:
            text = f"a list of {self.count[0]} to {self.count[1]} strings"
            if self.choices:
                text += " among " + ", ".join(repr(c) for c in self.choices)
        return text + (" (or left out)" if self.optional else "")


def is_number(value: Any) -> bool:
    """An int or float, not a bool (TOML and JSON numbers)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def problem(param: Param, value: Any) -> str | None:
    """Why ``value`` does not fit ``param``, or None."""
    if value is None:
        return None if param.optional else "must be given"
    if param.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and param.lo <= value <= param.hi
    elif param.kind == "float":
        ok = is_number(value) and math.isfinite(value) and param.lo <= value <= param.hi
    elif param.kind == "str":
        ok = isinstance(value, str) and (not param.choices or value in param.choices)
    elif param.kind == "rgb_list":
        ok = (isinstance(value, list | tuple) and param.count[0] <= len(value) <= param.count[1]
              and all(isinstance(c, list | tuple) and len(c) == 3
                      and all(is_number(x) and param.lo <= x <= param.hi for x in c) for c in value))
    elif param.kind == "span":
        pair = [value, value] if is_number(value) else value
        kind = int if param.integer else (int, float)
        ok = (isinstance(pair, list | tuple) and len(pair) == 2
              and all(is_number(x) and isinstance(x, kind) and math.isfinite(x) for x in pair)
              and param.lo <= pair[0] <= pair[1] <= param.hi)
    else:
        ok = (isinstance(value, list | tuple) and param.count[0] <= len(value) <= param.count[1]
              and all(isinstance(x, str) and (not param.choices or x in param.choices) for x in value))
    return None if ok else f"must be {param.describe()}"


def check_params(table: dict[str, Param], params: dict[str, Any], defaults: dict[str, Any],
                 check: Callable[[dict[str, Any]], None] | None = None) -> None:
    """ConfigError for the first parameter of ``params`` out of its documented range, or
    that breaks a rule between parameters (``check``, given the params laid over the
    generator's ``defaults``). Every name of ``params`` is in ``table``
    (``datagen.scenes.check_names``)."""
    for name, given in params.items():
        why = problem(table[name], given)
        if why:
            raise ConfigError(f"{name} = {given!r}: {why}")
    if check is not None:
        check({**defaults, **params})
