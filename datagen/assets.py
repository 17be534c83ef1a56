"""Mesh files as scenes: OBJ (with its MTL and textures), PLY, STL, OFF and the
other formats trimesh reads, through trimesh; .gltf/.glb through datagen's own
glTF loader (``datagen.gltf``: animation, stricter checks).

``load_asset(path) -> Scene`` is the one entry point. Each geometry instance of
the file becomes a ``Node`` with its world transform (trimesh's scene graph),
positions, normals (the file's, else flat per face), UVs (V flipped to glTF's
top-left origin; zeros where the file has none) and a material mapped to the
renderer's metallic-roughness parameters:

- glTF-style PBR materials keep their factors and five textures;
- OBJ/MTL materials go through trimesh's ``to_pbr`` (``Kd`` -> base colour,
  ``Ns`` -> roughness, ``map_Kd`` -> base colour texture); a base colour texture
  with transparent texels makes the material alpha-MASKed and double-sided;
  an ``d``/``Tr`` below 1 makes it BLEND;
- vertex or face colours (PLY) are averaged into one base colour (the scene
  model has no per-vertex colour).

Memory stays bounded: the file size is checked first (``MAX_FILE_BYTES``), then
the triangle count the file declares (OBJ faces, PLY and OFF headers, the STL
count) against ``max_triangles`` before trimesh builds any array; malformed
faces (fewer than 3 indices) are refused with their line. Every problem raises
``SceneLoadError`` naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import numpy as np

from datagen.errors import ConfigError, SceneLoadError
from datagen.gltf import load_gltf, orbit_camera
from datagen.gltf.loader import STUDIO_SKY, orbit_parameters, world_bounds
from datagen.gltf.materials import MAX_IMAGE_SIDE
from datagen.scene import Camera, Material, Mesh, Node, Scene, Texture, static

log = logging.getLogger(__name__)

GLTF_SUFFIXES = (".gltf", ".glb")
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off")
"""Formats whose declared size is checked before trimesh reads them."""
DEFAULT_MAX_TRIANGLES = 2_000_000
MAX_FILE_BYTES = 512 << 20
"""A mesh file larger than this is refused before it is read (trimesh holds it whole)."""
MAX_DECLARED = 1 << 31
"""A header count above this is malformed whatever the budget."""


def asset_suffixes() -> tuple[str, ...]:
    """Every file suffix ``load_asset`` accepts (lower case, with the dot)."""
    import trimesh

    others = sorted(f".{f}" for f in trimesh.available_formats()
                    if f".{f}" not in GLTF_SUFFIXES + MESH_SUFFIXES and "." not in f
                    and f not in ("zip", "bz2", "xyz", "dxf", "stl_ascii"))
    return (*GLTF_SUFFIXES, *MESH_SUFFIXES, *others)


def load_asset(path: str | Path, seed: int = 0, *, fps: float = 30.0, first_object_id: int = 1,
               max_triangles: int = DEFAULT_MAX_TRIANGLES) -> Scene:
    """A mesh or glTF file as a Scene with an orbit camera framing it (seed varies the
    orbit as for ``load_gltf``), object ids counting up from ``first_object_id``.

    Raises SceneLoadError for a missing, malformed, empty or over-budget file and
    ConfigError for a bad argument.
    """
    if isinstance(max_triangles, bool) or not isinstance(max_triangles, int) or max_triangles < 1:
        raise ConfigError(f"max_triangles must be an integer >= 1, got {max_triangles!r}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in GLTF_SUFFIXES:
        scene = load_gltf(path, seed=seed, fps=fps, camera="orbit", first_object_id=first_object_id)
        triangles = sum(len(n.mesh.indices) for n in scene.drawables())
        if triangles > max_triangles:
            raise SceneLoadError(f"{path}: {triangles} triangles, over the budget of {max_triangles} "
                                 "(raise max_triangles or decimate the model)")
        return scene
    if suffix not in asset_suffixes():
        raise SceneLoadError(f"{path}: unsupported mesh format {suffix or '(no suffix)'!r}; "
                             f"use one of {', '.join(asset_suffixes())}")
    if not path.is_file():
        raise SceneLoadError(f"{path}: no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SceneLoadError(f"{path}: {size} bytes, over the {MAX_FILE_BYTES >> 20} MiB a mesh file "
                             "may have")
    declared = declared_triangles(path, suffix)
    if declared > max_triangles:
        raise SceneLoadError(f"{path}: declares {declared} triangles, over the budget of {max_triangles} "
                             "(raise max_triangles or decimate the model)")
    try:
        with np.errstate(all="ignore"):
            nodes = _trimesh_nodes(path, first_object_id, max_triangles)
    except SceneLoadError:
        raise
    except Exception as exc:  # whatever trimesh raises on a malformed file: still one line
        raise SceneLoadError(f"{path}: cannot be read as {suffix[1:].upper()} "
                             f"({type(exc).__name__}: {exc})") from exc
    scene = Scene(path.stem, nodes, Camera(view=static(np.eye(4))), sky=STUDIO_SKY, fps=fps)
    bounds = world_bounds(scene, np.zeros(1))
    if not np.isfinite(bounds).all():
        raise SceneLoadError(f"{path}: has non-finite vertex positions")
    return dataclasses.replace(scene, camera=orbit_camera(bounds, **orbit_parameters(seed)), bounds=bounds)


# -- declared sizes, read before trimesh builds arrays ----------------------------------


def declared_triangles(path: Path, suffix: str) -> int:
    """Triangles the file declares (a polygon of k corners counts k - 2), read from its
    header (PLY, OFF, binary STL) or by streaming its face lines (OBJ, ASCII STL);
    0 for other formats. SceneLoadError for faces of fewer than 3 indices or a
    header that contradicts the file's size."""
    if suffix == ".obj":
        return _obj_triangles(path)
    if suffix == ".off":
        return _off_triangles(path)
    if suffix == ".ply":
        return _ply_triangles(path)
    if suffix == ".stl":
        return _stl_triangles(path)
    return 0


