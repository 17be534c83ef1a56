"""``mesh``: one mesh file (OBJ with its MTL and textures, PLY, STL, OFF, glTF, ...)
on an orbit camera framing its bounds (see datagen.assets).

``datagen render model.obj`` uses it; a recipe may name a file too:

    generator = "mesh"
    [params]
    path = "assets/mesh/textured_ball.obj"   # relative to the recipe file
    max_triangles = 500000                  # refuse bigger files (one line, exit 2)
"""

from __future__ import annotations

from datagen.assets import DEFAULT_MAX_TRIANGLES, load_asset
from datagen.scene import Scene
from datagen.scenes import register
from datagen.scenes.params import Param

PARAMS = {
    "path": Param("str"),
    "max_triangles": Param("int", 1, 100_000_000),
    "fps": Param("float", 1.0, 240.0),
}
"""Documented ranges (datagen.scenes.params); the file itself is checked by the loader."""


@register("mesh", PARAMS)
def mesh(seed: int = 0, path: str = "", max_triangles: int = DEFAULT_MAX_TRIANGLES,
         fps: float = 30.0) -> Scene:
    return load_asset(path, seed=seed, fps=fps, max_triangles=max_triangles)
