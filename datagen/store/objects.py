"""Creating a store on an object store (``s3://bucket/prefix``), which has no
atomic rename: the protocol that replaces "build beside it, rename into place".

1. The store's metadata (every ``zarr.json``, nothing else: ``create_store`` writes
   no chunk) is built on local disk by the same code as a local store, so its
   bytes are a pure function of the build config.
2. Every group and array ``zarr.json`` is uploaded first, the root ``zarr.json``
   last. An object PUT is atomic (a reader sees the old object or the new one),
   and the root ``zarr.json`` holds the root attrs and the consolidated metadata:
   it is the commit point. A prefix without it is not a store to any reader.
3. Nothing is deleted on creation (only ``--overwrite`` deletes, and only a prefix
   whose root ``zarr.json`` is a store): a second build of the same command that
   races to create the same prefix uploads the same bytes, and never removes chunks
   the first build's workers have already written.
4. After the upload every metadata object is read back and compared with what was
   uploaded. A build of another config racing for the same prefix leaves objects
   that differ: the build that sees a difference stops with a StoreError instead of
   writing sequences into a mixed store.

Sequences are then written exactly as on disk (``writer.write_sequence``): every
shard and chunk object belongs to one sequence, ``complete[i]`` is set false first
and true last, and each object PUT is atomic, so a writer killed mid-sequence
leaves ``complete[i]`` false (or true from an earlier, finished identical write).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from datagen.errors import StoreError
from datagen.store import location
from datagen.store.location import ObjectPath
from datagen.store.schema import SPLITS


def create_object_store(path: ObjectPath, attrs: dict, overwrite: bool,
                        build: Callable[[Path], None]) -> ObjectPath:
    """Create (or keep, to resume) the store at ``path`` with root ``attrs``;
    ``build(folder)`` writes its metadata into a local folder. Module docstring."""
    from datagen.store.io import io_errors
    from datagen.store.writer import _keep_existing

    location.check_bucket(path)
    fs = location.filesystem()
    with io_errors(path, "create the store"):
        if (path / "zarr.json").is_file():
            if _keep_existing(path, attrs, overwrite):
                return path
            location.remove_tree(path)
        else:
            _refuse_foreign(path)
        with tempfile.TemporaryDirectory(prefix="datagen-meta-") as tmp:
            local = Path(tmp) / "store"
            build(local)
            uploaded = {f.relative_to(local).as_posix(): f.read_bytes()
                        for f in sorted(local.rglob("*")) if f.is_file()}
        for key in sorted(uploaded, key=lambda k: (k == "zarr.json", k)):  # the root last
            fs.pipe_file(f"{path.fs_path}/{key}", uploaded[key])
        fs.invalidate_cache(path.fs_path)
        found = fs.cat([f"{path.fs_path}/{key}" for key in uploaded], on_error="return")
    changed = sorted(key for key in uploaded if found.get(f"{path.fs_path}/{key}") != uploaded[key])
    if changed:
        _keep_existing(path, attrs, overwrite=False)  # names the difference if the root changed
        raise StoreError(f"{path}: another build is creating a store of a different config at this "
                         f"prefix at the same time ({changed[0]} differs); choose another --out")
    return path


def _refuse_foreign(path: ObjectPath) -> None:
    """A prefix without a root zarr.json may hold the leftovers of a creation that
    died (split folders only): it is written over. Anything else is not ours."""
    fs = location.filesystem()
    try:
        names = {entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path.fs_path, refresh=True)}
    except FileNotFoundError:
        return
    foreign = sorted(names - set(SPLITS))
    if foreign:
        raise StoreError(f"{path}: exists and is not a Zarr store (it holds {', '.join(foreign[:3])}); "
                         "choose another --out (datagen never deletes what it did not write)")
