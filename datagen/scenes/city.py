"""``city``: a street grid for flythroughs.

Blocks of buildings whose facades repeat a fine window grid (some windows lit,
emissive), raised sidewalks with paving, asphalt with dashed lane markings and
zebra crossings, street lights (thin poles and arms) strung together with
sagging wires, and box cars driving loops around blocks. The camera flies a
smooth loop along the streets a few metres up, looking ahead along its path.

All static geometry that shares a material is merged into one mesh; only the
cars are separate nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen import conventions as cv
from datagen.errors import ConfigError
from datagen.meshes import box, merge, noise_texture, plane, rgba, transformed, tube
from datagen.scene import (
    Camera,
    Material,
    Mesh,
    Node,
    Scene,
    Sky,
    Sun,
    Texture,
    rotation_y,
    static,
    translation,
)
from datagen.scenes import register
from datagen.scenes.params import Param

STOREY_M = 3.2
BAY_M = 2.6
FACADE_CELLS = 16
"""window cells per facade texture side."""
WALL_COLOURS = np.array([(150, 82, 62), (200, 186, 160), (140, 140, 146), (172, 165, 152), (110, 96, 84),
                         (185, 170, 130)], float)
"""brick, sandstone, grey render, concrete, dark brick, ochre (sRGB)."""


class LoopPath:
    """A closed path through ``corners`` (k, 2) (x, z) with arcs of ``radius`` at the
    corners, parametrised by arc length s (metres, any real, wraps)."""

    def __init__(self, corners, radius: float, arc_points: int = 24):
        corners = np.asarray(corners, dtype=np.float64)
        pts = []
        k = len(corners)
        for i in range(k):
            prev, c, nxt = corners[i - 1], corners[i], corners[(i + 1) % k]
            d_in = (c - prev) / np.linalg.norm(c - prev)
            d_out = (nxt - c) / np.linalg.norm(nxt - c)
            a, b = c - d_in * radius, c + d_out * radius
            # quadratic Bezier a -> c -> b approximates the arc, tangent-continuous
            s = np.linspace(0, 1, arc_points)[:, None]
            pts.append((1 - s) ** 2 * a + 2 * s * (1 - s) * c + s**2 * b)
        pts = np.concatenate(pts)
        pts = np.concatenate([pts, pts[:1]])
        self.points = pts
        self.s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        self.length = float(self.s[-1])

    def at(self, s: float) -> np.ndarray:
        """(x, z) at arc length s."""
        s = float(s) % self.length
        return np.array([np.interp(s, self.s, self.points[:, 0]), np.interp(s, self.s, self.points[:, 1])])

    def heading(self, s: float, ds: float = 0.5) -> np.ndarray:
        d = self.at(s + ds) - self.at(s - ds)
        return d / np.linalg.norm(d)


def rect_corners(x0: float, x1: float, z0: float, z1: float, direction: int) -> np.ndarray:
    c = np.array([(x0, z0), (x1, z0), (x1, z1), (x0, z1)])
    return c if direction > 0 else c[::-1]


# -- textures -----------------------------------------------------------------------


def facade_textures(rng: np.random.Generator, cell_px: int = 32, lit_fraction: float = 0.2):
    """(base colour, emissive) textures of FACADE_CELLS^2 window cells: wall, a
    frame, glass split by thin mullions; a random ``lit_fraction`` of windows glow."""
    size = FACADE_CELLS * cell_px
    y, x = np.mgrid[0:size, 0:size]
    cy, cx = y % cell_px, x % cell_px
    margin_x, top, bottom = rng.integers(4, 9), rng.integers(5, 9), rng.integers(3, 7)
    window = (cx >= margin_x) & (cx < cell_px - margin_x) & (cy >= top) & (cy < cell_px - bottom)
    frame = window & ~((cx >= margin_x + 1) & (cx < cell_px - margin_x - 1)
                       & (cy >= top + 1) & (cy < cell_px - bottom - 1))
    mid_y = (top + cell_px - bottom) // 2
    mullion = window & ((np.abs(cx - cell_px // 2) < 1) | (cy == mid_y))
    wall = WALL_COLOURS[rng.integers(len(WALL_COLOURS))] * rng.uniform(0.85, 1.1)
    grain = rng.normal(0, 6, (size, size, 1))
    rgb = np.broadcast_to(wall, (size, size, 3)) + grain
    glass = np.array([40, 55, 70]) * rng.uniform(0.7, 1.3)
    rgb = np.where(window[..., None], glass + grain * 0.5, rgb)
    rgb = np.where((frame | mullion)[..., None], np.array([30, 30, 32]), rgb)
    lit_cells = rng.random((FACADE_CELLS, FACADE_CELLS)) < lit_fraction
    lit = np.kron(lit_cells, np.ones((cell_px, cell_px), bool)) & window & ~(frame | mullion)
    warm = np.array([255, 205, 140]) * rng.uniform(0.8, 1.0)
    emissive = np.where(lit[..., None], warm, 0.0)
    return Texture(rgba(rgb)), Texture(rgba(emissive))


# -- geometry -----------------------------------------------------------------------


def building_walls(x0: float, x1: float, z0: float, z1: float, height: float, uv_offset) -> Mesh:
    """The four walls of a box building, UVs in window cells (one texture = FACADE_CELLS cells)."""
    corners = [(x0, z1), (x1, z1), (x1, z0), (x0, z0)]  # counter-clockwise seen from above
    pos, nrm, uv, idx = [], [], [], []
    u_start = uv_offset[0]
    for i in range(4):
        (ax, az), (bx, bz) = corners[i], corners[(i + 1) % 4]
        length = float(np.hypot(bx - ax, bz - az))
        n = np.array([-(bz - az), 0.0, bx - ax]) / length
        # whole bays per wall, so windows do not get cut at corners
        u1 = u_start + round(length / BAY_M) / FACADE_CELLS
        v_top = uv_offset[1]
        v_bottom = v_top + round(height / STOREY_M) / FACADE_CELLS
        base = len(pos)
        pos += [(ax, 0, az), (bx, 0, bz), (bx, height, bz), (ax, height, az)]
        nrm += [n] * 4
        uv += [(u_start, v_bottom), (u1, v_bottom), (u1, v_top), (u_start, v_top)]
        idx += [base, base + 1, base + 2, base, base + 2, base + 3]
        u_start = u1
    return Mesh(np.asarray(pos, "f4"), np.asarray(nrm, "f4"), np.asarray(uv, "f4"),
                np.asarray(idx, "u4").reshape(-1, 3))


def planar_uv(mesh: Mesh, tile_m: float) -> Mesh:
    """``mesh`` with UVs from world x, z (top-down projection), ``tile_m`` metres per repeat."""
    uv = mesh.positions[:, [0, 2]] / tile_m
    return Mesh(mesh.positions, mesh.normals, uv.astype("f4"), mesh.indices)


def sagging_wire(a, b, sag: float, radius: float, segments: int = 8) -> list[Mesh]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    s = np.linspace(0, 1, segments + 1)
    pts = a + (b - a) * s[:, None]
    pts[:, 1] -= sag * 4 * s * (1 - s)
    return [tube(pts[i], pts[i + 1], radius, segments=4) for i in range(segments)]


def car_mesh(rng: np.random.Generator) -> Mesh:
    length, width = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9)
    body = transformed(box((length, 0.75, width)), translation((0, 0.65, 0)))
    cabin = transformed(box((length * 0.5, 0.55, width * 0.9)), translation((-0.1 * length, 1.3, 0)))
    wheels = [transformed(box((0.6, 0.6, 0.25)), translation((sx * length * 0.32, 0.3, sz * width * 0.45)))
              for sx in (-1, 1) for sz in (-1, 1)]
    return merge([body, cabin, *wheels])


PARAMS = {
    "blocks_x": Param("int", 1, 6),
    "blocks_z": Param("int", 1, 6),
    "block_size": Param("float", 20.0, 120.0),
    "street_width": Param("float", 8.0, 40.0),
    "sidewalk_width": Param("float", 0.5, 10.0),
    "min_storeys": Param("int", 1, 60),
    "max_storeys": Param("int", 1, 60),
    "lights_per_side": Param("int", 0, 6),
    "cars": Param("int", 0, 64),
    "camera_speed": Param("float", 0.0, 40.0),
    "camera_height": Param("float", 0.5, 100.0),
    "lit_windows": Param("float", 0.0, 1.0),
    "fps": Param("float", 1.0, 240.0),
}
"""Documented ranges (datagen.scenes.params): counts, metres, m/s. Streets are at least
8 m wide (cars keep 1.9 m right of the centre line and turn on a radius of half the
street less that); 6 x 6 blocks bound the build (about a second)."""


def check(p: dict) -> None:
    """Rules between parameters (ConfigError naming them)."""
    if p["min_storeys"] > p["max_storeys"]:
        raise ConfigError(f"min_storeys = {p['min_storeys']} is above max_storeys = {p['max_storeys']}")
    if p["block_size"] - 2 * p["sidewalk_width"] < 10.0:
        raise ConfigError(f"sidewalk_width = {p['sidewalk_width']} leaves less than 10 m of block_size = "
                          f"{p['block_size']} for buildings; give block_size - 2 sidewalk_width >= 10")


CLIP = (0.1, 600.0)
"""the camera's (near, far) planes in metres."""


