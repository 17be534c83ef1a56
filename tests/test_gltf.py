"""glTF import against files the tests write themselves, on a real GL context.

Rendered checks use flat quads and test_render.py's twin ray caster
(``expected``), which gives the exact object id, depth and previous position at
any pixel. The bad-input corpus breaks valid files in many ways; each must give
one SceneLoadError naming the file, quickly.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gltf_builder import GltfBuilder, pack_glb, png_bytes
from test_render import FACING_Z, Rect, expected

from datagen import conventions as cv
from datagen.errors import SceneLoadError
from datagen.gltf import load_gltf, orbit_camera
from datagen.gltf.animation import AnimatedTRS, Track, quat_to_matrix, slerp
from datagen.scene import Scene

DATA = Path(__file__).parent / "data"
SAMPLE_MODELS = ("BoxInterleaved.glb", "BoxTextured.glb", "Duck.glb")
FPS = 30.0
MOTION_TOL_PX = 0.01


# -- maths the tests use to state expectations by hand -----------------------------------


def translation(xyz) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = xyz
    return m


def axis_rotation(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    m = np.eye(4)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def quat(axis: str, angle: float) -> list[float]:
    """glTF quaternion (x, y, z, w) of a rotation by ``angle`` about a coordinate axis."""
    q = [0.0, 0.0, 0.0, float(np.cos(angle / 2))]
    q["xyz".index(axis)] = float(np.sin(angle / 2))
    return q


def column_major(m: np.ndarray) -> list[float]:
    return np.asarray(m, dtype=np.float64).T.ravel().tolist()


def quad(size: float):
    """A size x size square in the local xy plane facing +z, with glTF UVs ((0, 0) top-left)."""
    h = size / 2
    positions = [(-h, -h, 0), (h, -h, 0), (h, h, 0), (-h, h, 0)]
    normals = [(0, 0, 1)] * 4
    uvs = [(0, 1), (1, 1), (1, 0), (0, 0)]
    return positions, normals, uvs, [0, 1, 2, 0, 2, 3]


def quadrant_texture(n: int = 8, alpha_left: int = 255) -> np.ndarray:
    """Top-left red, top-right green, bottom-left blue, bottom-right white (row 0 = top)."""
    px = np.zeros((n, n, 4), np.uint8)
    h = n // 2
    px[:h, :h, :3] = (255, 0, 0)
    px[:h, h:, :3] = (0, 255, 0)
    px[h:, :h, :3] = (0, 0, 255)
    px[h:, h:, :3] = (255, 255, 255)
    px[..., 3] = 255
    px[:, :h, 3] = alpha_left
    return px


# -- expectations: test_render's twin ray caster ------------------------------------------


def quad_rect(object_id: int, world, size: float) -> Rect:
    """The ``quad(size)`` under ``world(t)`` as test_render's analytic ``Rect``
    (a y-up plane turned by FACING_Z into the xy plane, facing +z)."""
    return Rect(object_id, lambda t: world(t) @ FACING_Z, (size, size))


def check_ids_and_depth(frame, quads, scene, config, frame_index) -> None:
    lr = expected(quads, scene, config, frame_index, "lr")
    inside = lr["interior"]
    np.testing.assert_array_equal(frame.object_id_lr[inside], lr["ids"][inside])
    for q in quads:  # every object is seen and checked
        assert (inside & (lr["ids"] == q.object_id)).sum() >= 4, q.object_id
    solid = inside & (lr["ids"] != 0)
    np.testing.assert_allclose(frame.depth_lr[solid], lr["depth"][solid], rtol=1e-5)
    hr = expected(quads, scene, config, frame_index, "hr")
    solid = hr["interior"] & (hr["ids"] != 0)
    np.testing.assert_allclose(frame.depth_hr[solid], hr["depth"][solid], rtol=1e-5)
    assert np.isposinf(frame.depth_hr[hr["interior"] & (hr["ids"] == 0)]).all()


def camera_node(b: GltfBuilder, position, yaw: float = 0.0, yfov_deg: float = 50.0) -> int:
    return b.add_node(camera=b.add_camera(np.radians(yfov_deg), 0.1, 100.0), translation=list(position),
                      rotation=quat("y", yaw))


# -- hierarchy, animation and cameras rendered --------------------------------------------


def test_node_hierarchy_trs_and_matrix_place_objects_where_expected(make_renderer, tmp_path):
    b = GltfBuilder()
    double = b.add_material(doubleSided=True)
    big = b.add_mesh(b.primitive(*quad(2.0), material=double))
    small = b.add_mesh(b.primitive(*quad(1.0), material=double))
    child_matrix = translation((1.5, 0.4, 0.5)) @ axis_rotation("z", 0.26)
    child = b.add_node(mesh=small, matrix=column_major(child_matrix))
    parent = b.add_node(mesh=big, children=[child], translation=[-0.8, 0.1, -1.0],
                        rotation=quat("y", 0.44), scale=[1.2, 0.8, 1.0])
    cam = camera_node(b, (0.2, 0.1, 3.0), yaw=0.07, yfov_deg=55.0)
    b.set_scene(parent, cam)
    scene = load_gltf(b.write_glb(tmp_path / "hierarchy.glb"), fps=FPS)

    parent_world = translation((-0.8, 0.1, -1.0)) @ axis_rotation("y", 0.44) @ np.diag([1.2, 0.8, 1.0, 1.0])
    walked = scene.walk(0.0)
    assert [node.object_id for node, _ in walked] == [1, 2]
    np.testing.assert_allclose(walked[0][1], parent_world, atol=1e-12)
    np.testing.assert_allclose(walked[1][1], parent_world @ child_matrix, atol=1e-12)
    camera_world = translation((0.2, 0.1, 3.0)) @ axis_rotation("y", 0.07)
    np.testing.assert_allclose(scene.camera.view(0.0), np.linalg.inv(camera_world), atol=1e-12)
    assert scene.camera.fov_y_deg == pytest.approx(55.0)
    assert (scene.camera.near, scene.camera.far) == (0.1, 100.0)

    renderer = make_renderer(hr=(96, 54), scale=2.0)
    quads = [quad_rect(1, lambda t: parent_world, 2.0),
             quad_rect(2, lambda t: parent_world @ child_matrix, 1.0)]
    for i in (0, 3):
        check_ids_and_depth(renderer.render(scene, i), quads, scene, renderer.config, i)


def animated_file(tmp_path: Path) -> tuple[Path, list[Rect]]:
    """A quad translated by a LINEAR track (with a static rotation) and one spun about z."""
    b = GltfBuilder()
    double = b.add_material(doubleSided=True)
    mover = b.add_node(mesh=b.add_mesh(b.primitive(*quad(1.2), material=double)), rotation=quat("y", 0.3))
    spinner = b.add_node(mesh=b.add_mesh(b.primitive(*quad(1.4), material=double)),
                         translation=[1.3, 0.7, -1.2])
    times = [0.0, 1.0, 2.0]
    keys = np.array([(-1.2, -0.3, 0.0), (0.9, 0.4, -0.5), (0.2, -0.2, 0.8)])
    b.add_animation((mover, "translation", times, keys, "LINEAR"),
                    (spinner, "rotation", [0.0, 2.0], [quat("z", 0.0), quat("z", 3.0)], "LINEAR"))
    b.set_scene(mover, spinner, camera_node(b, (0.0, 0.0, 4.0)))

    def mover_world(t):
        position = [np.interp(t % 2.0, times, keys[:, k]) for k in range(3)]
        return translation(position) @ axis_rotation("y", 0.3)

    def spinner_world(t):
        return translation((1.3, 0.7, -1.2)) @ axis_rotation("z", 3.0 * (t % 2.0) / 2.0)

    return b.write_glb(tmp_path / "animated.glb"), [quad_rect(1, mover_world, 1.2),
                                                  quad_rect(2, spinner_world, 1.4)]


def test_animated_nodes_render_where_expected_with_exact_motion(make_renderer, tmp_path):
    path, quads = animated_file(tmp_path)
    scene = load_gltf(path, fps=FPS)
    renderer = make_renderer(hr=(96, 54), scale=2.0)
    for i in (6, 27, 45):  # t = 0.2, 0.9, 1.5: both segments of the translation track
        frame = renderer.render(scene, i)
        check_ids_and_depth(frame, quads, scene, renderer.config, i)
        hr = expected(quads, scene, renderer.config, i, "hr")
        for q in quads:
            inside = hr["interior"] & (hr["ids"] == q.object_id)
            want = hr["motion"][inside]
            assert np.abs(want).max() > 0.2, "the object should move"
            err = np.abs(frame.motion_hr[inside] - want).max()
            assert err < MOTION_TOL_PX, f"object {q.object_id}, frame {i}: motion off by {err:.4f} px"


def test_animation_loops_over_its_duration(tmp_path):
    path, quads = animated_file(tmp_path)
    scene = load_gltf(path, fps=FPS)
    for t in (0.25, 1.0, 1.75):
        for (_, now), (_, later) in zip(scene.walk(t), scene.walk(t + 2.0), strict=True):
            np.testing.assert_allclose(now, later, atol=1e-12)
    # frame 0's previous state is the end of the loop
    s = 29 / 30  # t = -1/30 is t = 2 - 1/30: between the keys at 1 s and 2 s
    end_of_loop = (1 - s) * np.array([0.9, 0.4, -0.5]) + s * np.array([0.2, -0.2, 0.8])
    np.testing.assert_allclose(scene.walk(-1 / FPS)[0][1][:3, 3], end_of_loop, atol=1e-9)


# -- interpolation by hand ---------------------------------------------------------------


def test_step_track_holds_each_key_until_the_next():
    track = Track(np.array([0.0, 1.0, 2.0]), np.array([[0.0, 0, 0], [1, 0, 0], [5, 0, 0]]), "STEP")
    for t, x in ((-1.0, 0), (0.0, 0), (0.5, 0), (0.999, 0), (1.0, 1), (1.99, 1), (2.0, 5), (7.0, 5)):
        np.testing.assert_array_equal(track.sample(t), [x, 0, 0])


def test_cubicspline_track_is_the_hermite_spline_of_the_spec():
    # per key: in-tangent, value, out-tangent; the outer tangents never matter
    values = np.array([[[9, 9, 9], [0, 0, 0], [3, 0, 0]],
                       [[0, -1, 0], [1, 0, 0], [7, 7, 7]]], dtype=float)
    track = Track(np.array([0.0, 2.0]), values, "CUBICSPLINE")
    # s = t / 2, dt = 2: p = h00 v0 + dt h10 b0 + h01 v1 + dt h11 a1
    np.testing.assert_allclose(track.sample(1.0), [1.25, 0.25, 0.0])  # s = 1/2
    np.testing.assert_allclose(track.sample(0.5), [1.0, 0.09375, 0.0])  # s = 1/4
    np.testing.assert_array_equal(track.sample(0.0), [0, 0, 0])
    np.testing.assert_array_equal(track.sample(2.0), [1, 0, 0])
    np.testing.assert_array_equal(track.sample(3.0), [1, 0, 0])


def test_cubicspline_rotation_is_normalised():
    q0, q1 = np.array(quat("y", 0.0)), np.array(quat("y", 2.0))
    values = np.array([[np.zeros(4), q0, np.full(4, 0.8)], [np.full(4, -0.3), q1, np.zeros(4)]])
    track = Track(np.array([0.0, 1.0]), values, "CUBICSPLINE", rotation=True)
    for t in np.linspace(0, 1, 7):
        assert np.linalg.norm(track.sample(t)) == pytest.approx(1.0)


def rotation_angle_about_y(q) -> float:
    m = quat_to_matrix(q)
    np.testing.assert_allclose(m[1], [0, 1, 0], atol=1e-12)
    return float(np.arctan2(m[0, 2], m[0, 0]))


def test_rotation_tracks_slerp_along_the_shorter_arc():
    q0, q1 = quat("y", 0.0), quat("y", np.radians(170.0))
    linear = Track(np.array([0.0, 1.0]), np.array([q0, q1]), "LINEAR", rotation=True)
    # slerp turns at constant speed: a quarter of the way is exactly a quarter of the angle
    # (normalised lerp would give 37.9 degrees here)
    assert np.degrees(rotation_angle_about_y(linear.sample(0.25))) == pytest.approx(42.5, abs=1e-9)
    assert np.degrees(rotation_angle_about_y(linear.sample(0.5))) == pytest.approx(85.0, abs=1e-9)
    # -q is the same rotation: the track still takes the short way
    flipped = Track(np.array([0.0, 1.0]), np.array([q0, -np.array(q1)]), "LINEAR", rotation=True)
    np.testing.assert_allclose(quat_to_matrix(flipped.sample(0.3)), quat_to_matrix(linear.sample(0.3)),
                               atol=1e-12)
    # 350 degrees the long way is 10 degrees the short way round
    q_350 = quat("y", np.radians(350.0))
    short = Track(np.array([0.0, 1.0]), np.array([q0, q_350]), "LINEAR", rotation=True)
    assert np.degrees(rotation_angle_about_y(short.sample(0.5))) == pytest.approx(-5.0, abs=1e-9)
    np.testing.assert_allclose(slerp(q0, q1, 0.0), q0, atol=1e-12)


def test_step_and_cubicspline_tracks_drive_nodes_from_a_file(tmp_path):
    b = GltfBuilder()
    mesh = b.add_mesh(b.primitive(*quad(1.0)))
    stepper, spline, turner = (b.add_node(mesh=mesh) for _ in range(3))
    cubic = [[9, 9, 9], [0, 0, 0], [3, 0, 0], [0, -1, 0], [1, 0, 0], [7, 7, 7]]
    b.add_animation((stepper, "translation", [0, 1, 2], [[0, 0, 0], [1, 0, 0], [5, 0, 0]], "STEP"),
                    (spline, "translation", [0, 2], cubic, "CUBICSPLINE"),
                    (turner, "rotation", [0, 2], [quat("y", 0), quat("y", 1.2)], "LINEAR"),
                    (turner, "scale", [0, 2], [[1, 1, 1], [3, 1, 1]], "LINEAR"))
    b.set_scene(stepper, spline, turner)
    scene = load_gltf(b.write_glb(tmp_path / "tracks.glb"))
    worlds = {t: [w for _, w in scene.walk(t)] for t in (0.5, 1.0, 1.5)}
    np.testing.assert_allclose(worlds[0.5][0][:3, 3], [0, 0, 0])
    np.testing.assert_allclose(worlds[1.5][0][:3, 3], [1, 0, 0])
    np.testing.assert_allclose(worlds[1.0][1][:3, 3], [1.25, 0.25, 0.0], atol=1e-6)
    np.testing.assert_allclose(worlds[0.5][1][:3, 3], [1.0, 0.09375, 0.0], atol=1e-6)
    turned = axis_rotation("y", 0.45) @ np.diag([1.75, 1, 1, 1])  # t = 0.75 of 2
    np.testing.assert_allclose([w for _, w in scene.walk(0.75)][2], turned, atol=1e-6)


# -- textures, materials, meshes ---------------------------------------------------------


@pytest.mark.parametrize("storage", ["glb", "gltf_files", "gltf_data_uris"])
def test_texture_shows_upright_with_gltf_uvs(make_renderer, tmp_path, storage):
    """Top-left red in the image file shows top-left on a quad facing the camera upright."""
    b = GltfBuilder()
    image = b.add_image(quadrant_texture(), how={"glb": "view", "gltf_files": "file"}.get(storage, "data"))
    texture = b.add_texture(image, {"wrapS": 33071, "wrapT": 33071})
    material = b.add_material(pbrMetallicRoughness={"baseColorTexture": {"index": texture},
                                                    "metallicFactor": 0.0})
    node = b.add_node(mesh=b.add_mesh(b.primitive(*quad(2.0), material=material)))
    b.set_scene(node, camera_node(b, (0.0, 0.0, 3.0)))
    if storage == "glb":
        path = b.write_glb(tmp_path / "tex.glb")
    else:
        path = b.write_gltf(tmp_path / "tex.gltf", embed=storage == "gltf_data_uris")
    scene = load_gltf(path)
    texture = scene.drawables()[0].material.base_color_texture
    np.testing.assert_array_equal(texture.pixels, quadrant_texture())
    assert texture.srgb and texture.wrap == "clamp"

    renderer = make_renderer(hr=(64, 36), scale=2.0)
    frame = renderer.render(scene, 0)
    vp = cv.perspective(50.0, 64 / 36, 0.1, 100.0) @ scene.camera.view(0.0)
    colours = {"top-left": (1, 0, 0), "top-right": (0, 1, 0), "bottom-left": (0, 0, 1),
               "bottom-right": (1, 1, 1)}
    for (name, rgb), (x, y) in zip(colours.items(), [(-0.5, 0.5), (0.5, 0.5), (-0.5, -0.5), (0.5, -0.5)],
                                   strict=True):
        for albedo_or_colour, size in ((frame.albedo_lr, renderer.config.lr_size),
                                       (frame.color_hr, renderer.config.hr_size)):
            px, py = cv.project_px(vp, np.array([x, y, 0.0]), size).astype(int)
            got = albedo_or_colour[py, px].astype(np.float32)
            if albedo_or_colour is frame.albedo_lr:
                np.testing.assert_allclose(got, rgb, atol=0.02, err_msg=name)
            else:  # lit: the same hue
                assert np.argmax(got) == np.argmax(rgb) or name == "bottom-right", (name, got)


def test_interleaved_non_indexed_mesh_loads_and_renders(make_renderer, tmp_path):
    positions, normals, uvs, indices = (np.asarray(a) for a in quad(1.6))
    corners = indices.reshape(-1, 3)
    pos, nrm, uv = (np.asarray(a, np.float32)[corners].reshape(-1, a.shape[1])
                    for a in (positions, normals, uvs))
    b = GltfBuilder()
    p, n, t = b.add_interleaved(pos, nrm, uv)
    assert b.json["bufferViews"][-1]["byteStride"] == 32
    mesh = b.add_mesh({"attributes": {"POSITION": p, "NORMAL": n, "TEXCOORD_0": t}})
    b.set_scene(b.add_node(mesh=mesh, translation=[0.2, -0.1, 0.0]), camera_node(b, (0, 0, 3.0)))
    scene = load_gltf(b.write_glb(tmp_path / "interleaved.glb"))
    loaded = scene.drawables()[0].mesh
    np.testing.assert_array_equal(loaded.positions, pos)
    np.testing.assert_array_equal(loaded.normals, nrm)
    np.testing.assert_array_equal(loaded.uvs, uv)
    np.testing.assert_array_equal(loaded.indices, np.arange(6).reshape(2, 3))
    renderer = make_renderer(hr=(64, 36), scale=2.0)
    frame = renderer.render(scene, 1)
    check_ids_and_depth(frame, [quad_rect(1, lambda t: translation((0.2, -0.1, 0.0)), 1.6)], scene,
                        renderer.config, 1)


@pytest.fixture(scope="module")
def sample_dir() -> Path:
    return DATA


@pytest.mark.parametrize("name", SAMPLE_MODELS)
@pytest.mark.parametrize("camera", ["auto", "orbit"])
def test_sample_models_load_and_render_non_empty(make_renderer, sample_dir, name, camera):
    scene = load_gltf(sample_dir / name, camera=camera)
    assert [n.object_id for n in scene.drawables()] == [1]
    frame = make_renderer(hr=(64, 36), scale=2.0).render(scene, 2)
    covered = frame.object_id_lr == 1
    assert 0.01 < covered.mean() < 0.9, covered.mean()
    assert np.isfinite(frame.depth_lr[covered]).all() and np.isposinf(frame.depth_lr[~covered]).all()
    assert np.isfinite(frame.color_hr.astype(np.float32)).all()


def test_sample_models_carry_their_materials(sample_dir):
    interleaved = load_gltf(sample_dir / "BoxInterleaved.glb").drawables()[0]
    assert interleaved.material.base_color == pytest.approx((0.8, 0.0, 0.0, 1.0))
    assert len(interleaved.mesh.positions) == 24 and len(interleaved.mesh.indices) == 12
    textured = load_gltf(sample_dir / "BoxTextured.glb").drawables()[0].material
    assert textured.base_color_texture.pixels.shape[2] == 4 and textured.metallic == 0.0
    assert textured.base_color_texture.wrap == "repeat"
    duck = load_gltf(sample_dir / "Duck.glb")
    assert duck.camera.fov_y_deg == pytest.approx(np.degrees(0.6605925559997559))
    rotation = duck.camera.view(0.0)[:3, :3]  # the parent's 0.01 scale is not in the view
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-6)


def material_file(tmp_path: Path, **material) -> Scene:
    b = GltfBuilder()
    node = b.add_node(mesh=b.add_mesh(b.primitive(*quad(2.0), material=b.add_material(**material))))
    b.set_scene(node, camera_node(b, (0.0, 0.0, 3.0)))
    return load_gltf(b.write_glb(tmp_path / "material.glb"))


def test_material_factors_flags_and_textures_are_carried(tmp_path):
    b = GltfBuilder()
    image = b.add_image(quadrant_texture())
    samplers = [{"wrapS": w, "wrapT": w} for w in (10497, 33071, 33648)] + [{"magFilter": 9728}]
    repeat, clamp, mirror, default = (b.add_texture(image, s) for s in samplers)
    material = b.add_material(
        pbrMetallicRoughness={"baseColorFactor": [0.5, 0.25, 0.125, 0.75], "metallicFactor": 0.3,
                              "roughnessFactor": 0.7, "baseColorTexture": {"index": repeat, "texCoord": 1},
                              "metallicRoughnessTexture": {"index": clamp, "texCoord": 1}},
        normalTexture={"index": mirror, "texCoord": 1}, occlusionTexture={"index": default, "texCoord": 1},
        emissiveTexture={"index": repeat, "texCoord": 1}, emissiveFactor=[0.1, 0.2, 0.3],
        extensions={"KHR_materials_emissive_strength": {"emissiveStrength": 2.0}},
        alphaMode="BLEND", doubleSided=True)
    positions, normals, uvs, indices = quad(1.0)
    uv1 = np.array(uvs, np.float32) * 2 + 0.5
    prim = b.primitive(positions, normals, uvs, indices, material=material, TEXCOORD_1=uv1)
    b.set_scene(b.add_node(mesh=b.add_mesh(prim)))
    node = load_gltf(b.write_glb(tmp_path / "factors.glb")).drawables()[0]
    m = node.material
    assert m.base_color == (0.5, 0.25, 0.125, 0.75)
    assert (m.metallic, m.roughness) == (pytest.approx(0.3), pytest.approx(0.7))
    assert m.emissive == pytest.approx((0.2, 0.4, 0.6))
    assert (m.alpha_mode, m.double_sided) == ("BLEND", True)
    assert [(t.wrap, t.srgb) for t in (m.base_color_texture, m.metallic_roughness_texture, m.normal_texture,
                                       m.occlusion_texture, m.emissive_texture)] == [
        ("repeat", True), ("clamp", False), ("mirror", False), ("repeat", False), ("repeat", True)]
    np.testing.assert_array_equal(node.mesh.uvs, uv1)  # every texture samples TEXCOORD_1

    defaults = material_file(tmp_path, alphaMode="MASK").drawables()[0].material
    assert (defaults.base_color, defaults.metallic, defaults.roughness) == ((1.0, 1.0, 1.0, 1.0), 1.0, 1.0)
    assert (defaults.alpha_mode, defaults.alpha_cutoff, defaults.double_sided) == ("MASK", 0.5, False)


def test_mixed_texcoord_sets_warn_and_use_texcoord_0(tmp_path, caplog):
    b = GltfBuilder()
    tex = b.add_texture(b.add_image(quadrant_texture()))
    material = b.add_material(pbrMetallicRoughness={"baseColorTexture": {"index": tex, "texCoord": 1}},
                              emissiveTexture={"index": tex})
    positions, normals, uvs, indices = quad(1.0)
    prim = b.primitive(positions, normals, uvs, indices, material=material, TEXCOORD_1=np.ones((4, 2)))
    b.set_scene(b.add_node(mesh=b.add_mesh(prim)))
    with caplog.at_level(logging.WARNING):
        node = load_gltf(b.write_glb(tmp_path / "mixed.glb")).drawables()[0]
    np.testing.assert_array_equal(node.mesh.uvs, np.asarray(uvs, np.float32))
    assert any("TEXCOORD" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("mode", ["MASK", "OPAQUE"])
def test_alpha_mask_cuts_where_the_texture_is_transparent(make_renderer, tmp_path, mode):
    b = GltfBuilder()
    texture = b.add_texture(b.add_image(quadrant_texture(alpha_left=0)), {"wrapS": 33071, "wrapT": 33071})
    material = b.add_material(pbrMetallicRoughness={"baseColorTexture": {"index": texture}}, alphaMode=mode,
                              alphaCutoff=0.5)
    b.set_scene(b.add_node(mesh=b.add_mesh(b.primitive(*quad(2.0), material=material))),
                camera_node(b, (0.0, 0.0, 3.0)))
    scene = load_gltf(b.write_glb(tmp_path / "mask.glb"))
    renderer = make_renderer(hr=(64, 36), scale=2.0)
    frame = renderer.render(scene, 0)
    vp = cv.perspective(50.0, 64 / 36, 0.1, 100.0) @ scene.camera.view(0.0)
    for x, y in ((-0.5, 0.5), (-0.5, -0.5), (0.5, 0.5), (0.5, -0.5)):
        px, py = cv.project_px(vp, np.array([x, y, 0.0]), renderer.config.lr_size).astype(int)
        cut = mode == "MASK" and x < 0
        assert frame.object_id_lr[py, px] == (0 if cut else 1), (mode, x, y)


def test_primitives_become_nodes_with_ids_in_scene_order(tmp_path, caplog):
    b = GltfBuilder()
    red, blue = b.add_material(), b.add_material(doubleSided=True)
    positions, normals, uvs, indices = quad(1.0)
    mesh = b.add_mesh(b.primitive(positions, normals, uvs, indices, material=red),
                      b.primitive(positions, mode=0),  # points: skipped
                      b.primitive(positions, normals, uvs, indices, material=blue), name="multi")
    leaf = b.add_node(mesh=mesh, translation=[0, 2, 0])
    first = b.add_node(mesh=mesh, children=[leaf], translation=[1, 0, 0])
    last = b.add_node(mesh=b.add_mesh(b.primitive(positions, normals, uvs, indices)))
    b.set_scene(first, last)
    with caplog.at_level(logging.WARNING):
        scene = load_gltf(b.write_glb(tmp_path / "multi.glb"), first_object_id=10)
    walked = scene.walk(0.0)
    assert [n.object_id for n, _ in walked] == [10, 11, 12, 13, 14]
    assert [n.name for n, _ in walked][:2] == ["multi/0", "multi/2"]
    np.testing.assert_array_equal(walked[0][1], walked[1][1])  # primitives share their node's transform
    np.testing.assert_allclose(walked[2][1][:3, 3], [1, 2, 0])
    assert walked[0][0].mesh is walked[2][0].mesh  # a mesh used twice is one Mesh
    assert walked[1][0].material.double_sided and not walked[0][0].material.double_sided
    assert sum("POINTS" in r.getMessage() for r in caplog.records) == 1


def test_missing_normals_get_flat_normals_and_strips_and_fans_are_triangulated(tmp_path):
    b = GltfBuilder()
    h = 0.5
    strip = [(-h, -h, 0), (h, -h, 0), (-h, h, 0), (h, h, 0)]
    fan = [(-h, -h, 0), (h, -h, 0), (h, h, 0), (-h, h, 0)]
    mesh = b.add_mesh(b.primitive(strip, mode=5), b.primitive(fan, mode=6),
                      b.primitive(fan, indices=[0, 1, 2]))
    b.set_scene(b.add_node(mesh=mesh))
    nodes = load_gltf(b.write_glb(tmp_path / "flat.glb")).drawables()
    for node, triangles in zip(nodes, (2, 2, 1), strict=True):
        mesh = node.mesh
        assert len(mesh.indices) == triangles and len(mesh.positions) == 3 * triangles  # unwelded
        np.testing.assert_array_equal(mesh.normals, np.tile([0, 0, 1], (3 * triangles, 1)))
        np.testing.assert_array_equal(mesh.uvs, 0)
        corners = mesh.positions[mesh.indices]
        faces = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        assert (faces[:, 2] > 0).all()  # counter-clockwise seen from +z


def test_mirrored_nodes_keep_front_faces_outwards(tmp_path):
    b = GltfBuilder()
    mesh = b.add_mesh(b.primitive(*quad(1.0)))
    b.set_scene(b.add_node(mesh=mesh), b.add_node(mesh=mesh, scale=[-1, 1, 1]))
    (plain, _), (mirrored, world) = load_gltf(b.write_glb(tmp_path / "mirror.glb")).walk(0.0)
    np.testing.assert_array_equal(mirrored.mesh.indices, plain.mesh.indices[:, ::-1])
    corners = mirrored.mesh.positions[mirrored.mesh.indices] @ world[:3, :3].T
    faces = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = mirrored.mesh.normals[mirrored.mesh.indices[:, 0]] @ np.linalg.inv(world[:3, :3])
    assert (np.sum(faces * normals, axis=1) > 0).all()


def test_sparse_and_normalized_accessors(tmp_path):
    b = GltfBuilder()
    positions, normals, uvs, indices = quad(1.0)
    prim = b.primitive(positions, normals, None, indices)
    prim["attributes"]["TEXCOORD_0"] = b.add_accessor(np.array([[0, 255], [255, 255], [255, 0], [0, 0]]),
                                                      dtype=np.uint8, normalized=True)
    accessor = b.json["accessors"][prim["attributes"]["POSITION"]]
    accessor["sparse"] = {"count": 1, "indices": {"bufferView": b.add_view(np.uint16([2]).tobytes()),
                                                  "componentType": 5123},
                          "values": {"bufferView": b.add_view(np.float32([[2, 3, 4]]).tobytes())}}
    b.set_scene(b.add_node(mesh=b.add_mesh(prim)))
    mesh = load_gltf(b.write_glb(tmp_path / "sparse.glb")).drawables()[0].mesh
    want = np.array(positions, np.float32)
    want[2] = (2, 3, 4)
    np.testing.assert_array_equal(mesh.positions, want)
    np.testing.assert_array_equal(mesh.uvs, np.asarray(uvs, np.float32))


def test_skins_and_morph_targets_warn_once(tmp_path, caplog):
    b = GltfBuilder()
    positions, normals, uvs, indices = quad(1.0)
    prims = [b.primitive(positions, normals, uvs, indices) for _ in range(2)]
    for prim in prims:
        prim["targets"] = [{"POSITION": prim["attributes"]["POSITION"]}]
    mesh = b.add_mesh(*prims)
    b.json["meshes"][mesh]["weights"] = [0.5]
    joint = b.add_node()
    skinned = b.add_node(mesh=mesh, skin=0, children=[joint])
    b.json["skins"] = [{"joints": [joint]}]
    b.add_animation((skinned, "weights", [0, 1], [[0.0], [1.0]], "LINEAR"))
    b.set_scene(skinned)
    with caplog.at_level(logging.WARNING, logger="datagen"):
        scene = load_gltf(b.write_glb(tmp_path / "skinned.glb"))
    assert len(scene.drawables()) == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bind pose" in warnings[0].getMessage()
    assert "skinned.glb" in warnings[0].getMessage()


# -- cameras and framing ------------------------------------------------------------------


def moving_box_file(tmp_path: Path) -> Path:
    b = GltfBuilder()
    box = b.add_mesh(b.primitive(*quad(1.0)), name="box")
    node = b.add_node(mesh=box, rotation=quat("x", 0.4))
    b.add_animation((node, "translation", [0, 3], [[0, 0, 0], [4, 1, 0]], "LINEAR"))
    b.set_scene(node)
    return b.write_glb(tmp_path / "moving.glb")


def test_orbit_camera_frames_the_bounds_over_the_whole_animation(tmp_path):
    scene = load_gltf(moving_box_file(tmp_path))
    assert scene.camera.fov_y_deg == 45.0
    lo, hi = scene.bounds
    assert lo[0] <= -0.5 and hi[0] >= 4.5 and hi[1] >= 1.0  # the box's whole path
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    proj = cv.perspective(45.0, 16 / 9, scene.camera.near, scene.camera.far)
    for t in np.linspace(0.0, 8.0, 9):
        view = scene.camera.view(t)
        px = cv.project_px(proj @ view, corners, (160, 90))
        assert (px >= 0).all() and (px[:, 0] <= 160).all() and (px[:, 1] <= 90).all(), t
        depth = -(corners @ view[2, :3] + view[2, 3])
        assert (depth > scene.camera.near).all() and (depth < scene.camera.far).all()
        eye = np.linalg.inv(view)[:3, 3]
        assert eye[1] > (lo[1] + hi[1]) / 2  # looking down on the model
    np.testing.assert_allclose(scene.camera.view(0.0), scene.camera.view(8.0), atol=1e-9)  # one turn
    for (_, world), t in ((scene.walk(1.5)[0], 1.5),):  # the box inside the bounds mid-path
        assert (lo <= world[:3, 3]).all() and (world[:3, 3] <= hi).all(), t


def test_orbit_varies_with_the_seed_and_camera_modes(tmp_path):
    path = moving_box_file(tmp_path)
    views = [load_gltf(path, seed=s).camera.view(0.5) for s in (0, 0, 1, 2)]
    np.testing.assert_array_equal(views[0], views[1])
    assert not np.allclose(views[0], views[2]) and not np.allclose(views[2], views[3])
    with pytest.raises(SceneLoadError, match="no perspective camera"):
        load_gltf(path, camera="file")
    duck = load_gltf(DATA / "Duck.glb", camera="orbit")
    assert duck.camera.fov_y_deg == 45.0
    bounds = orbit_camera(np.array([[-1.0, -1, -1], [1, 1, 1]]))
    assert bounds.near > 0 and bounds.far > bounds.near


def test_extensions_used_but_not_required_are_ignored(tmp_path):
    b = GltfBuilder()
    b.set_scene(b.add_node(mesh=b.add_mesh(b.primitive(*quad(1.0)))))
    b.json["extensionsUsed"] = ["KHR_texture_transform", "VENDOR_whatever"]
    b.json["extensionsRequired"] = ["KHR_mesh_quantization"]
    assert len(load_gltf(b.write_glb(tmp_path / "ext.glb")).drawables()) == 1


# -- determinism ----------------------------------------------------------------------------


def test_loading_the_same_file_twice_gives_identical_scenes(tmp_path):
    path, _ = animated_file(tmp_path)
    first, second = load_gltf(path), load_gltf(path)
    np.testing.assert_array_equal(first.bounds, second.bounds)
    for t in (0.0, 0.4, 1.3):
        np.testing.assert_array_equal(first.camera.view(t), second.camera.view(t))
        for (a, wa), (b, wb) in zip(first.walk(t), second.walk(t), strict=True):
            assert (a.name, a.object_id) == (b.name, b.object_id)
            np.testing.assert_array_equal(wa, wb)
            for field in ("positions", "normals", "uvs", "indices"):
                np.testing.assert_array_equal(getattr(a.mesh, field), getattr(b.mesh, field))
    for name in SAMPLE_MODELS:
        one, two = (load_gltf(DATA / name).drawables()[0] for _ in range(2))
        np.testing.assert_array_equal(one.mesh.positions, two.mesh.positions)
        np.testing.assert_array_equal(one.mesh.indices, two.mesh.indices)
        if one.material.base_color_texture is not None:
            np.testing.assert_array_equal(one.material.base_color_texture.pixels,
                                          two.material.base_color_texture.pixels)


# -- the bad-input corpus ---------------------------------------------------------------------


def valid_model() -> GltfBuilder:
    """A textured, animated hierarchy with a camera. Accessors: 0 POSITION (4 x VEC3,
    bufferView 1, 48 bytes), 1 NORMAL, 2 TEXCOORD_0, 3 indices (6 x uint16, bufferView 4),
    4 animation input, 5 output. bufferView 0 is the PNG image."""
    b = GltfBuilder()
    texture = b.add_texture(b.add_image(quadrant_texture()), {"wrapS": 33071, "wrapT": 33071})
    material = b.add_material(pbrMetallicRoughness={"baseColorTexture": {"index": texture}})
    mesh = b.add_mesh(b.primitive(*quad(1.0), material=material))
    child = b.add_node(mesh=mesh, translation=[0.5, 0.0, 0.0])
    root = b.add_node(mesh=mesh, children=[child])
    b.add_animation((child, "translation", [0.0, 1.0], [[0, 0, 0], [1, 0, 0]], "LINEAR"))
    b.set_scene(root, camera_node(b, (0.0, 0.0, 3.0)))
    return b


def valid_external(directory: Path) -> Path:
    """valid_model as model.gltf + model.bin + tex.png."""
    b = valid_model()
    b.json["images"][0] = {"uri": "tex.png"}
    b.image_files["tex.png"] = png_bytes(quadrant_texture())
    return b.write_gltf(directory / "model.gltf")


def glb_bytes(mutate_json=None, mutate_bin=None) -> bytes:
    b = valid_model()
    gltf, data = b.gltf_json(None), bytearray(b.bin)
    if mutate_json:
        mutate_json(gltf)
    if mutate_bin:
        mutate_bin(gltf, data)
    return pack_glb(gltf, bytes(data))


def poke(view: int, values, dtype, at: int = 0):
    """A bin mutation writing ``values`` at element ``at`` of buffer view ``view``."""
    def mutate(gltf, data):
        raw = np.asarray(values, dtype).tobytes()
        start = gltf["bufferViews"][view]["byteOffset"] + at * np.dtype(dtype).itemsize
        data[start:start + len(raw)] = raw
    return mutate


def setter(path: str, value):
    """A JSON mutation setting ``a.0.b`` style paths (a missing last key is created;
    value ``DELETE`` removes it)."""
    def mutate(gltf):
        *parents, last = path.split(".")
        obj = gltf
        for key in parents:
            obj = obj[int(key)] if isinstance(obj, list) else obj[key]
        if isinstance(obj, list):
            last = int(last)
        if value is DELETE:
            del obj[last]
        else:
            obj[last] = value
    return mutate


DELETE = object()


def huge_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels."""
    png = bytearray(png_bytes(np.zeros((1, 1, 4), np.uint8)))
    ihdr = bytearray(png[12:29])  # type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    png[12:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(png)


