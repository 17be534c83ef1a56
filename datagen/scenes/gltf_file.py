"""``gltf``: a glTF 2.0 file as a scene (see datagen.gltf).

``datagen render model.glb`` uses it with an orbit camera framing the model's
bounds and the file's first animation playing; a recipe may name a file too:

    generator = "gltf"
    [params]
    path = "assets/Duck.glb"   # relative to the recipe file
    camera = "auto"            # "orbit", "file" or "auto" (the file's camera if any)
"""

from __future__ import annotations

from datagen.gltf import load_gltf
from datagen.scene import Scene
from datagen.scenes import register
from datagen.scenes.params import Param

PARAMS = {
    "path": Param("str"),
    "camera": Param("str", choices=("orbit", "file", "auto")),
    "fps": Param("float", 1.0, 240.0),
}
"""Documented ranges (datagen.scenes.params); the file itself is checked by the loader."""


@register("gltf", PARAMS)
def gltf(seed: int = 0, path: str = "", camera: str = "orbit", fps: float = 30.0) -> Scene:
    return load_gltf(path, seed=seed, camera=camera, fps=fps)
