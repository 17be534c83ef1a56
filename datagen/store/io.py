"""Store I/O shared by the writer and the reader: opening the root group and a split
after the schema checks, the per-process tensorstore context, and ``io_errors``, the
one place where I/O failures (a full, read-only or missing disk, an object-store
failure, OpenEXR's I/O errors) become one-line errors."""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator

import zarr

from datagen.errors import DatagenError, StoreError, one_line, output_error
from datagen.store import location, schema
from datagen.store.location import StorePath
from datagen.store.schema import SPLITS

STORE_RERUN = " (unfinished sequences stay not complete and are written again)"
"""what a failed store write adds: running again finishes the store."""

_EXR_IO = {"No space left": errno.ENOSPC, "Read-only file system": errno.EROFS,
           "Permission denied": errno.EACCES}
"""OpenEXR reports I/O failures as RuntimeError with the C library's message."""


def _exr_os_error(exc: RuntimeError) -> OSError:
    """An OpenEXR RuntimeError as an OSError: its first line, and the errno its text names."""
    text = str(exc).strip()
    reason = text.splitlines()[0][:160] if text else "RuntimeError"
    return OSError(next((c for t, c in _EXR_IO.items() if t in text), None), reason)


@contextlib.contextmanager
def io_errors(path: object, doing: str, write: bool = False, rerun: str = STORE_RERUN,
              exr: bool = False) -> Iterator[None]:
    """Turn an OSError (disk full, read-only, missing) or an object-store failure (no
    such bucket, access denied, unreachable endpoint) into one line: reading, a
    StoreError; writing (``write``), a local OSError is an OutputError
    (``DiskFullError``, exit 1, when the disk is full), its message ending "then run
    again" and ``rerun``. ``exr``: a RuntimeError is an OpenEXR write failure, reported
    the same way (else it is not an I/O error and passes through)."""
    try:
        yield
    except DatagenError:
        raise
    except Exception as exc:
        where = location.parse(path)
        reason = location.explain(where, exc) if location.is_remote(where) else None
        if reason:
            raise StoreError(f"{path}: cannot {doing}: {reason}") from exc
        error = _exr_os_error(exc) if exr and isinstance(exc, RuntimeError) else exc
        if not isinstance(error, OSError):
            raise
        reason = error.strerror or type(error).__name__
        where = f" ({error.filename})" if error.filename else ""
        if not write:
            raise StoreError(f"{path}: cannot {doing}: {reason}{where}") from exc
        fix = ("free disk space" if error.errno in (errno.ENOSPC, errno.EDQUOT)
               else "choose a writable --out")
        raise output_error(f"{path}: cannot {doing}: {reason}{where}; {fix}, then run again{rerun}",
                           error) from exc


def open_root(path: str | os.PathLike | StorePath, mode: str = "r") -> tuple[zarr.Group, dict]:
    """The root group of the store at ``path`` and its attrs, after ``schema.check_root``;
    a missing or damaged zarr.json is a StoreError saying it is not a datagen store."""
    path = location.parse(path)
    location.check_bucket(path)
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path}: not a store (no zarr.json); give the path of a store made by "
                         "`datagen build`")
    with io_errors(path, "open the store"):
        try:
            root = zarr.open_group(location.zarr_store(path, read_only=mode == "r"), mode=mode)
            attrs = dict(root.attrs)
        except OSError:
            raise
        except Exception as exc:  # zarr reports a damaged zarr.json in many ways
            if location.is_remote(path) and location.explain(path, exc):
                raise  # io_errors names the object-store failure
            raise StoreError(f"{path}: not a datagen store: its zarr.json is not a readable Zarr group "
                             f"({one_line(exc, 120)}); give the path of a store made by `datagen "
                             "build`, or build it again") from None
    schema.check_root(attrs, path)
    return root, attrs


def open_split(path: str | os.PathLike | StorePath, split: str,
               mode: str = "r") -> tuple[zarr.Group, dict]:
    """The split's group and the root attrs, after the schema checks."""
    path = location.parse(path)
    root, attrs = open_root(path, mode)
    with io_errors(path, "open the store"):
        if split not in root:
            raise StoreError(f"{path}: no split {split!r}; valid: {', '.join(SPLITS)}")
        return root[split], attrs


_TS_CONTEXT = None


def ts_open(path: StorePath, **options):
    """The tensorstore.open future of the existing zarr3 array at ``path`` (a local
    path or an s3:// location; options: ``read=True``, ``open=True``, ...), in one
    tensorstore context (thread pools, cache) per process; the writer and the
    tensorstore read engine both use it."""
    global _TS_CONTEXT
    import tensorstore

    if _TS_CONTEXT is None:
        _TS_CONTEXT = tensorstore.Context(location.TS_CONTEXT)
    spec = {"driver": "zarr3", "kvstore": location.ts_kvstore(location.parse(path))}
    return tensorstore.open(spec, context=_TS_CONTEXT, **options)


_OS_ERROR = re.compile(r"\[OS error (\d+): ([^\]]+)\]|os_error_code='(\d+)'")
"""how tensorstore names the errno of an I/O error (older and newer releases)."""


def ts_result(future):
    """A tensorstore future's result; its I/O errors as OSError (with errno and
    reason where tensorstore names them), so ``io_errors`` reports them."""
    try:
        return future.result()
    except (ValueError, RuntimeError) as exc:
        found = _OS_ERROR.search(str(exc))
        if found and found.group(1):
            raise OSError(int(found.group(1)), found.group(2)) from exc
        if found:
            code = int(found.group(3))
            raise OSError(code, os.strerror(code)) from exc
        raise OSError(0, str(exc).splitlines()[0]) from exc