def glb_json(mutate) -> Callable[[Path], Path]:
    """A case: valid_model as .glb with its JSON mutated."""
    return lambda d: _write(d / "model.glb", glb_bytes(mutate))


def glb_bin(mutate) -> Callable[[Path], Path]:
    """A case: valid_model as .glb with its binary chunk mutated."""
    return lambda d: _write(d / "model.glb", glb_bytes(mutate_bin=mutate))


def glb_text(mutate) -> Callable[[Path], Path]:
    """A case: valid_model as .glb with its JSON text mutated."""
    b = valid_model()
    text = mutate(json.dumps(b.gltf_json(None)))
    return lambda d: _write(d / "model.glb", pack_glb({}, bytes(b.bin), json_bytes=text.encode()))


def glb_raw(mutate) -> Callable[[Path], Path]:
    """A case: the bytes of valid_model's .glb mutated."""
    return lambda d: _write(d / "model.glb", mutate(glb_bytes()))


def gltf_files(damage) -> Callable[[Path], Path]:
    """A case: valid_external (.gltf, .bin, .png) with its files damaged."""
    def write(d: Path) -> Path:
        path = valid_external(d)
        damage(path.parent)
        return path
    return write


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _json_chunk(data: bytes) -> bytes:
    return pack_glb({}, None, json_bytes=data)


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


