"""``datagen export --format exr``: stored sequences back to the SPEC §3 folder layout.

::

    OUT/SPLIT/NNNN/lr/NNNN.exr       LR colour + G-buffer (datagen.exr.LR_LAYOUT)
    OUT/SPLIT/NNNN/hr/NNNN.exr       HR colour, depth, motion (datagen.exr.HR_LAYOUT)
    OUT/SPLIT/NNNN/preview/NNNN.png  unless previews=False
    OUT/SPLIT/NNNN/sequence.json     per-frame cameras and timing, conventions, resolved config,
                                     and the sequence's own metadata (scene, seed, camera rig, ...)

The folder of one sequence is exactly what ``datagen render`` writes
(``datagen.output.write_sequence_dir``), with frames read from the store one
shard at a time. Only complete sequences are exported; an earlier export of a
sequence is replaced (its frame files first removed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from datagen.errors import StoreError
from datagen.frame import Frame
from datagen.output import write_sequence_dir
from datagen.store.reader import SequenceInfo, Store

log = logging.getLogger(__name__)

FORMATS = ("exr", "nss")
"""``--format`` values: exr here, nss in ``datagen.store.nss``."""


def sequence_dir(out: str | os.PathLike, info: SequenceInfo) -> Path:
    """OUT/SPLIT/NNNN of one sequence."""
    return Path(out) / info.split / f"{info.index:04d}"


def sequence_meta(store: Store, info: SequenceInfo) -> dict:
    """The top-level keys of an exported sequence.json besides the frames."""
    return {
        "conventions": store.conventions,
        "config": store.config,
        "sequence": {"split": info.split, "index": info.index, "scene": info.scene, "seed": info.seed,
                     "meta": info.meta},
        "store": {"path": str(store.path), "schema_version": store.attrs["schema_version"],
                  "datagen_version": store.attrs["datagen_version"]},
    }


def frames_of(store: Store, info: SequenceInfo) -> Iterator[Frame]:
    """The frames of a stored sequence, a shard at a time; a damaged shard is a StoreError."""
    try:
        yield from store.iter_frames(info.split, info.index)
    except StoreError:
        raise
    except Exception as exc:  # a damaged shard: name the sequence, suggest validate
        raise StoreError(f"{store.path}: cannot read {info.split} sequence {info.index}: "
                         f"{type(exc).__name__}: {exc}; run `datagen validate {store.path}`") from exc


def export_exr(store: Store, sequences: Sequence[SequenceInfo], out: str | os.PathLike, previews: bool = True,
               progress: Callable[[], object] | None = None) -> list[Path]:
    """Write each complete sequence of ``sequences`` to ``sequence_dir(out, info)``;
    return the sequence.json paths. ``progress`` is called after every frame."""
    out = Path(out)
    written = []
    for info in sequences:
        if not info.complete:
            raise StoreError(f"{info.split} sequence {info.index} is not complete; export complete sequences "
                             "only (run the build again to finish it)")
        target = sequence_dir(out, info)
        written.append(write_sequence_dir(target, frames_of(store, info), sequence_meta(store, info),
                                          progress=progress, previews=previews, overwrite=True))
        log.info("exported %s sequence %d to %s", info.split, info.index, target)
    return written
