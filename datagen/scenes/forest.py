"""``forest``: a walk along a woodland trail.

Trees with tapered trunks, thin branches and twigs (cylinders a few centimetres
across) and leaf clusters of crossed alpha-MASK cards; dense grass cards; a
dirt trail. Trees near the trail sway in the wind (small rotations about their
base, leaves fluttering about the crown), so dappled sunlight and shadows move;
the grass field sways as one sheared node. The camera walks slowly along the
trail at eye height with a slight head bob.

Static geometry sharing a material (ground, trail, grass, distant trees) is
merged; each swaying tree is a node with two children (bark, leaves).
"""

from __future__ import annotations

import numpy as np

from datagen import conventions as cv
from datagen.errors import ConfigError
from datagen.meshes import cylinder, merge, noise_texture, plane, transformed, tube
from datagen.scene import (
    Camera,
    Material,
    Mesh,
    Node,
    Scene,
    Sky,
    Sun,
    Texture,
    rotation_x,
    rotation_y,
    rotation_z,
    translation,
)
from datagen.scenes import register
from datagen.scenes.params import Param


def card(width: float, height: float, centred: bool = False) -> Mesh:
    """A vertical quad facing +z, bottom edge at y = 0 (or centred), texture upright."""
    y0 = -height / 2 if centred else 0.0
    hw = width / 2
    pos = np.array([(-hw, y0, 0), (hw, y0, 0), (hw, y0 + height, 0), (-hw, y0 + height, 0)], "f4")
    nrm = np.tile(np.array([0, 0, 1], "f4"), (4, 1))
    uv = np.array([(0, 1), (1, 1), (1, 0), (0, 0)], "f4")
    return Mesh(pos, nrm, uv, np.array([(0, 1, 2), (0, 2, 3)], "u4"))


def card_batch(centres: np.ndarray, sizes: np.ndarray, yaw: np.ndarray, tilt: np.ndarray,
               centred: bool) -> Mesh:
    """Crossed cards (two quads at right angles) at ``centres`` (n, 3), square of
    side ``sizes`` (n, 2) (width, height), turned by ``yaw`` about y after ``tilt`` about x."""
    n = len(centres)
    if n == 0:
        return merge([])
    base = card(1.0, 1.0, centred)
    two = merge([base, transformed(base, rotation_y(np.pi / 2))])
    scale = np.stack([sizes[:, 0], sizes[:, 1], sizes[:, 0]], -1)
    local = two.positions[None].astype(np.float64) * scale[:, None]
    rot = np.stack([rotation_y(a)[:3, :3] @ rotation_x(b)[:3, :3] for a, b in zip(yaw, tilt, strict=True)])
    pos = np.einsum("nij,nvj->nvi", rot, local) + centres[:, None]
    nrm = np.einsum("nij,vj->nvi", rot, two.normals.astype(np.float64))
    idx = two.indices[None].astype(np.int64) + (np.arange(n) * len(two.positions))[:, None, None]
    return Mesh(pos.reshape(-1, 3).astype("f4"), nrm.reshape(-1, 3).astype("f4"),
                np.tile(two.uvs, (n, 1)), idx.reshape(-1, 3).astype("u4"))


def crossed(mesh: Mesh) -> Mesh:
    """``mesh`` and a copy turned 90 degrees about y."""
    return merge([mesh, transformed(mesh, rotation_y(np.pi / 2))])


# -- textures -----------------------------------------------------------------------