def _two_parents(g):
    g["nodes"] += [{"children": [0]}, {"children": [0]}]


def _cycle(g):
    n = len(g["nodes"])
    g["nodes"] += [{"children": [n + 1]}, {"children": [n]}]


def _deep(g):
    n = len(g["nodes"])
    g["nodes"] += [{"children": [n + k + 1]} for k in range(300)] + [{}]


def _image_uri(uri: str):
    def mutate(g):
        g["images"][0] = {"uri": uri}
    return mutate


def _long_data_uri(g):
    g["buffers"][0] = {"byteLength": 36, "uri": "data:application/octet-stream;base64," + "A" * 400000}


def _many_vertices(g):
    """8 accessors of 2^24 vertices and no buffer view: 10.6 GB before the budget."""
    for _ in range(8):
        g["accessors"].append({"componentType": 5126, "type": "VEC3", "count": 1 << 24})
        g["meshes"][0]["primitives"].append({"attributes": {"POSITION": len(g["accessors"]) - 1}})


def _replace_with_dir(d: Path):
    (d / "tex.png").unlink()
    (d / "tex.png").mkdir()


TEX_PNG = png_bytes(quadrant_texture())
IDENTITY16 = [1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
BASE_TEXTURE = "materials.0.pbrMetallicRoughness.baseColorTexture.index"
SAMPLER0 = "animations.0.samplers.0"
CORPUS: dict[str, tuple[Callable[[Path], Path], str]] = {
    # the GLB container
    "empty file": (glb_raw(lambda b: b""), r"truncated GLB.*header"),
    "truncated in header": (glb_raw(lambda b: b[:7]), r"truncated GLB"),
    "truncated in chunk header": (glb_raw(lambda b: b[:16]), r"truncated GLB"),
    "truncated in JSON": (glb_raw(lambda b: b[:40]), r"truncated GLB"),
    "truncated in BIN": (glb_raw(lambda b: b[:-10]), r"truncated GLB"),
    "truncated, length patched": (glb_raw(lambda b: b[:8] + struct.pack("<I", 60) + b[12:60]),
                                  r"chunk 0 at byte 12 claims \d+ bytes, but only 40 remain"),
    "flipped magic": (glb_raw(lambda b: b"FTlg" + b[4:]), r"magic"),
    "bad version": (glb_raw(lambda b: b[:4] + struct.pack("<I", 1) + b[8:]), r"GLB version 1"),
    "trailing bytes": (glb_raw(lambda b: b + b"\0" * 8), r"trailing bytes"),
    "wrong first chunk type": (glb_raw(lambda b: b[:16] + struct.pack("<I", 0x004E4942) + b[20:]),
                               r"first GLB chunk has type 0x004E4942"),
    "BIN chunk with the wrong type": (glb_raw(lambda b: _replace(b, b"BIN\0", b"XYZ\0")),
                                      r"buffer 0 refers to the BIN chunk, but the GLB has none"),
    # JSON
    "JSON syntax error": (glb_text(lambda text: text.replace('"asset": {', '"asset": ', 1)),
                          r"invalid JSON at line 1 column \d+"),
    "JSON not UTF-8": (glb_raw(lambda b: _json_chunk(b'{"asset": "\xff\xfe"}')), r"not UTF-8"),
    "JSON not an object": (glb_raw(lambda b: _json_chunk(b"[1, 2, 3]")), r"must be an object"),
    "JSON nested too deeply": (glb_raw(lambda b: _json_chunk(b"[" * 100000 + b"]" * 100000)),
                               r"nested too deeply"),
    "missing asset": (glb_json(setter("asset", DELETE)), r"missing the required field 'asset'"),
    "glTF 1.0": (glb_json(setter("asset.version", "1.0")), r"only glTF 2.x"),
    "unknown required extension": (glb_json(setter("extensionsRequired", ["KHR_draco_mesh_compression"])),
                                   r"unsupported extension.*KHR_draco_mesh_compression"),
    "nodes not an array": (glb_json(setter("nodes", "abc")), r"'nodes' must be a JSON array"),
    "accessor not an object": (glb_json(setter("accessors.0", 5)), r"accessor 0 must be a JSON object"),
    # accessors and buffers
    "accessor count too large": (glb_json(setter("accessors.0.count", 8)),
                                 r"accessor 0 reads bytes 0\.\.96 of bufferView 1, which has 48 bytes"),
    "accessor offset past the view": (glb_json(setter("accessors.3.byteOffset", 10)),
                                      r"accessor 3 reads bytes 10\.\.22 of bufferView 4, which has 12 bytes"),
    "negative count": (glb_json(setter("accessors.0.count", -4)), r"'count' must be an integer >= 1"),
    "huge count": (glb_json(setter("accessors.0.count", 10**12)), r"'count' must be an integer"),
    "count is a string": (glb_json(setter("accessors.0.count", "4")), r"'count' must be an integer"),
    "missing count": (glb_json(setter("accessors.0.count", DELETE)),
                      r"accessor 0 is missing the required field 'count'"),
    "bad componentType": (glb_json(setter("accessors.0.componentType", 5127)),
                          r"accessor 0: 'componentType' must be one of"),
    "bad accessor type": (glb_json(setter("accessors.0.type", "VEC5")), r"'type' must be one of"),
    "POSITION is VEC2": (glb_json(setter("accessors.0.type", "VEC2")),
                         r"POSITION \(accessor 0\) has type VEC2; expected VEC3"),
    "float indices": (glb_json(setter("accessors.3.componentType", 5126)), r"indices must be unsigned"),
    "normalized float": (glb_json(setter("accessors.0.normalized", True)), r"is normalized"),
    "bufferView out of buffer range": (glb_json(setter("bufferViews.1.byteOffset", 10**6)),
                                       r"bufferView 1 covers bytes 1000000\.\.1000048 of buffer 0"),
    "bad byteStride": (glb_json(setter("bufferViews.1.byteStride", 2)), r"'byteStride' must be"),
    "bad bufferView reference": (glb_json(setter("accessors.0.bufferView", 99)),
                                 r"accessor 0 bufferView refers to bufferView 99, but the file has \d+"),
    "buffer longer than BIN chunk": (glb_json(setter("buffers.0.byteLength", 10**6)),
                                     r"buffer 0 has byteLength 1000000, but its data has only"),
    "buffer with a URL": (glb_json(setter("buffers.0.uri", "https://example.com/x.bin")),
                          r"only relative file paths"),
    "buffer with an absolute path": (glb_json(setter("buffers.0.uri", "/etc/hostname")),
                                     r"only relative file paths"),
    "buffer with bad base64": (glb_json(setter("buffers.0.uri", "data:application/octet-stream;base64,@@")),
                               r"not valid base64"),
    "buffer uri out of the folder": (glb_json(setter("buffers.0.uri", "../outside.bin")),
                                     r"buffer 0 has uri '../outside.bin', which leads outside the model's"),
    "buffer uri out, %2F-encoded": (glb_json(setter("buffers.0.uri", "sub%2F..%2F..%2Foutside.bin")),
                                    r"leads outside the model's folder"),
    "buffer uri %2F-encoded absolute": (glb_json(setter("buffers.0.uri", "%2Fetc%2Fpasswd")),
                                        r"only relative file paths inside the model's folder"),
    "image uri /etc/passwd": (glb_json(_image_uri("/etc/passwd")), r"image 0 has uri '/etc/passwd'; only"),
    "image uri ../../../../etc/passwd": (glb_json(_image_uri("../../../../etc/passwd")),
                                         r"image 0 has uri '../../../../etc/passwd', which leads outside"),
    "image uri /proc/self/environ": (glb_json(_image_uri("/proc/self/environ")), r"only relative file paths"),
    "data: URI longer than its byteLength": (glb_json(_long_data_uri),
                                             r"data: URI of 400000 base64 characters, more than the 48 that"),
    "vertices beyond the budget": (glb_json(_many_vertices), r"its meshes declare 134217732 vertices, more "
                                                             r"than the budget of 4194304 per file"),
    "accessors without a bufferView (zero area)": (glb_json(setter("accessors.0.bufferView", DELETE)),
                                                   r"every triangle of the scene has zero area"),
    "sparse index out of range": (glb_json(setter("accessors.0.sparse", {
        "count": 1, "indices": {"bufferView": 6, "componentType": 5123, "byteOffset": 14},  # 1.0f's high half
        "values": {"bufferView": 1}})), r"sparse indices reach 16256, but the accessor has 4 elements"),
    # geometry
    "index out of bounds": (glb_bin(poke(4, [99], np.uint16, at=2)),
                            r"index 99 at position 2 is out of bounds: POSITION has 4 vertices"),
    "NaN position": (glb_bin(poke(1, [np.nan], np.float32, at=4)),
                     r"POSITION \(accessor 0\) has a non-finite value \(nan\) at element 1"),
    "inf position": (glb_bin(poke(1, [np.inf], np.float32)), r"non-finite value \(inf\)"),
    "absurd position": (glb_bin(poke(1, [1e30], np.float32)), r"coordinate of 1e\+30"),
    "missing POSITION": (glb_json(setter("meshes.0.primitives.0.attributes.POSITION", DELETE)),
                         r"has no POSITION"),
    "bad primitive mode": (glb_json(setter("meshes.0.primitives.0.mode", 9)), r"'mode' must be one of"),
    "no primitives": (glb_json(setter("meshes.0.primitives", [])), r"mesh 0 has no primitives"),
    "index count not a multiple of 3": (glb_json(setter("accessors.3.count", 5)), r"not a multiple of 3"),
    # the node hierarchy
    "bad scene root": (glb_json(setter("scenes.0.nodes", [99])), r"refers to node 99"),
    "bad child reference": (glb_json(setter("nodes.1.children", [42])),
                            r"node 1 children refers to node 42"),
    "bad default scene": (glb_json(setter("scene", 5)), r"refers to scene 5"),
    "node is its own child": (glb_json(setter("nodes.0.children", [0])), r"node 0 is a child of itself"),
    "node with two parents": (glb_json(_two_parents), r"node 0 is a child of node \d+ and node \d+"),
    "cyclic node hierarchy": (glb_json(_cycle), r"cycle"),
    "hierarchy too deep": (glb_json(_deep), r"more than 256 levels deep"),
    "bad mesh reference": (glb_json(setter("nodes.0.mesh", 7)), r"node 0 mesh refers to mesh 7"),
    "bad material reference": (glb_json(setter("meshes.0.primitives.0.material", 3)),
                               r"refers to material 3"),
    "matrix of 15 numbers": (glb_json(setter("nodes.1.matrix", [1.0] * 15)), r"a list of 16 finite"),
    "NaN translation": (glb_json(setter("nodes.0.translation", [0.0, float("nan"), 0.0])),
                        r"'translation' must be a list of 3 finite"),
    "zero rotation": (glb_json(setter("nodes.1.rotation", [0, 0, 0, 0])), r"zero quaternion"),
    "camera with yfov 0": (glb_json(setter("cameras.0.perspective.yfov", 0)), r"yfov must be in"),
    "camera without perspective": (glb_json(setter("cameras.0.perspective", DELETE)),
                                   r"missing the required field 'perspective'"),
    # materials and images
    "bad alphaMode": (glb_json(setter("materials.0.alphaMode", "GLASS")), r"'alphaMode' must be one of"),
    "bad wrap mode": (glb_json(setter("samplers.0.wrapS", 12345)), r"'wrapS' must be one of"),
    "bad texture reference": (glb_json(setter(BASE_TEXTURE, 4)), r"refers to texture 4"),
    "image bytes not an image": (glb_bin(poke(0, np.zeros(16), np.uint8)), r"image 0 could not be decoded"),
    "image bytes truncated": (glb_json(setter("bufferViews.0.byteLength", 60)),
                              r"image 0 could not be decoded"),
    "image with uri and bufferView": (glb_json(setter("images.0.uri", "tex.png")), r"exactly one of"),
    # animation
    "animation times decreasing": (glb_bin(poke(5, [1.0, 0.0], np.float32)),
                                   r"input times are not increasing"),
    "animation output count mismatch": (glb_json(setter(f"{SAMPLER0}.interpolation", "CUBICSPLINE")),
                                        r"2 key times but 2 output values; CUBICSPLINE needs 6"),
    "bad interpolation": (glb_json(setter(f"{SAMPLER0}.interpolation", "SMOOTH")),
                          r"'interpolation' must be one of"),
    "bad channel path": (glb_json(setter("animations.0.channels.0.target.path", "color")),
                         r"'path' must be"),
    "bad channel sampler": (glb_json(setter("animations.0.channels.0.sampler", 3)),
                            r"refers to sampler 3"),
    "animated node with a matrix": (glb_json(setter("nodes.0.matrix", IDENTITY16)),
                                    r"node 0 is animated but has a matrix"),
    # a .gltf and the files beside it
    "missing .bin": (gltf_files(lambda d: (d / "model.bin").unlink()),
                     r"buffer 0 \('model.bin'\): file not found"),
    "short .bin": (gltf_files(lambda d: (d / "model.bin").write_bytes(b"\0" * 10)),
                   r"buffer 0 has byteLength \d+, but its data has only 10 bytes"),
    "missing image": (gltf_files(lambda d: (d / "tex.png").unlink()),
                      r"image 0 \('tex.png'\): file not found"),
    "image is a directory": (gltf_files(_replace_with_dir), r"is not a regular file"),
    "truncated image file": (gltf_files(lambda d: (d / "tex.png").write_bytes(TEX_PNG[:60])),
                             r"image 0 \('tex.png'\) could not be decoded"),
    "huge image": (gltf_files(lambda d: (d / "tex.png").write_bytes(huge_png(9000, 9000))),
                   r"image 0 \('tex.png'\): image of 9000x9000 pixels is too large"),
    "decompression bomb": (gltf_files(lambda d: (d / "tex.png").write_bytes(huge_png(60000, 60000))),
                           r"image 0 \('tex.png'\): image is too large"),
    "empty .gltf": (gltf_files(lambda d: (d / "model.gltf").write_text("")), r"invalid JSON"),
}


def load_within(path: Path, seconds: float = 60.0):
    """load_gltf(path) in a thread: its exception or result, or a test failure if it hangs."""
    outcome: dict = {}

    def run():
        try:
            outcome["scene"] = load_gltf(path)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"load_gltf({path.name}) still running after {seconds} s")
    return outcome


