"""``showroom``: glTF assets on turntables, seen by an orbiting camera.

Each asset (a .gltf/.glb path relative to the repository's ``scenes/`` folder)
is loaded with ``load_gltf``, scaled to a common size, centred and set on a
striped turntable disc that spins about y on a fixed plinth; the tables stand
in a ring on a tiled floor. The camera orbits the whole set (``orbit_camera``).
The seed varies the turntable phases, speeds and directions and the orbit's
start azimuth, elevation and direction; the assets and layout stay.
"""

from __future__ import annotations

import numpy as np

from datagen.gltf import load_gltf, orbit_camera
from datagen.meshes import cylinder, noise_texture, plane
from datagen.scene import Material, Node, Scene, Sky, Sun, Texture, rotation_y, scaling, static, translation
from datagen.scenes import register
from datagen.scenes.params import Param
from datagen.scenes.recipes import scenes_dir

DEFAULT_ASSETS = ("assets/Duck.glb", "assets/BoxTextured.glb", "assets/BoxInterleaved.glb")


def sector_texture(size: int = 256, sectors: int = 24) -> Texture:
    """Alternating light and dark pie sectors with two rings, so spinning shows."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    angle = np.arctan2(y, x)
    r = np.hypot(x, y)
    dark = (np.floor((angle + np.pi) / (2 * np.pi) * sectors) % 2 == 0) ^ ((r > 0.3) & (r < 0.33))
    dark |= (r > 0.46) & (r < 0.48)
    out = np.full((size, size, 4), 255, np.uint8)
    out[..., :3] = np.where(dark[..., None], np.array([45, 45, 50]), np.array([205, 200, 190]))
    return Texture(out)


def model_bounds(scene: Scene) -> np.ndarray:
    """(2, 3) world bounds of a loaded model at t = 0."""
    pts = [node.mesh.positions @ w[:3, :3].T + w[:3, 3] for node, w in scene.walk(0.0)]
    pts = np.concatenate(pts)
    return np.stack([pts.min(0), pts.max(0)])


PARAMS = {
    "assets": Param("str_list", count=(1, 12)),
    "model_size": Param("float", 0.1, 10.0),
    "ring_radius": Param("float", 0.0, 30.0),
    "table_radius": Param("float", 0.1, 5.0),
    "spin_period_s": Param("float", 0.5, 1000.0),
    "orbit_period_s": Param("float", 1.0, 1000.0),
    "fps": Param("float", 1.0, 240.0),
}
"""Documented ranges (datagen.scenes.params): 1 to 12 asset paths, metres, seconds."""


@register("showroom", PARAMS)
def showroom(seed: int = 0, assets: list[str] | tuple[str, ...] = DEFAULT_ASSETS, model_size: float = 1.3,
             ring_radius: float = 2.4, table_radius: float = 0.85, spin_period_s: float = 10.0,
             orbit_period_s: float = 30.0, fps: float = 30.0) -> Scene:
    rng = np.random.default_rng(seed)
    root = scenes_dir()
    plinth_h, disc_h = 0.1, 0.08
    disc_mat = Material(base_color_texture=sector_texture(), roughness=0.5)
    plinth_mat = Material(base_color=(0.08, 0.08, 0.09, 1.0), metallic=0.9, roughness=0.25)
    floor_mat = Material(base_color_texture=noise_texture(rng, 256, (170, 168, 165), 4, tiles=2,
                                                          grout=(110, 108, 105)), roughness=0.35)
    plinth_mesh = cylinder(table_radius + 0.08, plinth_h, 48)
    disc_mesh = cylinder(table_radius, disc_h, 48)

    next_id = 1
    nodes = []
    n = len(assets)
    for k, rel in enumerate(assets):
        angle = 2 * np.pi * k / n
        pos = ring_radius * np.array([np.sin(angle), 0.0, np.cos(angle)]) if n > 1 else np.zeros(3)
        model = load_gltf(root / rel, seed=seed, camera="orbit", first_object_id=next_id + 2)
        lo, hi = model_bounds(model)
        scale = model_size / float(np.max(hi - lo))
        centre = (lo + hi) / 2
        fit = scaling(scale) @ translation((-centre[0], -lo[1], -centre[2]))
        omega = rng.choice([-1, 1]) * 2 * np.pi / (spin_period_s * rng.uniform(0.7, 1.3))
        phase = rng.uniform(0, 2 * np.pi)

        def spin(t: float, pos=pos, omega=omega, phase=phase) -> np.ndarray:
            return translation(pos + [0, plinth_h, 0]) @ rotation_y(omega * t + phase)

        nodes.append(Node(f"plinth{k}", static(translation(pos)), plinth_mesh, plinth_mat, next_id))
        nodes.append(Node(f"turntable{k}", spin, children=(
            Node(f"disc{k}", mesh=disc_mesh, material=disc_mat, object_id=next_id + 1),
            Node(f"model{k}", static(translation((0, disc_h, 0)) @ fit), children=model.nodes))))
        next_id += 2 + len(model.drawables())

    set_radius = ring_radius + table_radius + 0.1
    set_bounds = np.array([[-set_radius, 0.0, -set_radius], [set_radius, plinth_h + disc_h + model_size,
                                                               set_radius]])
    framed = set_bounds * [0.7, 1.0, 0.7]  # frame the tables tightly; the ring's outer edge may crop
    camera = orbit_camera(framed, period_s=orbit_period_s, elevation_deg=float(rng.uniform(15.0, 35.0)),
                          azimuth0_rad=float(rng.uniform(0, 2 * np.pi)), direction=int(rng.choice([-1, 1])))
    eye = np.linalg.inv(camera.view(0.0))[:3, 3]
    floor_half = float(np.hypot(eye[0], eye[2])) + 15.0
    floor_mesh = plane(2 * floor_half, 2 * floor_half, (floor_half,) * 2)
    floor = Node("floor", static(np.eye(4)), floor_mesh, floor_mat, next_id)
    bounds = np.array([[-floor_half, -0.5, -floor_half], [floor_half, set_bounds[1, 1] + 0.5, floor_half]])
    sun = Sun(direction=(0.3, 0.85, 0.45), irradiance=2.5)
    sky = Sky(zenith=(0.3, 0.32, 0.36), horizon=(0.7, 0.7, 0.72), ground=(0.3, 0.3, 0.3))
    return Scene("showroom", (floor, *nodes), camera, sun=sun, sky=sky, fps=fps, bounds=bounds)