def leaf_texture(rng: np.random.Generator, size: int = 256, leaves: int = 46) -> Texture:
    """Pointed elliptic leaves scattered over a disc, alpha 0 between them."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    rgba = np.zeros((size, size, 4), np.float64)
    for _ in range(leaves):
        r, a = 0.38 * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        cx, cy = 0.5 + r * np.cos(a), 0.5 + r * np.sin(a)
        angle = rng.uniform(0, np.pi)
        length, width = rng.uniform(0.07, 0.12), rng.uniform(0.025, 0.045)
        u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
        v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
        taper = np.clip(1 - (u / length) ** 2, 0, 1)
        inside = np.abs(v) < width * taper ** 0.8
        vein = inside & (np.abs(v) < 0.004)
        green = np.array([55, 105, 30]) * rng.uniform(0.7, 1.3) + rng.normal(0, 10, 3)
        shade = 0.85 + 0.3 * (u / length)
        rgba[inside, :3] = (green * shade[inside, None])
        rgba[vein, :3] *= 1.3
        rgba[inside, 3] = 255
    return Texture(np.clip(rgba, 0, 255).astype(np.uint8), srgb=True, wrap="clamp")


def grass_texture(rng: np.random.Generator, size: int = 128, blades: int = 30) -> Texture:
    """Tapered, slightly bent blades standing on the bottom edge."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    h = (size - y) / size  # 0 at the bottom, 1 at the top
    rgba = np.zeros((size, size, 4), np.float64)
    for _ in range(blades):
        base, top = rng.uniform(0.1, 0.9) * size, rng.uniform(0.45, 1.0)
        bend = rng.uniform(-0.25, 0.25) * size
        width = rng.uniform(1.5, 3.0)
        centre = base + bend * h**2
        inside = (np.abs(x - centre) < width * (1 - h / top)) & (h < top)
        colour = np.array([70, 115, 35]) * rng.uniform(0.7, 1.25)
        rgba[inside, :3] = colour * (0.55 + 0.6 * h[inside, None])
        rgba[inside, 3] = 255
    return Texture(np.clip(rgba, 0, 255).astype(np.uint8), srgb=True, wrap="clamp")


def bark_texture(rng: np.random.Generator, size: int = 128) -> Texture:
    """Vertical furrows."""
    x = np.arange(size)
    furrows = np.zeros(size)
    for f in (4, 9, 17):
        furrows += np.sin(2 * np.pi * f * x / size + rng.uniform(0, 2 * np.pi))
    streak = np.kron(rng.normal(0, 1, (size // 8, 1)), np.ones((8, 1)))
    value = 75 + 14 * furrows[None, :] + 6 * streak
    rgb = np.stack([value, value * 0.82, value * 0.66], -1)
    out = np.full((size, size, 4), 255, np.uint8)
    out[..., :3] = np.clip(rgb, 0, 255)
    return Texture(out)


# -- trees --------------------------------------------------------------------------


def tree(rng: np.random.Generator, leaf_cards: int) -> tuple[Mesh, Mesh, np.ndarray]:
    """(bark, leaves, crown centre) of one tree in local space, base at the origin."""
    height = rng.uniform(7.0, 12.0)
    trunk_r = rng.uniform(0.18, 0.32)
    bark = [cylinder(trunk_r, height, 10, caps=False, top_radius=trunk_r * 0.25)]
    tips = []
    n_branches = int(rng.integers(8, 14))
    for _ in range(n_branches):
        h0 = rng.uniform(max(0.3 * height, 3.0), 0.92 * height)
        azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 0.9)
        length = rng.uniform(1.4, 3.2) * (1.15 - h0 / height)
        d = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(elevation),
                      np.sin(azimuth) * np.cos(elevation)])
        a = np.array([0.0, h0, 0.0])
        b = a + d * length
        r0 = rng.uniform(0.04, 0.07)
        bark.append(tube(a, b, r0, 5, end_radius=r0 * 0.35))
        tips.append(b)
        for _ in range(int(rng.integers(2, 4))):  # twigs, a centimetre or two across
            f = rng.uniform(0.4, 0.9)
            start = a + (b - a) * f
            twig_d = d + rng.normal(0, 0.6, 3)
            twig_d[1] = abs(twig_d[1]) + 0.2
            twig_d /= np.linalg.norm(twig_d)
            end = start + twig_d * rng.uniform(0.5, 1.2)
            bark.append(tube(start, end, 0.018, 4, end_radius=0.008))
            tips.append(end)
    tips.append(np.array([0.0, height, 0.0]))
    tips = np.array(tips)
    centres = tips[rng.integers(len(tips), size=leaf_cards)] + rng.normal(0, 0.5, (leaf_cards, 3))
    sizes = np.repeat(rng.uniform(0.7, 1.4, (leaf_cards, 1)), 2, axis=1)
    leaves = card_batch(centres, sizes, rng.uniform(0, np.pi, leaf_cards), rng.uniform(-0.6, 0.6, leaf_cards),
                        centred=True)
    return merge(bark), leaves, tips.mean(0)


def sway(base: np.ndarray, amplitude: float, freq: float, phase: float):
    """Rotation about ``base`` by a small, smoothly varying angle about x and z."""
    def transform(t: float) -> np.ndarray:
        ax = amplitude * np.sin(2 * np.pi * freq * t + phase)
        az = 0.7 * amplitude * np.sin(2 * np.pi * freq * 1.37 * t + 2 * phase)
        return translation(base) @ rotation_x(ax) @ rotation_z(az) @ translation(-base)
    return transform


