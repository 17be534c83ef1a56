"""``compose``: Kubric-style scenes composed from mesh files, with hard cases on switches.

A recipe names asset files or globs under the ``scenes/`` folder (any format of
``datagen.assets``: OBJ, PLY, STL, OFF, glTF, ...). ``objects`` of them, drawn
in a shuffled cycle (so every listed file is used once before any repeats), are
scaled to ``size`` metres (longest side), given a random orientation (a yaw on
the ground, any rotation in the air), placed without overlap inside a square of
half-size ``area`` on a textured ground or at ``air_height``, and animated with
one of ``animations`` (spin, linear or curved paths, bounces; see
``datagen.motion``). With probability ``material_override`` an object's
materials are replaced by a random PBR material, textured with one of
``textures`` (checkers, stripes, text) projected on the box axes.

Light: a sun and sky from ``time_of_day`` (hours), as in ``racing``. The
renderer has only the sun and the sky (no point or area lights); emissive
surfaces glow but light nothing.

Camera: ``camera`` is one of the rigs of ``datagen.motion.RIGS`` (orbit, dolly,
fly-through on a spline, handheld, fast pans, cuts), ``camera_speed`` scales its
pace and ``shake`` adds handheld shake (degrees).

Hard cases (``datagen.scenes.hard_cases``), each a count, 0 = off: ``foliage``,
``fences``, ``thin``, ``glass``, ``moire``, ``signs``, ``fast_spin``,
``disocclusion``, ``particles``.

Everything is drawn from the seed; every parameter is checked (ConfigError, one line).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from datagen.assets import DEFAULT_MAX_TRIANGLES, asset_suffixes, load_asset
from datagen.errors import ConfigError, SceneLoadError
from datagen.meshes import checker_texture, noise_texture, plane
from datagen.motion import ANIMATIONS, RIGS, axis_rotation, camera_rig, object_motion, random_rotation
from datagen.scene import Camera, Material, Mesh, Node, Scene, scaling, static, translation
from datagen.scenes import hard_cases, register
from datagen.scenes.params import Param
from datagen.scenes.racing import sun_and_sky, sun_by_clock
from datagen.scenes.recipes import scenes_dir

DEFAULT_ASSETS = ("assets/Duck.glb", "assets/BoxTextured.glb", "assets/mesh/*.obj", "assets/mesh/*.ply",
                  "assets/mesh/*.stl", "assets/mesh/*.off")
PLACEMENTS = ("ground", "air", "mixed")
GROUNDS = ("checker", "tiles", "noise")
MAX_OBJECTS = 64
MAX_HARD = {"foliage": 32, "fences": 16, "thin": 16, "glass": 16, "moire": 16, "signs": 16, "fast_spin": 16,
            "disocclusion": 64, "particles": 256}
PLACEMENT_TRIES = 50
"""rejection-sampling tries per object before it is placed regardless of overlap."""


# -- parameters ---------------------------------------------------------------------------


def _fail(name: str, value, expected: str):
    raise ConfigError(f"compose: {name}={value!r}; expected {expected}")


def _pair(value) -> tuple:
    """A "span" parameter as (lo, hi): a single number x means (x, x)."""
    return (value, value) if isinstance(value, int | float) else (value[0], value[1])


def resolve_assets(patterns, root: Path) -> list[Path]:
    """The asset files that ``patterns`` (paths or globs relative to ``root``) name, sorted
    within each pattern, each once; ConfigError for a pattern that leaves ``root`` or
    matches no asset file."""
    if isinstance(patterns, str):
        patterns = [patterns]
    if not (isinstance(patterns, list | tuple) and patterns and all(isinstance(p, str) for p in patterns)):
        _fail("assets", patterns, "a non-empty list of paths or globs relative to scenes/")
    suffixes = asset_suffixes()
    files: list[Path] = []
    for pattern in patterns:
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            _fail("assets", pattern, "a path or glob inside scenes/ (no absolute paths, no '..')")
        found = [p for p in sorted(root.glob(pattern)) if p.is_file() and p.suffix.lower() in suffixes]
        if not found:
            raise ConfigError(f"compose: assets pattern {pattern!r} matches no mesh file under {root} "
                              f"(formats: {', '.join(suffixes)})")
        files += [p for p in found if p not in files]
    return files


# -- objects ------------------------------------------------------------------------------


def renumber(nodes, counter) -> tuple[Node, ...]:
    """Copies of ``nodes`` whose drawn nodes take ids from ``counter`` (depth first)."""
    return tuple(Node(n.name, n.transform, n.mesh, n.material, next(counter) if n.mesh is not None else 0,
                      renumber(n.children, counter)) for n in nodes)


def box_uvs(mesh: Mesh, density: float) -> Mesh:
    """``mesh`` with UVs projected along each vertex normal's dominant axis, ``density``
    texture repeats per metre of the mesh's local space."""
    axis = np.abs(mesh.normals).argmax(1)
    pick = np.array([[2, 1], [0, 2], [0, 1]])[axis]  # x-facing: (z, y); y-facing: (x, z); z-facing: (x, y)
    uv = np.take_along_axis(mesh.positions, pick, 1) * density
    return Mesh(mesh.positions, mesh.normals, uv.astype("f4"), mesh.indices)


