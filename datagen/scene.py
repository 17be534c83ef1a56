"""The scene model: meshes, materials, animated nodes, cameras, sun and sky.

Plain data, no GL. Scene generators (``datagen.scenes``) and importers build
these; ``datagen.render.Renderer`` mirrors them onto the GPU. Units are metres
and seconds; world y is up; transforms are (4, 4) float64 matrices for column
vectors (see ``datagen.conventions``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

TransformFn = Callable[[float], np.ndarray]
"""t (seconds) -> (4, 4) matrix."""


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh in its node's local space.

    positions: (n, 3) float32, metres.
    normals:   (n, 3) float32, unit.
    uvs:       (n, 2) float32; glTF convention: (0, 0) is the top-left of a texture.
    indices:   (m, 3) uint32 triangles, counter-clockwise front faces.
    """

    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    indices: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.positions)
        for name, width in (("positions", 3), ("normals", 3), ("uvs", 2)):
            arr = getattr(self, name)
            if arr.shape != (n, width):
                raise ValueError(f"Mesh.{name} has shape {arr.shape}, expected ({n}, {width})")
        if self.indices.ndim != 2 or self.indices.shape[1] != 3:
            raise ValueError(f"Mesh.indices has shape {self.indices.shape}, expected (m, 3)")
        if len(self.indices) and int(self.indices.max()) >= n:
            raise ValueError(f"Mesh.indices reach {int(self.indices.max())}, mesh has {n} vertices")

    def bounds(self) -> np.ndarray:
        """(2, 3) min and max corner in local space."""
        return np.stack([self.positions.min(0), self.positions.max(0)])


@dataclass(frozen=True, eq=False)
class Texture:
    """An image with its sampler.

    pixels: (h, w, 4) uint8, row 0 the top of the image (as files store it).
    srgb:   True for colour data (base colour, emissive); False for data
            (metallic-roughness, normal, occlusion).
    wrap:   "repeat", "clamp" or "mirror".
    """

    pixels: np.ndarray
    srgb: bool = True
    wrap: str = "repeat"


@dataclass(frozen=True, eq=False)
class Material:
    """glTF 2.0 metallic-roughness material. Factors multiply their textures."""

    base_color: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 1.0)
    """linear RGBA."""
    metallic: float = 0.0
    roughness: float = 0.5
    emissive: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """linear RGB radiance added on top of the lit colour."""
    base_color_texture: Texture | None = None
    metallic_roughness_texture: Texture | None = None
    """glTF layout: roughness in G, metallic in B."""
    normal_texture: Texture | None = None
    emissive_texture: Texture | None = None
    occlusion_texture: Texture | None = None
    """R channel: ambient occlusion."""
    alpha_mode: str = "OPAQUE"
    """OPAQUE, MASK (cut at alpha_cutoff) or BLEND."""
    alpha_cutoff: float = 0.5
    double_sided: bool = False


def static(matrix: np.ndarray) -> TransformFn:
    """A transform that does not change with time."""
    m = np.asarray(matrix, dtype=np.float64)
    return lambda t: m


def translation(xyz) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = xyz
    return m


def scaling(xyz) -> np.ndarray:
    return np.diag([*np.broadcast_to(np.asarray(xyz, dtype=np.float64), (3,)), 1.0])


def rotation_x(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    m = np.eye(4)
    m[1, 1], m[1, 2], m[2, 1], m[2, 2] = c, -s, s, c
    return m


def rotation_y(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    m = np.eye(4)
    m[0, 0], m[0, 2], m[2, 0], m[2, 2] = c, s, -s, c
    return m


def rotation_z(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    m = np.eye(4)
    m[0, 0], m[0, 1], m[1, 0], m[1, 1] = c, -s, s, c
    return m


@dataclass(frozen=True, eq=False)
class Node:
    """A node of the hierarchy. Its world transform at t is
    ``parent.world(t) @ transform(t)``; a node with a mesh is drawn with
    ``object_id`` (>= 1; 0 is the sky)."""

    name: str
    transform: TransformFn = field(default=static(np.eye(4)))
    mesh: Mesh | None = None
    material: Material = field(default_factory=Material)
    object_id: int = 0
    children: tuple[Node, ...] = ()


@dataclass(frozen=True, eq=False)
class Camera:
    """A perspective camera on a path.

    view: t -> world-to-camera (4, 4) matrix; the camera looks down -z.
    cuts: times (seconds) at which the camera jumps; the first frame at or
          after a cut time is flagged ``camera_cut``.
    """

    view: TransformFn
    fov_y_deg: float = 60.0
    near: float = 0.1
    far: float = 1000.0
    cuts: tuple[float, ...] = ()


@dataclass(frozen=True)
class Sun:
    """A directional light. ``direction`` points from the scene towards the sun."""

    direction: tuple[float, float, float] = (0.3, 0.8, 0.4)
    color: tuple[float, float, float] = (1.0, 0.95, 0.88)
    irradiance: float = 3.0
    """W/m^2-like scale of the direct light on a surface facing the sun."""


@dataclass(frozen=True)
class Sky:
    """An analytic sky: gradient from horizon to zenith, a ground colour below
    the horizon, and a visible sun disc. Linear RGB radiance."""

    zenith: tuple[float, float, float] = (0.25, 0.45, 0.9)
    horizon: tuple[float, float, float] = (0.8, 0.85, 0.95)
    ground: tuple[float, float, float] = (0.3, 0.28, 0.25)
    intensity: float = 1.0
    sun_disc: float = 50.0
    """radiance of the sun disc relative to the sun colour."""


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything a renderer needs for any time t."""

    name: str
    nodes: tuple[Node, ...]
    camera: Camera
    sun: Sun = Sun()
    sky: Sky = Sky()
    fps: float = 30.0
    exposure: float = 1.0
    """multiplier that maps scene radiance to display range (recorded, not applied)."""
    bounds: np.ndarray = field(default_factory=lambda: np.array([[-50.0, -1, -50], [50, 20, 50]]))
    """(2, 3) world-space box holding all geometry, for the shadow map."""
    depth_prepass: bool = False
    """Whether each HR sample first draws the opaque and alpha-tested surfaces depth
    only, then shades each pixel's nearest surface alone (``Renderer.hr_reference``):
    faster where surfaces hide each other much (city), slower where they do not. Set by
    a generator registered with ``depth_prepass=True`` (``datagen.scenes.register``)."""

    def frame_time(self, frame_index: int) -> float:
        return frame_index / self.fps

    def walk(self, t: float) -> list[tuple[Node, np.ndarray]]:
        """Every node with a mesh of at least one triangle and its world matrix at time t,
        depth first (a generator's empty batch, e.g. no cars, draws nothing)."""
        out: list[tuple[Node, np.ndarray]] = []

        def visit(nodes: Sequence[Node], parent: np.ndarray) -> None:
            for node in nodes:
                world = parent @ node.transform(t)
                if node.mesh is not None and len(node.mesh.indices):
                    out.append((node, world))
                visit(node.children, world)

        visit(self.nodes, np.eye(4))
        return out

    def drawables(self) -> list[Node]:
        """Nodes with a mesh, in the order ``walk`` returns them."""
        return [node for node, _ in self.walk(0.0)]

    def is_cut(self, frame_index: int) -> bool:
        """True on the first frame at or after a camera cut."""
        t, t_prev = self.frame_time(frame_index), self.frame_time(frame_index - 1)
        return any(t_prev < c <= t for c in self.camera.cuts)
