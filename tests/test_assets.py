"""Mesh files through trimesh (datagen.assets): the shipped OBJ/PLY/STL/OFF assets load
with their materials, UVs keep glTF's top-left origin, broken or over-budget files get
one line, `datagen render FILE.obj` works end to end, and pyproject lists only
dependencies the code imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from datagen.assets import load_asset
from datagen.errors import ConfigError, SceneLoadError
from datagen.scenes.recipes import load

ROOT = Path(__file__).resolve().parent.parent
MESHES = ROOT / "scenes" / "assets" / "mesh"
DATAGEN = [sys.executable, "-m", "datagen"]


def triangles(scene) -> int:
    return sum(len(n.mesh.indices) for n in scene.drawables())


@pytest.mark.parametrize("name, tris", [("textured_ball.obj", 672), ("torus.ply", 768), ("cone.stl", 48),
                                        ("icosahedron.off", 20)])
def test_shipped_meshes_load(name, tris):
    scene = load_asset(MESHES / name, first_object_id=5)
    nodes = scene.drawables()
    assert [n.object_id for n in nodes] == list(range(5, 5 + len(nodes)))
    assert triangles(scene) >= tris
    for node in nodes:
        mesh = node.mesh
        assert np.allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-4)
        # outward normals: the mean of normal . (position - centre) is positive for these convex shapes
        centre = mesh.positions.mean(0)
        assert float(np.mean(np.sum(mesh.normals * (mesh.positions - centre), 1))) > 0
    assert np.isfinite(scene.bounds).all()
    assert scene.camera.view(0.0).shape == (4, 4)


def test_obj_material_and_texture():
    (node,) = load_asset(MESHES / "textured_ball.obj").drawables()
    m = node.material
    assert m.base_color_texture is not None and m.base_color_texture.pixels.shape == (128, 128, 4)
    assert m.base_color_texture.srgb and m.alpha_mode == "OPAQUE" and m.metallic == 0.0
    assert 0.0 < m.roughness < 1.0  # from the MTL's Ns


def test_ply_vertex_colours_become_the_base_colour():
    (node,) = load_asset(MESHES / "torus.ply").drawables()
    r, g, b, a = node.material.base_color
    assert r > g > b and a == 1.0  # the torus is painted orange-brown on average


def test_uv_origin_is_top_left(tmp_path):
    """OBJ's vt (0, 0) is the bottom-left of the image; the scene model's (0, 0) is the top-left."""
    path = tmp_path / "tri.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nvn 0 0 1\nf 1/1/1 2/2/1 3/3/1\n")
    (node,) = load_asset(path).drawables()
    mesh = node.mesh
    uv_of = {tuple(np.round(p, 3)): tuple(uv) for p, uv in zip(mesh.positions, mesh.uvs, strict=True)}
    assert uv_of[(0.0, 0.0, 0.0)] == (0.0, 1.0)
    assert uv_of[(0.0, 1.0, 0.0)] == (0.0, 0.0)
    assert np.allclose(node.mesh.normals, [0, 0, 1])  # the file's normals are kept


BROKEN = {
    "empty.obj": (b"", "has no faces"),
    "short_face.obj": (b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\n", "line 4: a face with 2 index(es)"),
    "points.ply": (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
                   b"property float z\nend_header\n0 0 0\n", "has no faces"),
    "huge.ply": (b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\nproperty float x\n"
                 b"element face 2000000000\nproperty list uchar int vertex_indices\nend_header\n" + bytes(64),
                 "more than its"),
    "huge.off": (b"OFF\n1000000 2000000 0\n0 0 0\n", "more than its"),
    "not.off": (b"hello\n", "not an OFF file"),
    "truncated.stl": (b"\0" * 80 + (1000).to_bytes(4, "little") + bytes(50), "neither a binary STL"),
    "mesh.xyz": (b"0 0 0\n", "unsupported mesh format"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_get_one_clear_error(tmp_path, name):
    data, expected = BROKEN[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SceneLoadError, match=re.escape(expected)) as info:
        load_asset(path)
    assert "\n" not in str(info.value) and name in str(info.value)


def test_triangle_budget():
    with pytest.raises(SceneLoadError, match="over the budget of 100"):
        load_asset(MESHES / "textured_ball.obj", max_triangles=100)
    with pytest.raises(SceneLoadError, match="over the budget of 10"):
        load_asset(ROOT / "scenes" / "assets" / "Duck.glb", max_triangles=10)
    with pytest.raises(ConfigError, match="max_triangles"):
        load_asset(MESHES / "cone.stl", max_triangles=0)


def test_mesh_paths_resolve_to_the_mesh_generator():
    recipe = load(str(MESHES / "torus.ply"))
    assert recipe.generator == "mesh" and recipe.name == "torus"
    assert load(str(ROOT / "scenes" / "assets" / "Duck.glb")).generator == "gltf"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LP_NUM_THREADS": "1"}
    return subprocess.run([*DATAGEN, *args], capture_output=True, text=True, env=env, timeout=120)


def test_render_obj_end_to_end(tmp_path):
    import OpenEXR

    out = tmp_path / "ball"
    proc = _run("render", str(MESHES / "textured_ball.obj"), "--frames", "2", "--res", "32x18", "--spp", "8",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    ids = OpenEXR.File(str(out / "lr" / "0001.exr"), separate_channels=True).channels()["objectId"].pixels
    assert ids[ids.shape[0] // 2, ids.shape[1] // 2] == 1 and (ids == 0).any()  # the ball, sky around it


@pytest.mark.parametrize("content, expected", [("", "has no faces"), ("v 0 0 0\nf 1 1\n", "a face with 2")])
def test_render_broken_obj_exits_2_with_one_line(tmp_path, content, expected):
    path = tmp_path / "broken.obj"
    path.write_text(content)
    proc = _run("render", str(path), "--frames", "1", "--res", "16x8", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr
    assert "Traceback" not in proc.stderr


IMPORT_NAMES = {"pillow": "PIL", "dask": "distributed", "imageio-ffmpeg": "imageio_ffmpeg"}
"""Distribution -> the module the code imports (dask[distributed] is used through distributed)."""


PINNED_FOR = {"ml_dtypes": "tensorstore"}
"""Distributions declared only to bound a version another dependency pulls in -> that dependency."""


def test_every_declared_dependency_is_imported():
    from importlib.metadata import requires

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    sources = "\n".join(p.read_text() for p in (ROOT / "datagen").rglob("*.py"))
    for dep in deps:
        dist = re.match(r"[A-Za-z0-9_.-]+", dep).group(0)
        if dist in PINNED_FOR:
            parent = PINNED_FOR[dist]
            assert any(re.match(rf"{re.escape(dist)}\b", r) for r in requires(parent)), (
                f"pyproject pins {dep} for {parent}, which no longer requires it")
            continue
        module = IMPORT_NAMES.get(dist.lower(), dist.replace("-", "_"))
        assert re.search(rf"^\s*(import|from) {re.escape(module)}\b", sources, re.M), (
            f"pyproject declares {dep} but no module of datagen imports {module}")