def override(nodes, material: Material, density: float) -> tuple[Node, ...]:
    """``nodes`` with every mesh drawn in ``material`` (box-projected UVs if it is textured)."""
    textured = material.base_color_texture is not None
    out = []
    for n in nodes:
        mesh = box_uvs(n.mesh, density) if textured and n.mesh is not None else n.mesh
        out.append(Node(n.name, n.transform, mesh, material if mesh is not None else n.material, 0,
                        override(n.children, material, density)))
    return tuple(out)


def random_material(rng: np.random.Generator, textures: tuple[str, ...]) -> Material:
    """A random metallic-roughness material; a procedural texture half the time."""
    metallic = float(rng.choice([0.0, 0.0, 1.0]))
    base = (*map(float, rng.uniform(0.05, 0.95, 3)), 1.0)
    tex = hard_cases.procedural(str(rng.choice(textures)), rng) if textures and rng.random() < 0.5 else None
    return Material(base_color=(1.0, 1.0, 1.0, 1.0) if tex else base, metallic=metallic,
                    roughness=float(rng.uniform(0.05, 0.9)), base_color_texture=tex)


def model_extent(scene: Scene) -> np.ndarray:
    """(2, 3) local bounds of a loaded model at t = 0."""
    pts = np.concatenate([n.mesh.positions @ w[:3, :3].T + w[:3, 3] for n, w in scene.walk(0.0)])
    return np.stack([pts.min(0), pts.max(0)])


def place_objects(rng: np.random.Generator, count: int, radii: list[float], area: float) -> list[np.ndarray]:
    """xz positions inside [-area, area]^2 at least r_i + r_j apart where a bounded number
    of tries finds one (else the last try)."""
    spots: list[np.ndarray] = []
    for i in range(count):
        for _ in range(PLACEMENT_TRIES):
            p = rng.uniform(-area + radii[i], area - radii[i], 2) if area > radii[i] else np.zeros(2)
            if all(np.linalg.norm(p - q) >= radii[i] + radii[j] for j, q in enumerate(spots)):
                break
        spots.append(p)
    return spots


# -- the generator ------------------------------------------------------------------------


PARAMS = {
    "assets": Param("str_list", count=(1, 64)),
    "objects": Param("span", 0, MAX_OBJECTS, integer=True),
    "size": Param("span", 0.05, 20.0),
    "area": Param("float", 1.0, 200.0),
    "placement": Param("str", choices=PLACEMENTS),
    "air_height": Param("span", 0.0, 100.0),
    "animations": Param("str_list", choices=ANIMATIONS, count=(1, 16)),
    "speed": Param("span", 0.0, 50.0),
    "spin_rps": Param("span", 0.0, 10.0),
    "material_override": Param("float", 0.0, 1.0),
    "textures": Param("str_list", choices=hard_cases.TEXTURES, count=(1, 16)),
    "ground": Param("str", choices=GROUNDS),
    "time_of_day": Param("float", 0.0, 24.0),
    "camera": Param("str", choices=RIGS),
    "camera_speed": Param("float", 0.05, 20.0),
    "shake": Param("float", 0.0, 10.0),
    "cut_seconds": Param("float", 0.2, 600.0),
    "max_triangles": Param("int", 1, 100_000_000),
    **{name: Param("int", 0, hi) for name, hi in MAX_HARD.items()},
    "fps": Param("float", 1.0, 1000.0),
}
"""Documented ranges (datagen.scenes.params), checked by ``datagen.scenes.generate``
before the generator runs."""


def ground_half(area: float) -> float:
    """Half the side of the square ground, in metres."""
    return 3.0 * area + 20.0


def camera_clip(params: dict) -> tuple[float, float]:
    """The camera's (near, far) planes in metres: far reaches past the ground's corners."""
    return 0.05, 4.0 * ground_half(float(params["area"]))


