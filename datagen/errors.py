"""Every error the package raises on purpose. Each class also inherits the
matching builtin, so callers may catch either. Messages say what was expected,
what came, where, and how to fix it; the CLI prints them as one line, exit 2."""

from __future__ import annotations


class DatagenError(Exception):
    """Base of all datagen errors."""


class ConfigError(DatagenError, ValueError):
    """A flag, recipe field or argument is out of range or malformed."""


class UnknownNameError(ConfigError, KeyError):
    """A name (scene, generator, ...) is not in its registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SceneLoadError(DatagenError, ValueError):
    """A scene recipe or asset cannot be read."""


class GLUnavailableError(DatagenError, RuntimeError):
    """No headless OpenGL context can be created."""


class StoreError(DatagenError, ValueError):
    """A dataset store cannot be created, opened, read or written as asked."""


class SchemaVersionError(StoreError):
    """A store was written with another schema version than this package reads."""