def _obj_triangles(path: Path) -> int:
    triangles = 0
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if line[:2] == b"f " or line[:2] == b"f\t":
                corners = len(line.split()) - 1
                if corners < 3:
                    raise SceneLoadError(f"{path}: line {number}: a face with {corners} index(es); "
                                         "a face needs at least 3")
                triangles += corners - 2
    if triangles == 0:
        raise SceneLoadError(f"{path}: has no faces ('f' lines) to draw")
    return triangles


def _off_triangles(path: Path) -> int:
    with path.open("rb") as f:
        head = f.read(4096).decode("ascii", "replace")
    lines = [ln.split("#")[0].strip() for ln in head.splitlines()]
    words = " ".join(ln for ln in lines if ln).split()
    if not words or not words[0].endswith("OFF"):
        raise SceneLoadError(f"{path}: not an OFF file (it must start with 'OFF')")
    try:
        vertices, faces = int(words[1]), int(words[2])
    except (IndexError, ValueError):
        raise SceneLoadError(f"{path}: the OFF header must give vertex, face and edge counts") from None
    if not (0 <= vertices < MAX_DECLARED and 0 < faces < MAX_DECLARED):
        raise SceneLoadError(f"{path}: OFF header declares {vertices} vertices and {faces} faces")
    if vertices * 6 + faces * 8 > path.stat().st_size:  # "x y z\n" and "3 a b c\n" at the least
        raise SceneLoadError(f"{path}: declares {vertices} vertices and {faces} faces, more than its "
                             f"{path.stat().st_size} bytes can hold")
    return faces


PLY_ELEMENT = re.compile(rb"^element\s+(\S+)\s+(\d+)\s*$")


