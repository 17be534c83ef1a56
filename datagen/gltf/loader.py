"""glTF 2.0 (.gltf, .glb) -> ``Scene``: the node hierarchy, cameras, bounds and an orbit camera.

Each glTF node becomes a ``Node`` carrying its (possibly animated) local
transform; each of its mesh's primitives becomes a child ``Node`` with an
identity transform, the primitive's mesh and material, and an object id.
Ids count up from ``first_object_id`` in depth-first scene order (a node's
primitives, then its children), which is the order ``Scene.walk`` returns them.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from datagen import conventions as cv
from datagen.errors import ConfigError, SceneLoadError
from datagen.gltf.accessors import Accessors
from datagen.gltf.animation import MIN_SCALE, AnimatedTRS, Animation, read_first_animation, trs_matrix
from datagen.gltf.document import DEFAULT_BUDGET, Budget, Document, Fields
from datagen.gltf.geometry import check_budget, has_area, primitive_mesh
from datagen.gltf.materials import Materials
from datagen.scene import Camera, Mesh, Node, Scene, Sky, TransformFn, static

CAMERA_MODES = ("auto", "file", "orbit")
MAX_EXTENT = 1e9
"""metres: a scene reaching further from the origin is refused as absurd."""
MAX_DEPTH = 256
"""Deepest node hierarchy accepted (the renderer walks it recursively)."""
ORBIT_PERIOD_S = 8.0
ORBIT_FOV_Y_DEG = 45.0
ORBIT_ELEVATION_DEG = 25.0
BOUNDS_SAMPLES = 16
"""evenly spaced animation times at which the world bounds are measured (key times too)."""
MAX_KEY_SAMPLES = 64
STUDIO_SKY = Sky(ground=Sky().horizon)
"""No ground below the horizon: the model floats in front of a sky gradient."""


def load_gltf(path: str | Path, seed: int = 0, *, fps: float = 30.0, camera: str = "auto",
              first_object_id: int = 1, budget: Budget = DEFAULT_BUDGET) -> Scene:
    """Load a .gltf (with external .bin and images, or data: URIs) or .glb file as a Scene.

    camera: "auto" uses the file's first perspective camera (depth-first scene
            order) if it has one, else an orbit camera; "file" requires a file
            camera; "orbit" always orbits (see ``orbit_camera``).
    seed:   varies the orbit (start azimuth, elevation, direction); seed 0 starts
            in front of the model (+z) at 25 degrees and turns counter-clockwise.
    fps:    Scene.fps. The first animation plays, looping over its duration.
    first_object_id: the id of the first drawn primitive; the others count up
            from it in depth-first order (for combining several models).
    budget: the most vertices, triangles and decoded bytes the file may declare
            (``Budget``); checked before any data is decoded.

    External files must lie in the model's folder (``Document.local_path``).

    Raises SceneLoadError, naming the file and the problem, for anything wrong
    with the file or what it refers to.
    """
    if camera not in CAMERA_MODES:
        raise ConfigError(f"camera={camera!r}; use one of {', '.join(CAMERA_MODES)}")
    if not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps must be a positive number, got {fps}")
    for name, value, lo in (("seed", seed, 0), ("first_object_id", first_object_id, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ConfigError(f"{name} must be an integer >= {lo}, got {value!r}")
    budget.check()
    path = Path(path)
    if path.suffix.lower() not in (".gltf", ".glb"):
        raise SceneLoadError(f"{path}: expected a .gltf or .glb file")
    try:
        with np.errstate(all="ignore"):  # overflow and the like are caught by explicit checks
            return _load(path, seed, fps, camera, first_object_id, budget)
    except SceneLoadError:
        raise
    except Exception as exc:  # a check we lack: still one clear error, never a traceback
        raise SceneLoadError(f"{path}: cannot be loaded, the file is probably malformed "
                             f"({type(exc).__name__}: {exc})") from exc


def _load(path: Path, seed: int, fps: float, camera_mode: str, first_object_id: int,
          budget: Budget) -> Scene:
    doc = Document.open(path, budget)
    acc = Accessors(doc)
    check_budget(doc, acc)
    builder = _Builder(doc, acc, Materials(doc), read_first_animation(doc, acc), first_object_id)
    nodes = tuple(builder.node(i, (), np.eye(4)) for i in scene_roots(doc))
    if builder.next_id == first_object_id:
        doc.fail("the scene has no triangles to draw")
    drawn = {id(m): m for m in builder.meshes.values() if m is not None}
    flat = sum(not has_area(m) for m in drawn.values())
    if flat == len(drawn):
        doc.fail("every triangle of the scene has zero area (all its vertices coincide or lie on a "
                 "line; e.g. POSITION accessors without a bufferView read as zeros), so nothing would "
                 "be drawn")
    if flat:
        doc.warn("area", f"{flat} of {len(drawn)} primitives have zero area (all their vertices coincide "
                         "or lie on a line) and draw nothing")
    placeholder = Camera(view=static(np.eye(4)))
    scene = Scene(path.stem, nodes, placeholder, sky=STUDIO_SKY, fps=fps)
    times = sample_times(builder.animation)
    bounds = world_bounds(scene, times)
    if not np.isfinite(bounds).all() or np.abs(bounds).max() > MAX_EXTENT:
        doc.fail(f"the scene reaches {np.abs(bounds).max():.3g} m from the origin; at most "
                 f"{MAX_EXTENT:.0e} m is accepted (check the node scales and translations)")
    camera = None
    if camera_mode != "orbit":
        camera = builder.file_camera(bounds, times)
        if camera is None and camera_mode == "file":
            doc.fail("has no perspective camera (camera='file')")
    if camera is None:
        camera = orbit_camera(bounds, **orbit_parameters(seed))
    doc.flush_warnings()
    return dataclasses.replace(scene, camera=camera, bounds=bounds)


def scene_roots(doc: Document) -> list[int]:
    """Root nodes of the default scene (or of every parentless node if there are no
    scenes), after checking that the nodes form trees no deeper than MAX_DEPTH."""
    count = len(doc.array("nodes"))
    parent: dict[int, int] = {}
    for i in range(count):
        for child in doc.item("nodes", i).refs("children", "nodes"):
            if child == i or child in parent:
                other = f"node {parent[child]} and node {i}" if child in parent else "itself"
                doc.fail(f"node {child} is a child of {other}; the node hierarchy must be a set of trees")
            parent[child] = i
    stack = [(i, 1) for i in range(count) if i not in parent]
    reached = 0
    while stack:  # each node is pushed once: it has at most one parent
        i, depth = stack.pop()
        reached += 1
        if depth > MAX_DEPTH:
            doc.fail(f"the node hierarchy is more than {MAX_DEPTH} levels deep (at node {i})")
        stack += [(c, depth + 1) for c in doc.item("nodes", i).list("children")]
    if reached < count:
        doc.fail("the node hierarchy has a cycle: some nodes are their own ancestors")
    gltf = doc.fields(doc.json, "the glTF")
    if not doc.array("scenes"):
        if "scene" in gltf:
            doc.fail("'scene' is set but the file has no scenes")
        return [i for i in range(count) if i not in parent]
    index = gltf.ref("scene", "scenes")
    scene = doc.item("scenes", 0 if index is None else index)
    roots = scene.refs("nodes", "nodes")
    for root in roots:
        if root in parent:
            doc.fail(f"{scene.where} lists node {root} as a root, but it is a child of node {parent[root]}")
    return roots


class _Builder:
    """Turns glTF nodes into ``Node`` trees, numbering drawn primitives as it goes."""

    def __init__(self, doc: Document, acc: Accessors, materials: Materials, animation: Animation,
                 first_object_id: int):
        self.doc, self.acc, self.materials, self.animation = doc, acc, materials, animation
        self.next_id = first_object_id
        self.meshes: dict[tuple[int, int, int, bool], Mesh | None] = {}
        self.cameras: list[tuple[int, int, tuple[TransformFn, ...]]] = []
        """(node, camera index, transforms from the root down to the node), depth first."""

    def node(self, index: int, chain: tuple[TransformFn, ...], parent0: np.ndarray) -> Node:
        """Node ``index`` and its subtree; ``chain`` holds its ancestors' transforms and
        ``parent0`` their product at t = 0."""
        f = self.doc.item("nodes", index)
        local = self.transform(f, index)
        chain = (*chain, local)
        world0 = parent0 @ local(0.0)
        children: list[Node] = []
        if "skin" in f:
            f.ref("skin", "skins")
            self.doc.warn("skin", "skins and morph targets are not supported: rendered in the bind pose")
        mesh = f.ref("mesh", "meshes")
        if mesh is not None:  # a mirroring world transform (at t = 0) reverses the winding
            children += self.primitives(mesh, f.where, bool(np.linalg.det(world0[:3, :3]) < 0))
        camera = f.ref("camera", "cameras")
        if camera is not None:
            self.cameras.append((index, camera, chain))
        children += [self.node(c, chain, world0) for c in f.refs("children", "nodes")]
        return Node(f.str("name", f"node{index}"), local, children=tuple(children))

    def transform(self, f: Fields, index: int) -> TransformFn:
        tracks = self.animation.tracks.get(index, {})
        if "matrix" in f:
            if tracks:
                self.doc.fail(f"{f.where} is animated but has a matrix; animated nodes must use TRS")
            m = np.array(f.nums("matrix", 16)).reshape(4, 4).T  # glTF stores column-major
            if not np.allclose(m[3], [0, 0, 0, 1]):
                self.doc.fail(f"{f.where} matrix is not affine (last row {m[3].tolist()})")
            sv = np.linalg.svd(m[:3, :3], compute_uv=False)
            if sv[-1] < MIN_SCALE * MIN_SCALE * max(sv[0], 1.0):
                self.doc.fail(f"{f.where} matrix is singular (zero scale); use scale instead")
            return static(m)
        translation = f.nums("translation", 3, (0.0, 0.0, 0.0))
        rotation = np.array(f.nums("rotation", 4, (0.0, 0.0, 0.0, 1.0)))
        if np.linalg.norm(rotation) < 1e-6:
            self.doc.fail(f"{f.where} rotation is a zero quaternion")
        rotation = tuple(rotation / np.linalg.norm(rotation))
        scale = f.nums("scale", 3, (1.0, 1.0, 1.0))
        if tracks:
            return AnimatedTRS(translation, rotation, scale, tracks, self.animation.duration)
        return static(trs_matrix(translation, rotation, scale))

    def primitives(self, index: int, where: str, flip: bool) -> list[Node]:
        m = self.doc.item("meshes", index, where)
        prims = m.list("primitives", required=True)
        if not prims:
            self.doc.fail(f"{m.where} has no primitives")
        if "weights" in m:
            self.doc.warn("skin", "skins and morph targets are not supported: rendered in the bind pose")
        name = m.str("name", f"mesh{index}")
        out = []
        for p, prim_json in enumerate(prims):
            prim = self.doc.fields(prim_json, f"{m.where} primitive {p}")
            if "targets" in prim:
                self.doc.warn("skin", "skins and morph targets are not supported: rendered in the bind pose")
            material, uv_set = self.materials.material(prim.ref("material", "materials"), prim.where)
            key = (index, p, uv_set, flip)
            if key not in self.meshes:
                self.meshes[key] = primitive_mesh(self.doc, self.acc, prim, uv_set, flip)
            if self.meshes[key] is not None:
                out.append(Node(f"{name}/{p}", mesh=self.meshes[key], material=material,
                                object_id=self.next_id))
                self.next_id += 1
        return out

    def file_camera(self, bounds: np.ndarray, times: np.ndarray) -> Camera | None:
        """The first perspective camera in depth-first order, or None."""
        for node, index, chain in self.cameras:
            c = self.doc.item("cameras", index, f"node {node}")
            if c.enum("type", ("perspective", "orthographic"), required=True) == "orthographic":
                self.doc.warn("ortho", f"{c.where} is orthographic, which is not supported; ignored")
                continue
            p = c.sub("perspective", required=True)
            yfov = p.num("yfov", required=True)
            znear = p.num("znear", required=True)
            if not (0 < yfov < math.pi and znear > 0):
                self.doc.fail(f"{p.where}: yfov must be in (0, pi) and znear > 0, got {yfov} and {znear}")
            zfar = p.num("zfar", None, lo=znear * (1 + 1e-6))
            view = camera_view(chain)
            if zfar is None:  # infinite projection in glTF: cover the model from every position
                centre, radius = bounds.mean(0), float(np.linalg.norm(bounds[1] - bounds[0])) / 2
                reach = max(np.linalg.norm(np.linalg.inv(view(t))[:3, 3] - centre) for t in times) + radius
                zfar = max(2.0 * reach, 10.0 * znear)
            return Camera(view=view, fov_y_deg=math.degrees(yfov), near=znear, far=zfar)
        return None


def camera_view(chain: tuple[TransformFn, ...]) -> TransformFn:
    """world-to-camera at t of a camera node, its scale and shear removed."""

    def view(t: float) -> np.ndarray:
        world = np.eye(4)
        for local in chain:
            world = world @ local(t)
        u, _, vt = np.linalg.svd(world[:3, :3])
        rotation = u @ vt  # the nearest rotation (or reflection) to the node's 3x3
        out = np.eye(4)
        out[:3, :3] = rotation.T
        out[:3, 3] = -rotation.T @ world[:3, 3]
        return out

    return view


def sample_times(animation: Animation) -> np.ndarray:
    """Times at which the animated scene is measured, over one loop: evenly spaced,
    every key time (at most MAX_KEY_SAMPLES of them) and just before the loop ends."""
    duration = animation.duration
    if duration <= 0:
        return np.zeros(1)
    keys = np.unique(np.concatenate([track.times for by_path in animation.tracks.values()
                                     for track in by_path.values()]))
    keys = keys[(keys >= 0) & (keys < duration)]
    if len(keys) > MAX_KEY_SAMPLES:
        keys = keys[np.linspace(0, len(keys) - 1, MAX_KEY_SAMPLES).astype(int)]
    even = np.linspace(0.0, duration, BOUNDS_SAMPLES, endpoint=False)
    return np.unique(np.concatenate([even, keys, [duration * (1 - 1e-9)]]))


def world_bounds(scene: Scene, times: np.ndarray) -> np.ndarray:
    """(2, 3) world box holding every mesh at every sampled time, padded by 1%."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    corners: dict[int, np.ndarray] = {}  # of each mesh's local box, computed once
    for t in times:
        for node, world in scene.walk(float(t)):
            if id(node.mesh) not in corners:
                b = node.mesh.bounds().astype(np.float64)
                corners[id(node.mesh)] = np.array([[b[i, 0], b[j, 1], b[k, 2]]
                                                   for i in (0, 1) for j in (0, 1) for k in (0, 1)])
            points = corners[id(node.mesh)] @ world[:3, :3].T + world[:3, 3]
            lo, hi = np.minimum(lo, points.min(0)), np.maximum(hi, points.max(0))
    pad = 0.01 * float(np.linalg.norm(hi - lo)) + 1e-3
    return np.stack([lo - pad, hi + pad])