@dataclass(frozen=True)
class Grid:
    """The street grid: street centrelines at x = i * pitch (i = 0..blocks_x) and
    z = j * pitch, square blocks between them."""

    blocks_x: int
    blocks_z: int
    block_size: float
    street_width: float

    @property
    def pitch(self) -> float:
        return self.block_size + self.street_width

    @property
    def extent(self) -> np.ndarray:
        """(x, z) size of the grid, outer street centrelines included."""
        return np.array([self.blocks_x * self.pitch, self.blocks_z * self.pitch])

    def block_centres(self):
        """(x, z) of each block, x-major."""
        for bi in range(self.blocks_x):
            for bj in range(self.blocks_z):
                yield (bi + 0.5) * self.pitch, (bj + 0.5) * self.pitch


@register("city", PARAMS, check, CLIP, depth_prepass=True)
def city(seed: int = 0, blocks_x: int = 4, blocks_z: int = 4, block_size: float = 34.0,
         street_width: float = 14.0, sidewalk_width: float = 3.0, min_storeys: int = 3, max_storeys: int = 14,
         lights_per_side: int = 3, cars: int = 6, camera_speed: float = 8.0, camera_height: float = 4.5,
         lit_windows: float = 0.2, fps: float = 30.0) -> Scene:
    # one generator, drawn from in this order: facades, buildings, street lights, ground
    # textures, cars, camera (a reordering changes every scene)
    rng = np.random.default_rng(seed)
    grid = Grid(blocks_x, blocks_z, block_size, street_width)
    facades = [facade_textures(rng, lit_fraction=lit_windows) for _ in range(3)]
    walls, roofs, slabs = _buildings(rng, grid, sidewalk_width, min_storeys, max_storeys, len(facades))
    marks = _markings(grid)
    poles, heads, wires = _street_lights(rng, grid, lights_per_side)

    margin = 30.0
    size = grid.extent + 2 * margin
    centre = grid.extent / 2
    road = planar_uv(transformed(plane(*size), translation((centre[0], 0.0, centre[1]))), 4.0)

    asphalt = Material(base_color_texture=noise_texture(rng, 256, (70, 70, 72), 6), roughness=0.9)
    paving = Material(base_color_texture=noise_texture(rng, 256, (150, 145, 138), 8, tiles=4,
                                                       grout=(90, 88, 85)), roughness=0.8)
    concrete = Material(base_color=(0.35, 0.34, 0.33, 1.0), roughness=0.9)
    white = Material(base_color=(0.85, 0.85, 0.82, 1.0), roughness=0.6)
    steel = Material(base_color=(0.25, 0.27, 0.3, 1.0), metallic=0.8, roughness=0.4)
    cable = Material(base_color=(0.03, 0.03, 0.03, 1.0), roughness=0.6)
    lamp = Material(base_color=(1.0, 0.95, 0.8, 1.0), emissive=(6.0, 5.4, 4.2))

    nodes = [Node("road", static(np.eye(4)), road, asphalt),
             Node("markings", static(np.eye(4)), merge(marks), white),
             Node("sidewalks", static(np.eye(4)), planar_uv(merge(slabs), 2.0), paving),
             Node("roofs", static(np.eye(4)), merge(roofs), concrete),
             Node("poles", static(np.eye(4)), merge(poles), steel),
             Node("lamps", static(np.eye(4)), merge(heads), lamp),
             Node("wires", static(np.eye(4)), merge(wires), cable)]
    for k, ((base_tex, glow_tex), meshes) in enumerate(zip(facades, walls, strict=True)):
        if meshes:
            material = Material(base_color_texture=base_tex, emissive=(3.0, 3.0, 3.0),
                                emissive_texture=glow_tex, roughness=0.7)
            nodes.append(Node(f"facades{k}", static(np.eye(4)), merge(meshes), material))
    nodes += _cars(rng, grid, cars)
    nodes = [Node(n.name, n.transform, n.mesh, n.material, object_id=i + 1) for i, n in enumerate(nodes)]

    camera = _camera(rng, grid, camera_speed, camera_height)
    top = STOREY_M * max_storeys + 1.0
    bounds = np.array([[centre[0] - size[0] / 2, -0.5, centre[1] - size[1] / 2],
                       [centre[0] + size[0] / 2, top, centre[1] + size[1] / 2]])
    sun = Sun(direction=(0.45, 0.55, 0.3), irradiance=3.0)
    sky = Sky(zenith=(0.2, 0.35, 0.75), horizon=(0.85, 0.75, 0.65))
    return Scene("city", tuple(nodes), camera, sun=sun, sky=sky, fps=fps, bounds=bounds)


