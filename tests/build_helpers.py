"""Comparing whole stores array by array, for the build tests (fault-free builds are the
reference every resumed, retried or re-scheduled build must equal)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of every split, keyed "split/name"."""
    root = zarr.open_group(path, mode="r")
    return {f"{split}/{name}": root[split][name][...]
            for split in ("train", "val", "test") for name in sorted(root[split].array_keys())}


def assert_same_arrays(a: Path, b: Path) -> None:
    """The stores at ``a`` and ``b`` hold the same arrays with identical values (NaN = NaN)."""
    left, right = read_arrays(a), read_arrays(b)
    assert left.keys() == right.keys()
    for name, x in left.items():
        assert np.array_equal(x, right[name], equal_nan=x.dtype.kind == "f"), name
