"""``primitives``: the analytic validation scene.

A checker plane; boxes moving in straight lines and spheres on circles at known
speeds; a camera dollying sideways while it looks at the middle. Every path is
a closed-form function of time, so motion and depth have known answers.
"""

from __future__ import annotations

import numpy as np

from datagen import conventions as cv
from datagen.meshes import box, checker_texture, plane, sphere
from datagen.scene import Camera, Material, Node, Scene, static, translation
from datagen.scenes import register
from datagen.scenes.params import Param


def linear_path(start, velocity):
    start, velocity = np.asarray(start, float), np.asarray(velocity, float)
    return lambda t: translation(start + velocity * t)


def circle_path(centre, radius: float, omega: float, phase: float):
    centre = np.asarray(centre, float)
    return lambda t: translation(
        centre + radius * np.array([np.cos(omega * t + phase), 0.0, np.sin(omega * t + phase)]))


CLIP = (0.1, 500.0)
"""the camera's (near, far) planes in metres."""


def dolly_camera(start, velocity, target, fov_y_deg: float = 50.0) -> Camera:
    """A camera moving at constant velocity, always looking at ``target``."""
    start, velocity = np.asarray(start, float), np.asarray(velocity, float)
    return Camera(view=lambda t: cv.look_at(start + velocity * t, target), fov_y_deg=fov_y_deg,
                  near=CLIP[0], far=CLIP[1])


PARAMS = {
    "boxes": Param("int", 0, 64),
    "spheres": Param("int", 0, 64),
    "plane_size": Param("float", 4.0, 400.0),
    "object_speed": Param("float", 0.0, 100.0),
    "camera_speed": Param("float", 0.0, 100.0),
}
"""Documented ranges (datagen.scenes.params): counts in objects, metres, m/s."""


@register("primitives", PARAMS, clip=CLIP)
def primitives(seed: int = 0, boxes: int = 3, spheres: int = 3, plane_size: float = 40.0,
               object_speed: float = 2.0, camera_speed: float = 1.0) -> Scene:
    rng = np.random.default_rng(seed)
    checker = Material(base_color_texture=checker_texture(), roughness=0.8)
    ground = Node("ground", static(np.eye(4)), plane(plane_size, plane_size, (plane_size / 4,) * 2),
                  checker, object_id=1)
    nodes = [ground]
    box_mesh, sphere_mesh = box((1.0, 1.0, 1.0)), sphere(0.6)
    for i in range(boxes):
        colour = (*rng.uniform(0.1, 0.9, 3), 1.0)
        start = (rng.uniform(-6, 6), 0.5, rng.uniform(-6, 2))
        heading = rng.uniform(0, 2 * np.pi)
        velocity = object_speed * np.array([np.cos(heading), 0.0, np.sin(heading)])
        nodes.append(Node(f"box{i}", linear_path(start, velocity), box_mesh,
                          Material(base_color=colour, roughness=0.4), object_id=2 + i))
    for i in range(spheres):
        colour = (*rng.uniform(0.1, 0.9, 3), 1.0)
        metallic = float(rng.integers(0, 2))
        radius = rng.uniform(2, 5)
        nodes.append(Node(
            f"sphere{i}", circle_path((0.0, 0.6, -2.0), radius, object_speed / radius,
                                      rng.uniform(0, 2 * np.pi)),
            sphere_mesh, Material(base_color=colour, metallic=metallic, roughness=0.3),
            object_id=2 + boxes + i))
    camera = dolly_camera((-4.0, 3.0, 9.0), (camera_speed, 0.0, 0.0), (0.0, 0.5, -2.0))
    half = plane_size / 2
    return Scene("primitives", tuple(nodes), camera,
                 bounds=np.array([[-half, -0.1, -half], [half, 3.0, half]]))