PARAMS = {
    "size": Param("float", 20.0, 400.0),
    "trees": Param("int", 0, 300),
    "swaying_trees": Param("int", 0, 300),
    "leaf_cards": Param("int", 0, 400),
    "grass_clumps": Param("int", 0, 40000),
    "trail_width": Param("float", 0.3, 6.0),
    "walk_speed": Param("float", 0.0, 5.0),
    "eye_height": Param("float", 0.3, 5.0),
    "wind": Param("float", 0.0, 5.0),
    "fps": Param("float", 1.0, 240.0),
}
"""Documented ranges (datagen.scenes.params): metres, counts, m/s. Trees stand
``TREE_SPACING`` m apart and 3.5 m off the trail; ``trees`` that do not fit in ``size``
are a ConfigError after ``PLACEMENT_TRIES_PER_TREE`` tries each (the loop is bounded)."""

TREE_SPACING = 3.0
"""metres between tree trunks, at least."""
PLACEMENT_TRIES_PER_TREE = 60
"""random positions tried per tree before the placement gives up."""


CLIP = (0.05, 300.0)
"""the camera's (near, far) planes in metres."""


@register("forest", PARAMS, clip=CLIP)
def forest(seed: int = 0, size: float = 80.0, trees: int = 80, swaying_trees: int = 16,
           leaf_cards: int = 150, grass_clumps: int = 9000, trail_width: float = 1.6, walk_speed: float = 1.2,
           eye_height: float = 1.7, wind: float = 1.0, fps: float = 30.0) -> Scene:
    rng = np.random.default_rng(seed)
    half = size / 2
    amp, wavelength, phase0 = rng.uniform(2.0, 5.0), rng.uniform(15.0, 30.0), rng.uniform(0, 2 * np.pi)

    def trail_x(z):
        return amp * np.sin(np.asarray(z) / wavelength + phase0)

    # trees: rejection-sampled, off the trail and apart from each other; a bounded number of tries
    positions: list[np.ndarray] = []
    placed = np.empty((trees, 2))
    for _ in range(PLACEMENT_TRIES_PER_TREE * trees):
        if len(positions) == trees:
            break
        p = rng.uniform(-half + 2, half - 2, 2)
        n = len(positions)
        if abs(p[0] - trail_x(p[1])) < 3.5 or (n and np.min(np.hypot(*(placed[:n] - p).T)) < TREE_SPACING):
            continue
        placed[n] = p
        positions.append(p)
    if len(positions) < trees:
        raise ConfigError(f"trees = {trees}: only {len(positions)} fit {TREE_SPACING:g} m apart and off "
                          f"the trail in a size = {size:g} m forest ({PLACEMENT_TRIES_PER_TREE} tries a "
                          "tree); lower trees or raise size")
    near = np.abs(placed[:, 0] - trail_x(placed[:, 1]))
    swaying = set(np.argsort(near)[:swaying_trees].tolist())

    bark_mat = Material(base_color_texture=bark_texture(rng), roughness=0.9)
    leaf_mat = Material(base_color_texture=leaf_texture(rng), roughness=0.6, alpha_mode="MASK",
                        alpha_cutoff=0.5, double_sided=True)
    grass_mat = Material(base_color_texture=grass_texture(rng), roughness=0.7, alpha_mode="MASK",
                         alpha_cutoff=0.5, double_sided=True)
    ground_mat = Material(base_color_texture=noise_texture(rng, 256, (62, 70, 38), 10), roughness=0.95)
    trail_mat = Material(base_color_texture=noise_texture(rng, 256, (120, 100, 75), 9), roughness=0.95)

    nodes: list[Node] = []
    still_bark, still_leaves = [], []
    for i, p in enumerate(positions):
        bark, leaves, crown = tree(rng, leaf_cards)
        place = translation((p[0], 0.0, p[1])) @ rotation_y(rng.uniform(0, 2 * np.pi))
        if i in swaying:
            tree_sway = sway(np.zeros(3), wind * np.radians(rng.uniform(0.6, 1.4)), rng.uniform(0.2, 0.4),
                             rng.uniform(0, 2 * np.pi))
            flutter = sway(crown, wind * np.radians(rng.uniform(1.5, 3.0)), rng.uniform(0.8, 1.6),
                           rng.uniform(0, 2 * np.pi))
            children = (Node(f"tree{i}.bark", mesh=bark, material=bark_mat),
                        Node(f"tree{i}.leaves", flutter, leaves, leaf_mat))
            nodes.append(Node(f"tree{i}", lambda t, place=place, s=tree_sway: place @ s(t),
                              children=children))
        else:
            still_bark.append(transformed(bark, place))
            still_leaves.append(transformed(leaves, place))

    ground = transformed(plane(size, size, (size / 4, size / 4)), np.eye(4))
    zs = np.linspace(-half, half, 161)
    xs = trail_x(zs)
    left = np.stack([xs - trail_width / 2, np.full_like(zs, 0.01), zs], -1)
    right = np.stack([xs + trail_width / 2, np.full_like(zs, 0.01), zs], -1)
    n = len(zs)
    trail_pos = np.concatenate([left, right])
    trail_uv = np.concatenate([np.stack([np.zeros(n), zs / 2], -1),
                               np.stack([np.full(n, trail_width / 2), zs / 2], -1)])
    k = np.arange(n - 1)
    trail_idx = np.concatenate([np.stack([k, k + 1, n + k + 1], -1), np.stack([k, n + k + 1, n + k], -1)])
    trail = Mesh(trail_pos.astype("f4"), np.tile(np.array([0, 1, 0], "f4"), (2 * n, 1)),
                 trail_uv.astype("f4"), trail_idx.astype("u4"))

    xz = rng.uniform(-half + 0.5, half - 0.5, (grass_clumps * 2, 2))
    xz = xz[np.abs(xz[:, 0] - trail_x(xz[:, 1])) > trail_width / 2 + 0.1][:grass_clumps]
    grass = card_batch(np.stack([xz[:, 0], np.zeros(len(xz)), xz[:, 1]], -1),
                       np.stack([rng.uniform(0.35, 0.7, len(xz)), rng.uniform(0.25, 0.6, len(xz))], -1),
                       rng.uniform(0, np.pi, len(xz)), np.zeros(len(xz)), centred=False)
    grass_phase = rng.uniform(0, 2 * np.pi)

    def grass_wind(t: float) -> np.ndarray:
        shear = np.eye(4)
        shear[0, 1] = 0.06 * wind * np.sin(1.3 * t + grass_phase)
        shear[2, 1] = 0.04 * wind * np.sin(0.9 * t + 2 * grass_phase)
        return shear

    nodes = [Node("ground", mesh=ground, material=ground_mat),
             Node("trail", mesh=trail, material=trail_mat),
             Node("grass", grass_wind, grass, grass_mat),
             Node("trees.bark", mesh=merge(still_bark), material=bark_mat),
             Node("trees.leaves", mesh=merge(still_leaves), material=leaf_mat), *nodes]
    counter = iter(range(1, 10_000))

    def with_ids(node: Node) -> Node:
        oid = next(counter) if node.mesh is not None else 0
        return Node(node.name, node.transform, node.mesh, node.material, oid,
                    tuple(with_ids(c) for c in node.children))

    nodes = [with_ids(nd) for nd in nodes]

    z_start = half - 5.0
    bob_phase = rng.uniform(0, 2 * np.pi)
    step_hz = 1.8 * walk_speed / 1.2

    def view(t: float) -> np.ndarray:
        z = z_start - walk_speed * t
        bob = 0.03 * np.sin(2 * np.pi * step_hz * t + bob_phase)
        sway_x = 0.02 * np.sin(np.pi * step_hz * t + bob_phase)
        eye = (float(trail_x(z)) + sway_x, eye_height + bob, z)
        z_look = z - 6.0
        return cv.look_at(eye, (float(trail_x(z_look)), eye_height - 0.4, z_look))

    camera = Camera(view=view, fov_y_deg=65.0, near=CLIP[0], far=CLIP[1])
    bounds = np.array([[-half - 6, -0.5, -half - 6], [half + 6, 17.0, half + 6]])
    sun = Sun(direction=(0.35, 0.7, -0.45), color=(1.0, 0.93, 0.8), irradiance=3.5)
    sky = Sky(zenith=(0.22, 0.42, 0.85), horizon=(0.75, 0.82, 0.9), ground=(0.2, 0.22, 0.12))
    return Scene("forest", tuple(nodes), camera, sun=sun, sky=sky, fps=fps, bounds=bounds)
