"""Every error the package raises on purpose. Each class also inherits the
matching builtin, so callers may catch either. Messages say what was expected,
what came, where, and how to fix it; the CLI prints them as one line and exits
with the class's ``exit_code``: 2 for bad input (the default), 1 for a runtime
failure that the input did not cause (a full disk, damaged data, a diverged run)."""

from __future__ import annotations

import errno


class DatagenError(Exception):
    """Base of all datagen errors."""

    exit_code = 2
    """the CLI's exit status for this error: 2 bad input, 1 runtime failure."""


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


class OutputError(DatagenError, OSError):
    """An output (a store, a render folder) cannot be written: the path is a file, read-only,
    not permitted (exit 2: choose another), or the disk is full (``DiskFullError``, exit 1).
    Made as ``OutputError(errno, message)``; ``str()`` is the message alone."""

    def __str__(self) -> str:
        return self.strerror if self.strerror is not None else super().__str__()


class DiskFullError(OutputError):
    """No space left (ENOSPC, EDQUOT): a runtime failure; free space and run the same command."""

    exit_code = 1


NOT_RETRYABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                                  errno.ENOTDIR, errno.EEXIST, errno.EISDIR})
"""errno values that retrying the same write cannot cure."""


def output_error(message: str, exc: OSError) -> OutputError:
    """The OutputError for an OSError met while writing: DiskFullError for ENOSPC/EDQUOT."""
    cls = DiskFullError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else OutputError
    return cls(exc.errno, message)


class BadDataError(StoreError):
    """A store's values are not fit to train on (NaN, infinities where none belong, a chunk
    that does not decode): a runtime failure naming the store, split, sequence and frame."""

    exit_code = 1


class NonFiniteLossError(DatagenError, FloatingPointError):
    """Training met a non-finite loss or gradient; the last good checkpoint is kept."""

    exit_code = 1


def one_line(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an exception we did not raise, on one line of at most ``limit`` chars."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
