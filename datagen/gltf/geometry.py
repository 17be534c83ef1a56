"""Mesh primitives -> ``Mesh``: attributes, indices, triangle strips and fans, normals.

Primitives without normals get flat normals (each triangle its own three
vertices), as the glTF spec asks; without the UV set their material samples,
UVs are zeros. Points and lines are skipped with a warning.
"""

from __future__ import annotations

import numpy as np

from datagen.gltf.accessors import Accessors
from datagen.gltf.document import Document, Fields
from datagen.scene import Mesh

MODES = {0: "POINTS", 1: "LINES", 2: "LINE_LOOP", 3: "LINE_STRIP", 4: "TRIANGLES", 5: "TRIANGLE_STRIP",
         6: "TRIANGLE_FAN"}
MAX_COORDINATE = 1e9
"""metres; positions beyond this are refused as absurd (they would wreck the bounds)."""


def check_budget(doc: Document, acc: Accessors) -> None:
    """Refuse a file whose declared sizes exceed ``doc.budget`` (vertices and triangles of
    every mesh primitive, bytes of every buffer and accessor) before any data is read."""
    budget, vertices, triangles = doc.budget, 0, 0
    for m in range(len(doc.array("meshes"))):
        mesh = doc.item("meshes", m)
        for p, prim_json in enumerate(mesh.list("primitives")):
            prim = doc.fields(prim_json, f"{mesh.where} primitive {p}")
            attributes = prim.sub("attributes")
            if "POSITION" not in attributes:
                continue  # refused with its own message when the primitive is read
            n = acc.header(attributes.ref("POSITION", "accessors"), f"{prim.where} POSITION").count
            k = acc.header(prim.ref("indices", "accessors"), f"{prim.where} indices").count \
                if "indices" in prim else n
            mode = prim.enum("mode", MODES, 4)
            vertices += n
            triangles += k // 3 if mode == 4 else max(k - 2, 0) if mode > 4 else 0
    for what, count, most in (("vertices", vertices, budget.max_vertices),
                              ("triangles", triangles, budget.max_triangles)):
        if count > most:
            doc.fail(f"its meshes declare {count} {what}, more than the budget of {most} per file "
                     f"(max_{what}); refused before reading them")
    buffers = sum(doc.item("buffers", i).int("byteLength", required=True, lo=1)
                  for i in range(len(doc.array("buffers"))))
    accessors = sum(acc.header(i, f"accessor {i}").nbytes for i in range(len(doc.array("accessors"))))
    doc.charge(buffers + accessors, f"its buffers ({buffers} bytes) and accessors ({accessors} bytes)")


def primitive_mesh(doc: Document, acc: Accessors, prim: Fields, uv_set: int, flip: bool) -> Mesh | None:
    """The triangles of one primitive, or None if it draws points or lines.

    ``flip`` reverses the winding, for nodes whose world transform mirrors.
    """
    where = prim.where
    mode = prim.enum("mode", MODES, 4)
    if mode < 4:
        doc.warn(f"mode{mode}", f"{MODES[mode]} primitives are not drawn (only triangles)")
        return None
    attributes = prim.sub("attributes", required=True)
    if "POSITION" not in attributes:
        doc.fail(f"{where} has no POSITION attribute")

    def read(name: str, kind: str) -> np.ndarray:
        return acc.floats(attributes.ref(name, "accessors", required=True), f"{where} {name}", (kind,))

    positions = read("POSITION", "VEC3")
    if np.abs(positions).max() > MAX_COORDINATE:
        doc.fail(f"{where} POSITION has a coordinate of {np.abs(positions).max():.3g} m; "
                 f"at most {MAX_COORDINATE:.0e} is accepted")
    n = len(positions)
    normals = read("NORMAL", "VEC3") if "NORMAL" in attributes else None
    uv_name = f"TEXCOORD_{uv_set}"
    uvs = read(uv_name, "VEC2") if uv_name in attributes else np.zeros((n, 2), np.float32)
    for name, values in (("NORMAL", normals), (uv_name, uvs)):
        if values is not None and len(values) != n:
            doc.fail(f"{where} {name} has {len(values)} elements but POSITION has {n}")
    if "COLOR_0" in attributes:
        doc.warn("color", "vertex colours (COLOR_0) are ignored")

    if "indices" in prim:
        indices = acc.indices(prim.ref("indices", "accessors"), f"{where} indices")
        if indices.max() >= n:
            at = int(np.argmax(indices >= n))
            doc.fail(f"{where} index {int(indices[at])} at position {at} is out of bounds: "
                     f"POSITION has {n} vertices")
    else:
        indices = np.arange(n, dtype=np.int64)
    triangles = assemble(doc, where, mode, indices)
    if len(triangles) == 0:
        doc.warn(f"empty{where}", f"{where} has no complete triangle; skipped")
        return None
    if flip:
        triangles = triangles[:, ::-1]
    if normals is None:
        return flat_mesh(positions[triangles], uvs[triangles])
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(norm > 1e-12, normals / np.maximum(norm, 1e-12), np.float32([0, 1, 0]))
    return Mesh(positions, normals.astype(np.float32), uvs, triangles.astype(np.uint32))


def assemble(doc: Document, where: str, mode: int, indices: np.ndarray) -> np.ndarray:
    """(m, 3) counter-clockwise triangles from TRIANGLES, TRIANGLE_STRIP or TRIANGLE_FAN indices."""
    n = len(indices)
    if mode == 4:
        if n % 3:
            doc.fail(f"{where} has {n} indices (or vertices), which is not a multiple of 3")
        return indices.reshape(-1, 3)
    if n < 3:
        return np.zeros((0, 3), np.int64)
    k = np.arange(n - 2)
    if mode == 5:  # strip: every other triangle is wound the other way
        odd = k % 2 == 1
        return np.stack([indices[k], indices[np.where(odd, k + 2, k + 1)],
                         indices[np.where(odd, k + 1, k + 2)]], 1)
    return np.stack([np.full(n - 2, indices[0]), indices[k + 1], indices[k + 2]], 1)  # fan


def flat_mesh(corners: np.ndarray, uvs: np.ndarray) -> Mesh:
    """A mesh of unshared vertices with face normals from (m, 3, 3) triangle corners."""
    face = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]).astype(np.float64)
    length = np.linalg.norm(face, axis=1, keepdims=True)
    face = np.where(length > 0, face / np.where(length > 0, length, 1.0), [0.0, 1.0, 0.0])
    m = len(corners)
    return Mesh(corners.reshape(-1, 3).astype(np.float32), np.repeat(face, 3, axis=0).astype(np.float32),
                uvs.reshape(-1, 2).astype(np.float32), np.arange(3 * m, dtype=np.uint32).reshape(-1, 3))


def has_area(mesh: Mesh, rel: float = 1e-10) -> bool:
    """Whether any triangle of ``mesh`` has an area above ``rel`` x its bounding box diagonal
    squared (float rounding leaves collinear or coincident corners a tiny area, not zero)."""
    corners = mesh.positions.astype(np.float64)[mesh.indices]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lo, hi = mesh.positions.min(0), mesh.positions.max(0)
    scale = float(np.sum((hi.astype(np.float64) - lo) ** 2))
    return bool(scale > 0 and (0.5 * np.linalg.norm(cross, axis=1)).max() > rel * scale)