def _ply_triangles(path: Path) -> int:
    counts: dict[bytes, int] = {}
    with path.open("rb") as f:
        if f.readline().strip() != b"ply":
            raise SceneLoadError(f"{path}: not a PLY file (it must start with 'ply')")
        for _ in range(1000):
            line = f.readline()
            if not line or line.strip() == b"end_header":
                break
            m = PLY_ELEMENT.match(line.strip())
            if m:
                counts[m.group(1)] = int(m.group(2))
        else:
            raise SceneLoadError(f"{path}: PLY header has no end_header in its first 1000 lines")
        body = path.stat().st_size - f.tell()
    faces = counts.get(b"face", 0)
    if faces == 0:
        raise SceneLoadError(f"{path}: has no faces to draw (a point cloud?)")
    if faces >= MAX_DECLARED or counts.get(b"vertex", 0) >= MAX_DECLARED \
            or faces * 4 + counts.get(b"vertex", 0) * 3 > body:  # the fewest bytes a row can take
        raise SceneLoadError(f"{path}: declares {counts.get(b'vertex', 0)} vertices and {faces} faces, "
                             f"more than its {body} bytes after the header can hold")
    return faces


def _stl_triangles(path: Path) -> int:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(84)
    if len(head) == 84:
        count = int.from_bytes(head[80:84], "little")
        if size == 84 + 50 * count:  # binary STL
            if count == 0:
                raise SceneLoadError(f"{path}: has no triangles to draw")
            return count
    if not head.lstrip().startswith(b"solid"):
        raise SceneLoadError(f"{path}: neither a binary STL (84-byte header, 50 bytes a triangle) "
                             "nor an ASCII one ('solid ...')")
    count = 0
    with path.open("rb") as f:
        for line in f:
            count += line.lstrip().startswith(b"facet")
    if count == 0:
        raise SceneLoadError(f"{path}: has no facets to draw")
    return count


# -- trimesh -> Nodes ----------------------------------------------------------------------


def _trimesh_nodes(path: Path, first_object_id: int, max_triangles: int) -> tuple[Node, ...]:
    import trimesh

    loaded = trimesh.load(str(path), force="scene", process=False)
    nodes, next_id, triangles, skipped = [], first_object_id, 0, 0
    materials: dict[int, Material] = {}
    for node_name in loaded.graph.nodes_geometry:
        world, geometry_name = loaded.graph[node_name]
        geometry = loaded.geometry[geometry_name]
        if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
            skipped += 1
            continue
        triangles += len(geometry.faces)
        if triangles > max_triangles:
            raise SceneLoadError(f"{path}: more than {max_triangles} triangles, over the budget "
                                 "(raise max_triangles or decimate the model)")
        world = np.asarray(world, dtype=np.float64)
        mesh = trimesh_mesh(geometry, mirrored=bool(np.linalg.det(world[:3, :3]) < 0))
        key = id(getattr(geometry.visual, "material", geometry.visual))
        if key not in materials:
            materials[key] = trimesh_material(geometry, str(path))
        nodes.append(Node(f"{path.stem}/{node_name}", static(world), mesh, materials[key], next_id))
        next_id += 1
    if skipped:
        log.warning("%s: %d geometries without triangles (points, lines) skipped", path, skipped)
    if not nodes:
        raise SceneLoadError(f"{path}: has no triangles to draw")
    return tuple(nodes)


def trimesh_mesh(geometry, mirrored: bool = False) -> Mesh:
    """A ``trimesh.Trimesh`` as a Mesh: its own vertex normals if the file gave them,
    else flat (each face gets its own three vertices and its face normal)."""
    positions = np.asarray(geometry.vertices, dtype=np.float64)
    faces = np.asarray(geometry.faces, dtype=np.int64)
    if faces.min() < 0 or faces.max() >= len(positions):
        raise SceneLoadError(f"face indices reach {int(faces.max())}, the mesh has {len(positions)} vertices")
    uv = getattr(geometry.visual, "uv", None)
    uvs = np.zeros((len(positions), 2)) if uv is None or len(uv) != len(positions) else np.asarray(uv, float)
    uvs = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], -1)  # trimesh: (0, 0) bottom-left; glTF: top-left
    if "vertex_normals" in geometry._cache:  # the file's own normals
        normals = np.asarray(geometry.vertex_normals, dtype=np.float64)
        indices = faces
    else:
        corners = positions[faces]
        n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        length = np.linalg.norm(n, axis=1, keepdims=True)
        n = np.where(length > 0, n / np.maximum(length, 1e-300), [0.0, 1.0, 0.0])
        positions, uvs = corners.reshape(-1, 3), uvs[faces].reshape(-1, 2)
        normals = np.repeat(n, 3, axis=0)
        indices = np.arange(len(positions)).reshape(-1, 3)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(norm > 0, normals / np.maximum(norm, 1e-300), [0.0, 1.0, 0.0])
    if mirrored:
        indices = indices[:, ::-1]
    return Mesh(positions.astype("f4"), normals.astype("f4"), uvs.astype("f4"), indices.astype("u4"))


