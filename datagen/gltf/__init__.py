"""glTF 2.0 import: ``load_gltf(path) -> Scene`` for .gltf (external or data: buffers
and images) and .glb files.

Supported: the node hierarchy (matrix or TRS); meshes of several primitives,
indexed or not, interleaved, any component type (normalised integers too),
sparse accessors; triangles, strips and fans; metallic-roughness materials with
their five textures, samplers' wrap modes, one TEXCOORD set per material,
alphaMode MASK/BLEND with alphaCutoff, doubleSided; the first animation's
translation, rotation and scale channels (LINEAR, STEP, CUBICSPLINE), looping;
perspective cameras; KHR_materials_emissive_strength, KHR_mesh_quantization and
EXT_texture_webp. Skins and morph targets are drawn in the bind pose (one
warning); points, lines, orthographic cameras and vertex colours are skipped
with a warning. Every problem with a file raises ``SceneLoadError`` naming it.

A model file is untrusted: its external uris must stay inside its folder, and a
``Budget`` (vertices, triangles, decoded bytes; configurable) is checked on its
declared sizes before anything is decoded (datagen/gltf/document.py).
"""

from datagen.gltf.document import Budget
from datagen.gltf.loader import load_gltf, orbit_camera

__all__ = ["Budget", "load_gltf", "orbit_camera"]