def orbit_parameters(seed: int) -> dict:
    """Orbit start azimuth, elevation and direction for a seed (seed 0: the canonical front view)."""
    if seed == 0:
        return {}
    rng = np.random.default_rng(seed)
    return {"azimuth0_rad": float(rng.uniform(0, 2 * np.pi)),
            "elevation_deg": float(rng.uniform(15.0, 35.0)),
            "direction": int(rng.choice([-1, 1]))}


def orbit_camera(bounds: np.ndarray, *, fov_y_deg: float = ORBIT_FOV_Y_DEG, period_s: float = ORBIT_PERIOD_S,
                 elevation_deg: float = ORBIT_ELEVATION_DEG, azimuth0_rad: float = 0.0,
                 direction: int = 1) -> Camera:
    """A camera circling the centre of ``bounds`` (2, 3) once per ``period_s`` seconds,
    far enough that the box's bounding sphere fits the vertical field of view
    (and so any landscape frame), looking at the centre from ``elevation_deg``
    above the horizon. Azimuth 0 is on the +z side; direction +1 turns
    counter-clockwise seen from above."""
    bounds = np.asarray(bounds, dtype=np.float64)
    centre = bounds.mean(0)
    radius = max(float(np.linalg.norm(bounds[1] - bounds[0])) / 2, 1e-3)
    distance = 1.05 * radius / math.sin(math.radians(fov_y_deg) / 2)
    elevation = math.radians(elevation_deg)

    def view(t: float) -> np.ndarray:
        azimuth = azimuth0_rad + direction * 2 * math.pi * t / period_s
        offset = np.array([math.cos(elevation) * math.sin(azimuth), math.sin(elevation),
                           math.cos(elevation) * math.cos(azimuth)])
        return cv.look_at(centre + distance * offset, centre)

    return Camera(view=view, fov_y_deg=fov_y_deg, near=0.5 * (distance - radius),
                  far=2.0 * (distance + radius))