def test_the_corpus_is_large_and_its_base_files_are_valid(tmp_path):
    assert len(CORPUS) >= 30
    glb = tmp_path / "valid.glb"
    glb.write_bytes(glb_bytes())
    for path in (glb, valid_external(tmp_path)):
        scene = load_gltf(path)
        assert [n.object_id for n in scene.drawables()] == [1, 2]
        assert scene.drawables()[0].material.base_color_texture is not None


@pytest.mark.parametrize("case", list(CORPUS))
def test_bad_input_raises_scene_load_error_naming_file_and_problem(tmp_path, case):
    write, pattern = CORPUS[case]
    path = write(tmp_path)
    outcome = load_within(path)
    error = outcome.get("error")
    assert isinstance(error, SceneLoadError), f"{case}: got {error!r}" if error else f"{case}: loaded"
    message = str(error)
    assert message.startswith(str(path) + ":"), message
    assert "probably malformed" not in message, f"{case}: no explicit check caught it: {message}"
    assert re.search(pattern, message), f"{case}: {message!r} !~ {pattern!r}"
    assert "\n" not in message


def test_missing_model_file_and_wrong_suffix(tmp_path):
    with pytest.raises(SceneLoadError, match=r"nothing\.glb: the model: file not found"):
        load_gltf(tmp_path / "nothing.glb")
    (tmp_path / "model.obj").write_text("v 0 0 0")
    with pytest.raises(SceneLoadError, match=r"model\.obj: expected a \.gltf or \.glb"):
        load_gltf(tmp_path / "model.obj")


