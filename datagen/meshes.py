"""Analytic meshes and procedural textures for scene generators."""

from __future__ import annotations

import numpy as np

from datagen.scene import Mesh, Texture


def _mesh(pos, nrm, uv, idx) -> Mesh:
    return Mesh(np.asarray(pos, "f4"), np.asarray(nrm, "f4"), np.asarray(uv, "f4"),
                np.asarray(idx, "u4").reshape(-1, 3))


def plane(size_x: float, size_z: float, uv_repeat: tuple[float, float] = (1.0, 1.0)) -> Mesh:
    """A y-up quad centred at the origin, size_x by size_z metres."""
    hx, hz = size_x / 2, size_z / 2
    pos = [(-hx, 0, -hz), (hx, 0, -hz), (hx, 0, hz), (-hx, 0, hz)]
    ux, uz = uv_repeat
    uv = [(0, 0), (ux, 0), (ux, uz), (0, uz)]
    return _mesh(pos, [(0, 1, 0)] * 4, uv, [0, 2, 1, 0, 3, 2])


def box(size=(1.0, 1.0, 1.0)) -> Mesh:
    """An axis-aligned box centred at the origin, flat-shaded, one UV square per face."""
    half = np.asarray(size, dtype=np.float64) / 2
    pos, nrm, uv, idx = [], [], [], []
    for axis in range(3):
        for sign in (1.0, -1.0):
            n = np.zeros(3)
            n[axis] = sign
            u_axis = (axis + 1) % 3
            # right-handed tangent frame so that the winding faces outwards
            u = np.zeros(3)
            u[u_axis] = 1.0
            v = np.cross(n, u)
            base = len(pos)
            for cu, cv_ in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                pos.append((n + cu * u + cv_ * v) * half)
                nrm.append(n)
                uv.append(((cu + 1) / 2, (1 - cv_) / 2))
            idx += [base, base + 1, base + 2, base, base + 2, base + 3]
    return _mesh(pos, nrm, uv, idx)


def sphere(radius: float = 0.5, rings: int = 24, segments: int = 48) -> Mesh:
    """A UV sphere centred at the origin."""
    theta = np.linspace(0, np.pi, rings + 1)
    phi = np.linspace(0, 2 * np.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    n = np.stack([np.sin(t) * np.cos(p), np.cos(t), -np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    uv = np.stack([p / (2 * np.pi), t / np.pi], -1).reshape(-1, 2)
    idx = []
    for r in range(rings):
        for s in range(segments):
            a, b = r * (segments + 1) + s, (r + 1) * (segments + 1) + s
            idx += [a, b, a + 1, a + 1, b, b + 1]
    return _mesh(n * radius, n, uv, idx)


def checker_texture(size: int = 256, squares: int = 8, a=(230, 230, 230), b=(40, 40, 40)) -> Texture:
    """A sRGB checkerboard of squares x squares cells."""
    cell = np.arange(size) * squares // size
    mask = (cell[:, None] + cell[None, :]) % 2 == 0
    px = np.where(mask[..., None], np.array([*a, 255], "u1"), np.array([*b, 255], "u1"))
    return Texture(px.astype("u1"), srgb=True)


def transformed(mesh: Mesh, matrix) -> Mesh:
    """``mesh`` with an affine (4, 4) ``matrix`` applied; normals by the inverse
    transpose, winding flipped where the matrix mirrors."""
    m = np.asarray(matrix, dtype=np.float64)
    pos = mesh.positions @ m[:3, :3].T + m[:3, 3]
    nrm = mesh.normals @ np.linalg.inv(m[:3, :3])
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    idx = mesh.indices[:, ::-1] if np.linalg.det(m[:3, :3]) < 0 else mesh.indices
    return _mesh(pos, nrm, mesh.uvs, idx)


def merge(meshes) -> Mesh:
    """One mesh holding all of ``meshes`` (same local space): for static geometry
    that shares a material, drawn in one call."""
    meshes = list(meshes)
    if not meshes:
        return _mesh(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 2)), np.zeros((0, 3)))
    offsets = np.cumsum([0] + [len(m.positions) for m in meshes[:-1]])
    idx = [m.indices.astype(np.int64) + o for m, o in zip(meshes, offsets, strict=True)]
    return _mesh(np.concatenate([m.positions for m in meshes]), np.concatenate([m.normals for m in meshes]),
                 np.concatenate([m.uvs for m in meshes]), np.concatenate(idx))


def cylinder(radius: float = 0.5, height: float = 1.0, segments: int = 16, caps: bool = True,
             top_radius: float | None = None) -> Mesh:
    """A y-up cylinder (a cone frustum if ``top_radius`` differs) from y = 0 to
    y = height; smooth sides, u around, v down the side; flat caps if ``caps``."""
    r1 = radius if top_radius is None else top_radius
    a = np.linspace(0, 2 * np.pi, segments + 1)
    ring = np.stack([np.cos(a), np.zeros_like(a), -np.sin(a)], -1)
    slope = (radius - r1) / max(height, 1e-9)
    side_n = ring + np.array([0.0, slope, 0.0])
    side_n /= np.linalg.norm(side_n, axis=1, keepdims=True)
    pos = np.concatenate([ring * r1 + [0, height, 0], ring * radius])
    nrm = np.concatenate([side_n, side_n])
    u = a / (2 * np.pi)
    uv = np.concatenate([np.stack([u, np.zeros_like(u)], -1), np.stack([u, np.ones_like(u)], -1)])
    k = np.arange(segments)
    top, bot = k, k + segments + 1
    idx = [np.stack([top, bot, bot + 1], -1), np.stack([top, bot + 1, top + 1], -1)]
    parts = [_mesh(pos, nrm, uv, np.concatenate(idx))]
    if caps:
        for y, r, sign in ((height, r1, 1.0), (0.0, radius, -1.0)):
            centre = len(ring)
            cp = np.concatenate([ring * r + [0, y, 0], [[0, y, 0]]])
            cuv = np.concatenate([0.5 + 0.5 * ring[:, [0, 2]], [[0.5, 0.5]]])
            tri = np.stack([np.full(segments, centre), k, k + 1], -1)
            parts.append(_mesh(cp, np.tile([0, sign, 0], (len(cp), 1)), cuv,
                               tri if sign > 0 else tri[:, ::-1]))
    return merge(parts)


def tube(a, b, radius: float, segments: int = 6, end_radius: float | None = None) -> Mesh:
    """An open cylinder from point ``a`` to point ``b`` (thin poles, wires, branches)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    axis = b - a
    length = float(np.linalg.norm(axis))
    y = axis / max(length, 1e-12)
    helper = np.array([1.0, 0, 0]) if abs(y[0]) < 0.9 else np.array([0, 0, 1.0])
    x = np.cross(y, helper)
    x /= np.linalg.norm(x)
    z = np.cross(x, y)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, a
    return transformed(cylinder(radius, length, segments, caps=False, top_radius=end_radius), m)


# -- helpers for procedural scenes (racing) ------------------------------------------


def with_uvs(mesh: Mesh, uv) -> Mesh:
    """``mesh`` with every vertex's UV set to ``uv`` (one texel of an atlas)."""
    return _mesh(mesh.positions, mesh.normals, np.broadcast_to(np.asarray(uv, "f4"), mesh.uvs.shape),
                 mesh.indices)


def ribbon(centre, side, offsets: tuple[float, float], v=None, u: tuple[float, float] = (0.0, 1.0),
           normal=(0.0, 1.0, 0.0)) -> Mesh:
    """A strip along the polyline ``centre`` (n, 3): vertex pairs at ``centre + side * o`` for o in
    ``offsets`` (the ``side`` (n, 3) unit vectors may vary along the line). ``v`` (n,) runs along
    the strip (default: arc length), ``u`` across it. ``normal`` (a constant or (n, 3)) is the
    shading normal, and the winding is chosen so that faces are front-facing from its side
    (up for a road, a horizontal normal for a wall)."""
    c = np.asarray(centre, dtype=np.float64)
    s = np.asarray(side, dtype=np.float64)
    n = len(c)
    if v is None:
        v = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(c, axis=0), axis=1))])
    nrm = np.broadcast_to(np.asarray(normal, dtype=np.float64), (n, 3))
    pos = np.concatenate([c + s * offsets[0], c + s * offsets[1]])
    uv = np.concatenate([np.stack([np.full(n, u[0]), v], -1), np.stack([np.full(n, u[1]), v], -1)])
    i = np.arange(n - 1)
    quads = np.stack([i, i + 1, n + i + 1, i, n + i + 1, n + i], -1)
    # choose the winding whose geometric normal agrees with `normal`
    p0, p1, p2 = pos[quads[0, 0]], pos[quads[0, 1]], pos[quads[0, 2]]
    if np.dot(np.cross(p1 - p0, p2 - p0), nrm[0]) < 0:
        quads = quads[:, [0, 2, 1, 3, 5, 4]]
    return _mesh(pos, np.concatenate([nrm, nrm]), uv, quads)