def _texture(image, srgb: bool, where: str) -> Texture | None:
    if image is None:
        return None
    w, h = image.size
    if max(w, h) > MAX_IMAGE_SIDE:
        raise SceneLoadError(f"{where}: a {w}x{h} texture; at most {MAX_IMAGE_SIDE} pixels a side")
    return Texture(np.ascontiguousarray(np.asarray(image.convert("RGBA"), dtype=np.uint8)), srgb=srgb)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def trimesh_material(geometry, where: str) -> Material:
    """The renderer's Material for a trimesh geometry's visual (see the module docstring)."""
    visual = geometry.visual
    if visual.kind in ("vertex", "face"):
        colours = visual.vertex_colors if visual.kind == "vertex" else visual.face_colors
        mean = np.asarray(colours, dtype=np.float64).mean(0) / 255.0
        rgb = srgb_to_linear(mean[:3])
        return Material(base_color=(*map(float, rgb), float(mean[3])), roughness=0.6,
                        alpha_mode="BLEND" if mean[3] < 0.999 else "OPAQUE")
    material = getattr(visual, "material", None)
    if material is None:
        return Material()
    pbr = material.to_pbr() if hasattr(material, "to_pbr") else material
    factor = pbr.baseColorFactor
    base = np.ones(4) if factor is None else np.asarray(factor, dtype=np.float64)
    if base.max() > 1.0 or np.issubdtype(np.asarray(factor).dtype, np.integer):
        base = base / 255.0
    base = np.clip(np.resize(base, 4) if len(base) == 4 else np.append(base[:3], 1.0), 0.0, 1.0)
    textures = {
        "base_color_texture": _texture(pbr.baseColorTexture, True, where),
        "metallic_roughness_texture": _texture(pbr.metallicRoughnessTexture, False, where),
        "normal_texture": _texture(pbr.normalTexture, False, where),
        "emissive_texture": _texture(pbr.emissiveTexture, True, where),
        "occlusion_texture": _texture(pbr.occlusionTexture, False, where),
    }
    emissive = np.zeros(3) if pbr.emissiveFactor is None else np.clip(np.asarray(pbr.emissiveFactor, float),
                                                                      0, None)
    alpha_mode = (pbr.alphaMode or "OPAQUE").upper()
    base_tex = textures["base_color_texture"]
    if alpha_mode == "OPAQUE" and base[3] < 0.999:
        alpha_mode = "BLEND"
    elif alpha_mode == "OPAQUE" and base_tex is not None and (base_tex.pixels[..., 3] < 128).any():
        alpha_mode = "MASK"  # an OBJ cut-out (leaves, fences): its PNG's alpha is the mask
    return Material(
        base_color=tuple(float(x) for x in base),
        metallic=float(np.clip(0.0 if pbr.metallicFactor is None else pbr.metallicFactor, 0, 1)),  # MTL: none
        roughness=float(np.clip(1.0 if pbr.roughnessFactor is None else pbr.roughnessFactor, 0, 1)),
        emissive=tuple(float(x) for x in emissive[:3]),
        alpha_mode=alpha_mode if alpha_mode in ("OPAQUE", "MASK", "BLEND") else "OPAQUE",
        alpha_cutoff=float(0.5 if pbr.alphaCutoff is None else pbr.alphaCutoff),
        double_sided=bool(pbr.doubleSided) or alpha_mode == "MASK",
        **textures)