def _buildings(rng: np.random.Generator, grid: Grid, sidewalk_width: float, min_storeys: int,
               max_storeys: int, styles: int) -> tuple[list[list[Mesh]], list[Mesh], list[Mesh]]:
    """(walls per facade style, roofs, sidewalk slabs): each block a slab split into 1-3 by
    1-2 lots, each lot a building of a random height and facade style."""
    facade_meshes: list[list[Mesh]] = [[] for _ in range(styles)]
    roofs, slabs = [], []
    block_size = grid.block_size
    for cx, cz in grid.block_centres():
        slabs.append(transformed(box((block_size, 0.15, block_size)), translation((cx, 0.075, cz))))
        inner = block_size - 2 * sidewalk_width
        lots_x, lots_z = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        cuts_x = np.sort(rng.uniform(0.3, 0.7, lots_x - 1)) if lots_x > 1 else np.array([])
        cuts_z = np.sort(rng.uniform(0.35, 0.65, lots_z - 1)) if lots_z > 1 else np.array([])
        edges_x = cx - inner / 2 + inner * np.concatenate([[0], cuts_x, [1]])
        edges_z = cz - inner / 2 + inner * np.concatenate([[0], cuts_z, [1]])
        for i in range(lots_x):
            for j in range(lots_z):
                gap = rng.uniform(0.0, 0.8)
                x0, x1 = edges_x[i] + gap, edges_x[i + 1] - gap
                z0, z1 = edges_z[j] + gap, edges_z[j + 1] - gap
                height = STOREY_M * int(rng.integers(min_storeys, max_storeys + 1)) + 0.15
                style = int(rng.integers(styles))
                offset = rng.integers(FACADE_CELLS, size=2) / FACADE_CELLS
                facade_meshes[style].append(building_walls(x0, x1, z0, z1, height, offset))
                roofs.append(transformed(box((x1 - x0, 0.4, z1 - z0)),
                                         translation(((x0 + x1) / 2, height + 0.2, (z0 + z1) / 2))))
    return facade_meshes, roofs, slabs