def test_unexpected_failures_still_become_scene_load_errors(tmp_path, monkeypatch):
    from datagen.gltf import loader

    glb = tmp_path / "valid.glb"
    glb.write_bytes(glb_bytes())
    monkeypatch.setattr(loader, "world_bounds", lambda *a: 1 / 0)
    with pytest.raises(SceneLoadError, match=r"valid\.glb: cannot be loaded.*ZeroDivisionError"):
        load_gltf(glb)


def test_sample_models_are_copied_with_their_attribution():
    readme = (DATA / "README.md").read_text()
    for name in SAMPLE_MODELS:
        assert (DATA / name).is_file() and name in readme
    assert "CC-BY 4.0" in readme and "SCEA Shared Source License" in readme


def test_animated_trs_with_period_zero_is_constant():
    track = Track(np.array([0.0]), np.array([[1.0, 2.0, 3.0]]))
    trs = AnimatedTRS((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), (1.0, 1.0, 1.0), {"translation": track}, 0.0)
    np.testing.assert_array_equal(trs(5.0)[:3, 3], [1, 2, 3])


# -- untrusted files: their folder and their budget ----------------------------------------------------


def external_in(folder: Path, buffer_uri: str) -> Path:
    """valid_external in ``folder`` with its buffer at ``buffer_uri``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = valid_external(folder)
    gltf = json.loads(path.read_text())
    gltf["buffers"][0]["uri"] = buffer_uri
    path.write_text(json.dumps(gltf))
    return path


@pytest.mark.parametrize("uri, link", [
    ("../outside.bin", None), ("..%2Foutside.bin", None), ("sub/../../outside.bin", None),
    ("link.bin", "../outside.bin"),  # a symlink in the folder that leads out
    ("linkdir/model.bin", ".."),  # a symlinked folder that leads out
])
def test_external_files_outside_the_model_folder_are_refused_unread(tmp_path, uri, link):
    model = external_in(tmp_path / "model", uri)
    os.mkfifo(tmp_path / "outside.bin")  # opening it to read would block: a read would hang the load
    if link:
        (model.parent / uri.split("/")[0]).symlink_to(link)
    error = load_within(model, seconds=20).get("error")
    assert isinstance(error, SceneLoadError), error
    assert "which leads outside the model's folder" in str(error) and "refused unread" in str(error)


def test_symlinks_and_uris_that_stay_inside_the_folder_load(tmp_path):
    model = external_in(tmp_path / "real", "data/../model.bin")
    (tmp_path / "real" / "data").mkdir()
    (tmp_path / "real" / "alias.bin").symlink_to("model.bin")
    (tmp_path / "linked").symlink_to(tmp_path / "real")  # the model's folder reached through a link
    assert len(load_gltf(tmp_path / "linked" / model.name).drawables()) == 2
    gltf = json.loads(model.read_text())
    gltf["buffers"][0]["uri"] = "alias.bin"
    model.write_text(json.dumps(gltf))
    assert len(load_gltf(model).drawables()) == 2


def test_the_budget_is_configurable(tmp_path):
    from datagen.errors import ConfigError
    from datagen.gltf import Budget
    from datagen.scenes import recipes

    duck = DATA / "Duck.glb"
    assert load_gltf(duck).drawables()  # every sample asset fits the default
    with pytest.raises(SceneLoadError, match=r"declare 2399 vertices, more than the budget of 1000 per file"):
        load_gltf(duck, budget=Budget(max_vertices=1000))
    with pytest.raises(SceneLoadError, match=r"declare 4212 triangles, more than the budget of 4000"):
        load_gltf(duck, budget=Budget(max_triangles=4000))
    with pytest.raises(SceneLoadError, match=r"would bring the decoded data to \d+ bytes, more than the "
                                             r"budget of 200000 bytes"):
        load_gltf(duck, budget=Budget(max_bytes=200_000))  # its 512x512 texture is 1 MB decoded
    with pytest.raises(ConfigError, match="max_vertices must be an integer >= 1"):
        load_gltf(duck, budget=Budget(max_vertices=0))
    recipe = tmp_path / "duck.toml"
    recipe.write_text(f'generator = "gltf"\n[params]\npath = "{duck}"\nmax_vertices = 100\n')
    with pytest.raises(SceneLoadError, match="more than the budget of 100 per file"):
        recipes.load(str(recipe)).build(0)


def test_partly_degenerate_geometry_is_warned_about(tmp_path, caplog):
    b = GltfBuilder()
    good = b.primitive(*quad(1.0))
    flat = b.primitive([(0, 0, 0)] * 3, [(0, 0, 1)] * 3, [(0, 0)] * 3, [0, 1, 2])
    b.set_scene(b.add_node(mesh=b.add_mesh(good, flat)))
    with caplog.at_level(logging.WARNING, logger="datagen.gltf"):
        scene = load_gltf(b.write_glb(tmp_path / "half.glb"))
    assert len(scene.drawables()) == 2
    assert "1 of 2 primitives have zero area" in caplog.text