@register("compose", PARAMS, clip=camera_clip)
def compose(seed: int = 0, assets=DEFAULT_ASSETS, objects=(6, 10), size=(0.6, 1.6), area: float = 6.0,
            placement: str = "mixed", air_height=(0.8, 3.0), animations=ANIMATIONS, speed=(0.5, 2.5),
            spin_rps=(0.1, 0.6), material_override: float = 0.3, textures=hard_cases.TEXTURES,
            ground: str = "checker", time_of_day: float = 11.0, camera: str = "orbit",
            camera_speed: float = 1.0, shake: float = 0.0, cut_seconds: float = 2.0,
            max_triangles: int = DEFAULT_MAX_TRIANGLES,
            foliage: int = 0, fences: int = 0, thin: int = 0, glass: int = 0, moire: int = 0, signs: int = 0,
            fast_spin: int = 0, disocclusion: int = 0, particles: int = 0, fps: float = 30.0) -> Scene:
    # the parameters are checked against PARAMS by datagen.scenes.generate
    (n_lo, n_hi), (size_lo, size_hi), (air_lo, air_hi) = _pair(objects), _pair(size), _pair(air_height)
    (speed_lo, speed_hi), (spin_lo, spin_hi) = _pair(speed), _pair(spin_rps)
    area, material_override, time_of_day = float(area), float(material_override), float(time_of_day)
    camera_speed, shake, cut_seconds, fps = float(camera_speed), float(shake), float(cut_seconds), float(fps)
    animations, textures = tuple(animations), tuple(textures)
    hard = {"foliage": foliage, "fences": fences, "thin": thin, "glass": glass, "moire": moire,
            "signs": signs, "fast_spin": fast_spin, "disocclusion": disocclusion, "particles": particles}
    files = resolve_assets(assets, scenes_dir()) if n_hi > 0 else []

    rng = np.random.default_rng(seed)
    count = int(rng.integers(n_lo, n_hi + 1))
    order = rng.permutation(len(files)) if files else np.zeros(0, int)
    models: dict[Path, Scene] = {}
    triangles = 0
    plans = []
    for i in range(count):
        path = files[int(order[i % len(files)])]
        if path not in models:
            models[path] = load_asset(path, max_triangles=max_triangles)
            triangles += sum(len(n.mesh.indices) for n in models[path].drawables())
            if triangles > max_triangles:
                raise SceneLoadError(f"compose: the assets hold more than {max_triangles} triangles "
                                     f"(at {path.name}); raise max_triangles or use fewer or smaller files")
        air = placement == "air" or (placement == "mixed" and rng.random() < 0.4)
        plans.append((path, air, float(rng.uniform(size_lo, size_hi))))
    spots = place_objects(rng, count, [0.75 * s for _, _, s in plans], area)

    counter = iter(range(1, 1 << 30))
    nodes: list[Node] = []
    top = 0.5
    for i, ((path, air, target), spot) in enumerate(zip(plans, spots, strict=True)):
        model = models[path]
        lo, hi = model_extent(model)
        fit = scaling(target / max(float(np.max(hi - lo)), 1e-9)) @ translation(-(lo + hi) / 2)
        if air:
            orient = random_rotation(rng)
            height = float(rng.uniform(air_lo, air_hi)) + target / 2
        else:  # stand on the ground: the lowest point at y = 0 after a yaw
            orient = axis_rotation((0.0, 1.0, 0.0), float(rng.uniform(0, 2 * math.pi)))
            height = target * (hi[1] - lo[1]) / max(float(np.max(hi - lo)), 1e-9) / 2
        kind = str(rng.choice(animations))
        motion = object_motion(kind, rng, speed=float(rng.uniform(speed_lo, speed_hi)),
                               spin_rps=float(rng.uniform(spin_lo, spin_hi)), reach=min(1.5, area / 4),
                               air=air, bounce_height=float(rng.uniform(0.3, 1.2)))
        base = translation((spot[0], height, spot[1]))
        children = model.nodes
        if rng.random() < material_override:
            children = override(children, random_material(rng, textures), density=2.0 / target)
        local = orient @ fit
        nodes.append(Node(f"object{i}:{path.name}", lambda t, b=base, m=motion, o=local: b @ m(t) @ o,
                          children=children))
        top = max(top, height + target + (1.2 if kind == "bounce" else 0.0) + 0.4 * min(1.5, area / 4))

    for name, build in hard_cases.BUILDERS.items():
        if hard[name]:
            nodes += build(rng, hard[name], area)

    half = ground_half(area)
    view, cuts = camera_rig(camera, rng, centre=(0.0, 0.8, 0.0), radius=area, min_height=top * 0.6,
                            speed=camera_speed, cut_seconds=cut_seconds, shake_deg=shake)
    if hard["particles"]:
        nodes += hard_cases.particles(rng, hard["particles"], area, view)
    ground_tex = {"checker": lambda: checker_texture(256, 8, (200, 200, 195), (70, 72, 75)),
                  "tiles": lambda: noise_texture(rng, 256, (150, 145, 135), 6, tiles=4, grout=(80, 78, 75)),
                  "noise": lambda: noise_texture(rng, 256, (95, 105, 70), 10)}[ground]()
    floor = Node("ground", static(np.eye(4)), plane(2 * half, 2 * half, (half / 2,) * 2),
                 Material(base_color_texture=ground_tex, roughness=0.85))
    nodes = list(renumber([floor, *nodes], counter))
    sun, sky = sun_and_sky(*sun_by_clock(time_of_day))
    bounds = np.array([[-half, -0.5, -half], [half, max(top, 6.0) + 2.0, half]])
    near, far = camera_clip({"area": area})
    cam = Camera(view=view, fov_y_deg=55.0, near=near, far=far, cuts=cuts)
    return Scene("compose", tuple(nodes), cam, sun=sun, sky=sky, fps=fps, bounds=bounds)
