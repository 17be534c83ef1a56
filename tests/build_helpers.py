"""Comparing whole stores array by array, for the build tests (fault-free builds are the
reference every resumed, retried or re-scheduled build must equal)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from datagen.store import location


def read_arrays(path: Path | str) -> dict[str, np.ndarray]:
    """Every array of every split, keyed "split/name" (a local path or an s3:// URL)."""
    root = zarr.open_group(location.zarr_store(location.parse(path), read_only=True), mode="r")
    return {f"{split}/{name}": root[split][name][...]
            for split in ("train", "val", "test") for name in sorted(root[split].array_keys())}


def assert_same_arrays(a: Path | str, b: Path | str) -> None:
    """The stores at ``a`` and ``b`` hold the same arrays with identical values (NaN = NaN)."""
    left, right = read_arrays(a), read_arrays(b)
    assert left.keys() == right.keys()
    for name, x in left.items():
        assert np.array_equal(x, right[name], equal_nan=x.dtype.kind == "f"), name