def _markings(grid: Grid) -> list[Mesh]:
    """Dashed centre lines between intersections and zebra crossings at each block's ends."""
    pitch, half_block, street_width = grid.pitch, grid.block_size / 2, grid.street_width
    marks = []
    for axis in (0, 1):
        n_streets, n_blocks = (grid.blocks_x + 1, grid.blocks_z) if axis == 0 else (grid.blocks_z + 1,
                                                                                       grid.blocks_x)
        for i in range(n_streets):
            for j in range(n_blocks):
                c = (j + 0.5) * pitch
                for d in np.arange(-half_block + 5, half_block - 4, 6.0):
                    size = (0.15, 0.02, 3.0) if axis == 0 else (3.0, 0.02, 0.15)
                    p = (i * pitch, 0.01, c + d) if axis == 0 else (c + d, 0.01, i * pitch)
                    marks.append(transformed(box(size), translation(p)))
                for end in (-1, 1):  # zebra crossing at each end of the block
                    for k in np.arange(-street_width / 2 + 1.5, street_width / 2 - 1.4, 1.0):
                        along = c + end * (half_block - 1.5)
                        size = (0.5, 0.02, 2.5) if axis == 0 else (2.5, 0.02, 0.5)
                        p = (i * pitch + k, 0.01, along) if axis == 0 else (along, 0.01, i * pitch + k)
                        marks.append(transformed(box(size), translation(p)))
    return marks


