"""Accessors: typed, strided (interleaved), normalised and sparse views of buffer data.

Every read is bounds-checked against its buffer view before numpy sees it, and
counts are capped, so a broken file cannot make the loader read out of range or
allocate without limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.gltf.document import Document

COMPONENT_TYPES = {5120: np.dtype("i1"), 5121: np.dtype("u1"), 5122: np.dtype("<i2"),
                   5123: np.dtype("<u2"), 5125: np.dtype("<u4"), 5126: np.dtype("<f4")}
TYPE_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
INDEX_TYPES = (5121, 5123, 5125)
MAX_COUNT = 1 << 24
"""Most elements one accessor may hold (16.7M): far beyond any asset a frame needs."""


@dataclass(frozen=True)
class Header:
    """What an accessor says about its elements, checked, before any data is read."""

    where: str
    component: int
    kind: str
    count: int
    normalized: bool

    @property
    def nbytes(self) -> int:
        """bytes of the decoded elements (count x width x component size)."""
        return self.count * TYPE_WIDTHS[self.kind] * COMPONENT_TYPES[self.component].itemsize


class Accessors:
    """Reads accessors of one document, each once."""

    def __init__(self, doc: Document):
        self.doc = doc
        self._values: dict[int, np.ndarray] = {}

    def floats(self, index: int, user: str, types: tuple[str, ...]) -> np.ndarray:
        """(count, width) float32 values; normalised integers are mapped to [0, 1] or [-1, 1].

        ``user`` names the referrer for messages ("mesh 0 primitive 1 POSITION").
        """
        head = self.header(index, user)
        self._check_type(index, user, head.kind, types)
        values = self.values(index, user)
        if head.component == 5126:
            out = values.astype(np.float32)
        elif head.normalized:
            out = values.astype(np.float64) / np.iinfo(values.dtype).max
            out = np.maximum(out, -1.0).astype(np.float32)
        else:
            out = values.astype(np.float32)
        bad = ~np.isfinite(out)
        if bad.any():
            element = int(np.argwhere(bad)[0][0])
            self.doc.fail(f"{user} (accessor {index}) has a non-finite value "
                          f"({out[bad][0]}) at element {element}")
        return out

    def indices(self, index: int, user: str) -> np.ndarray:
        """(count,) int64 vertex indices."""
        head = self.header(index, user)
        self._check_type(index, user, head.kind, ("SCALAR",))
        if head.component not in INDEX_TYPES or head.normalized:
            self.doc.fail(f"{user} (accessor {index}) has componentType {head.component}"
                          f"{' normalized' if head.normalized else ''}; indices must be unsigned byte, "
                          "short or int (5121, 5123, 5125), not normalized")
        return self.values(index, user)[:, 0].astype(np.int64)

    def _check_type(self, index: int, user: str, kind: str, types: tuple[str, ...]) -> None:
        if kind not in types:
            self.doc.fail(f"{user} (accessor {index}) has type {kind}; expected {' or '.join(types)}")

    def header(self, index: int, user: str) -> Header:
        f = self.doc.item("accessors", index, user)
        component = f.enum("componentType", COMPONENT_TYPES, required=True)
        kind = f.enum("type", TYPE_WIDTHS, required=True)
        count = f.int("count", required=True, lo=1, hi=MAX_COUNT)
        normalized = f.bool("normalized", False)
        if normalized and component in (5125, 5126):
            self.doc.fail(f"{f.where} is normalized, which componentType {component} does not allow")
        if kind.startswith("MAT") and COMPONENT_TYPES[component].itemsize < 4:
            self.doc.fail(f"{f.where}: {kind} of {COMPONENT_TYPES[component].itemsize}-byte components "
                          "(column padding) is not supported")
        return Header(f.where, component, kind, count, normalized)

    def values(self, index: int, user: str) -> np.ndarray:
        """(count, width) values in the stored dtype (read-only, shared)."""
        if index in self._values:
            return self._values[index]
        head = self.header(index, user)
        f = self.doc.item("accessors", index, user)
        dtype, width = COMPONENT_TYPES[head.component], TYPE_WIDTHS[head.kind]
        view = f.ref("bufferView", "bufferViews")
        if view is None:  # all zeros unless sparse says otherwise
            values = np.zeros((head.count, width), dtype.newbyteorder("="))
        else:
            values = self._read(view, f.int("byteOffset", 0, lo=0), head.count, width, dtype, f.where, False)
        if "sparse" in f:
            self._apply_sparse(f, values)
        values.flags.writeable = False
        self._values[index] = values
        return values

    def _apply_sparse(self, f, values: np.ndarray) -> None:
        sparse = f.sub("sparse")
        count = len(values)
        n = sparse.int("count", required=True, lo=1, hi=count)
        ind, val = sparse.sub("indices", required=True), sparse.sub("values", required=True)
        ind_type = ind.enum("componentType", INDEX_TYPES, required=True)
        where = f"{f.where} sparse"
        rows = self._read(ind.ref("bufferView", "bufferViews", required=True), ind.int("byteOffset", 0, lo=0),
                          n, 1, COMPONENT_TYPES[ind_type], f"{where} indices", True)[:, 0].astype(np.int64)
        if rows.max() >= count:
            self.doc.fail(f"{where} indices reach {rows.max()}, but the accessor has {count} elements")
        values[rows] = self._read(val.ref("bufferView", "bufferViews", required=True),
                                  val.int("byteOffset", 0, lo=0), n, values.shape[1], values.dtype,
                                  f"{where} values", True)

    def _read(self, view: int, offset: int, count: int, width: int, dtype: np.dtype, where: str,
              tight: bool) -> np.ndarray:
        """``count`` elements of ``width`` components from buffer view ``view``, bounds-checked."""
        data, stride = self.doc.buffer_view(view, where)
        element = width * dtype.itemsize
        if stride is None or tight:
            stride = element
        if stride < element:
            self.doc.fail(f"{where}: elements of {element} bytes do not fit bufferView {view}'s "
                          f"byteStride {stride}")
        end = offset + stride * (count - 1) + element
        if end > len(data):
            self.doc.fail(f"{where} reads bytes {offset}..{end} of bufferView {view}, "
                          f"which has {len(data)} bytes")
        strided = np.ndarray((count, width), dtype, buffer=data, offset=offset,
                             strides=(stride, dtype.itemsize))
        return np.array(strided, dtype=dtype.newbyteorder("="))
