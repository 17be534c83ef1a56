"""``gltf``: a glTF 2.0 file as a scene (see datagen.gltf).

``datagen render model.glb`` uses it with an orbit camera framing the model's
bounds and the file's first animation playing; a recipe may name a file too:

    generator = "gltf"
    [params]
    path = "assets/Duck.glb"   # relative to the recipe file
    camera = "auto"            # "orbit", "file" or "auto" (the file's camera if any)
    max_vertices = 4194304     # the loader's budget for this file (datagen.gltf.Budget);
    max_triangles = 4194304    # raise them for large scans
    max_bytes = 1073741824
"""

from __future__ import annotations

from datagen.gltf import Budget, load_gltf
from datagen.scene import Scene
from datagen.scenes import register
from datagen.scenes.params import Param

PARAMS = {
    "path": Param("str"),
    "camera": Param("str", choices=("orbit", "file", "auto")),
    "fps": Param("float", 1.0, 240.0),
    "max_vertices": Param("int", 1, 1 << 34),
    "max_triangles": Param("int", 1, 1 << 34),
    "max_bytes": Param("int", 1, 1 << 40),
}
"""Documented ranges (datagen.scenes.params); the file itself is checked by the loader."""


@register("gltf", PARAMS)
def gltf(seed: int = 0, path: str = "", camera: str = "orbit", fps: float = 30.0,
         max_vertices: int = Budget.max_vertices, max_triangles: int = Budget.max_triangles,
         max_bytes: int = Budget.max_bytes) -> Scene:
    budget = Budget(max_vertices=max_vertices, max_triangles=max_triangles, max_bytes=max_bytes)
    return load_gltf(path, seed=seed, camera=camera, fps=fps, budget=budget)