def _street_lights(rng: np.random.Generator, grid: Grid,
                   lights_per_side: int) -> tuple[list[Mesh], list[Mesh], list[Mesh]]:
    """(poles and arms, lamp heads, wires): lights along every block side, wired
    together, and now and then a wire across the street to the facing block."""
    poles, heads, wires = [], [], []
    pole_h, kerb_in = 7.0, 0.6
    half_block = grid.block_size / 2
    for cx, cz in grid.block_centres():
        for side in range(4):
            out = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]][side], float)
            along = np.array([-out[1], out[0]])
            tops = []
            for k in range(lights_per_side):
                f = (k + 0.5) / lights_per_side - 0.5
                base = np.array([cx, cz]) + out * (half_block - kerb_in) + along * f * (grid.block_size - 8)
                b3 = np.array([base[0], 0.15, base[1]])
                top = b3 + [0, pole_h, 0]
                arm = top + np.array([out[0], -0.1, out[1]]) * 1.6
                poles.append(tube(b3, top, 0.09, 8, end_radius=0.06))
                poles.append(tube(top - [0, 0.2, 0], arm, 0.04, 6))
                heads.append(transformed(box((0.5, 0.12, 0.5)), translation(arm - [0, 0.06, 0])))
                tops.append(top)
            for a, b in zip(tops[:-1], tops[1:], strict=True):
                wires += sagging_wire(a - [0, 0.3, 0], b - [0, 0.3, 0], 0.5, 0.015)
            if rng.random() < 0.5 and tops:  # a wire across the street to the facing block
                a = tops[len(tops) // 2] - [0, 0.6, 0]
                b = a + np.array([out[0], 0, out[1]]) * (grid.street_width + 2 * kerb_in)
                if np.all((b[[0, 2]] > 0) & (b[[0, 2]] < grid.extent)):
                    wires += sagging_wire(a, b, 0.7, 0.012, segments=10)
    return poles, heads, wires


def _street_loop(rng: np.random.Generator, grid: Grid, direction: int, lane: float,
                 interior: bool = False) -> LoopPath:
    """A loop around a random rectangle of blocks; ``interior`` keeps off the
    outermost streets (which face open ground) where the grid allows."""
    def pick(n_blocks: int) -> np.ndarray:
        if interior and n_blocks >= 3:
            return np.sort(rng.choice(np.arange(1, n_blocks), 2, replace=False))
        return np.sort(rng.choice(n_blocks + 1, 2, replace=False))
    (i0, i1), (j0, j1) = pick(grid.blocks_x), pick(grid.blocks_z)
    inset = lane * direction  # keep to the right of travel
    pitch = grid.pitch
    corners = rect_corners(i0 * pitch + inset, i1 * pitch - inset, j0 * pitch + inset, j1 * pitch - inset,
                           direction)
    return LoopPath(corners, radius=grid.street_width / 2 - abs(lane))


def _cars(rng: np.random.Generator, grid: Grid, cars: int) -> list[Node]:
    """Box cars driving loops around random rectangles of blocks, on the right."""
    nodes = []
    for k in range(cars):
        direction = int(rng.choice([-1, 1]))
        path = _street_loop(rng, grid, direction, lane=-1.9)
        speed, phase = rng.uniform(6.0, 13.0), rng.uniform(0, path.length)
        colour = (*rng.uniform(0.05, 0.9, 3), 1.0)

        def drive(t: float, path=path, speed=speed, phase=phase) -> np.ndarray:
            s = phase + speed * t
            x, z = path.at(s)
            hx, hz = path.heading(s)
            return translation((x, 0.0, z)) @ rotation_y(np.arctan2(-hz, hx))

        nodes.append(Node(f"car{k}", drive, car_mesh(rng), Material(base_color=colour, metallic=0.6,
                                                                   roughness=0.3)))
    return nodes


def _camera(rng: np.random.Generator, grid: Grid, camera_speed: float, camera_height: float) -> Camera:
    """A flythrough along the centre of interior streets, bobbing, looking 18 m ahead."""
    cam_path = _street_loop(rng, grid, int(rng.choice([-1, 1])), lane=0.0, interior=True)
    cam_phase = rng.uniform(0, cam_path.length)
    bob_phase = rng.uniform(0, 2 * np.pi)

    def view(t: float) -> np.ndarray:
        s = cam_phase + camera_speed * t
        x, z = cam_path.at(s)
        height = camera_height + 0.8 * np.sin(0.3 * t + bob_phase)
        tx, tz = cam_path.at(s + 18.0)
        return cv.look_at((x, height, z), (tx, camera_height - 1.0, tz))

    return Camera(view=view, fov_y_deg=60.0, near=CLIP[0], far=CLIP[1])
