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
