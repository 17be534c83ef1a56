"""Reading the TOML files a user writes (build recipes, scene recipes): one place
where a file that is not valid TOML becomes a one-line error naming it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from datagen.errors import ConfigError, DatagenError


def read_toml(path: Path, error: type[DatagenError] = ConfigError) -> dict:
    """The table of the TOML file at ``path``; ``error`` (a ConfigError by default) saying
    "PATH: not valid TOML (why)" if it does not parse or is not UTF-8."""
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid TOML ({exc})") from exc