def tileable_noise(rng: np.random.Generator, size: int, cells: int, octaves: int = 4) -> np.ndarray:
    """(size, size) float value noise in [0, 1] that tiles seamlessly; ``cells`` lattice cells
    per side at the coarsest octave, doubling per octave (amplitude halving)."""
    total, amp, norm = np.zeros((size, size)), 1.0, 0.0
    for o in range(octaves):
        k = cells * 2 ** o
        grid = rng.random((k, k))
        x = np.arange(size) * k / size
        i0 = np.floor(x).astype(int)
        f = x - i0
        f = f * f * (3 - 2 * f)
        i0 %= k
        i1 = (i0 + 1) % k
        rows = grid[i0] * (1 - f)[:, None] + grid[i1] * f[:, None]
        layer = rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]
        total += amp * layer
        norm += amp
        amp *= 0.5
    return total / norm


def rgba(rgb: np.ndarray, alpha=255) -> np.ndarray:
    """(h, w, 4) uint8 pixels of an (h, w, 3) float image (clipped to 0-255) and an alpha:
    a number or an (h, w) array."""
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = np.clip(rgb, 0, 255)
    out[..., 3] = alpha
    return out


def noise_texture(rng: np.random.Generator, size: int, base, amplitude: float, tiles: int = 0,
                  grout=(0, 0, 0)) -> Texture:
    """Blurred value noise around ``base``; with ``tiles`` > 0 a grid of grout lines."""
    rgb = np.broadcast_to(np.asarray(base, float), (size, size, 3)).copy()
    for octave, weight in ((8, 1.0), (32, 0.6), (size, 0.5)):
        coarse = rng.normal(0, 1, (octave, octave, 1))
        rgb += amplitude * weight * np.kron(coarse, np.ones((size // octave, size // octave, 1)))
    if tiles:
        y, x = np.mgrid[0:size, 0:size] % (size // tiles)
        rgb = np.where(((x < 2) | (y < 2))[..., None], np.asarray(grout, float), rgb)
    return Texture(rgba(rgb))
