"""A small glTF 2.0 writer for tests: numpy arrays in, .glb or .gltf (external or
data: URIs) out. Written by hand (json + numpy) so that tests can also break
files in any way they like: ``pack_glb`` repacks mutated JSON and binary."""

from __future__ import annotations

import base64
import copy
import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

COMPONENT = {np.dtype("int8"): 5120, np.dtype("uint8"): 5121, np.dtype("int16"): 5122,
             np.dtype("uint16"): 5123, np.dtype("uint32"): 5125, np.dtype("float32"): 5126}
TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


def pack_glb(gltf: dict, bin_chunk: bytes | None, *, json_bytes: bytes | None = None) -> bytes:
    """A GLB from its JSON (or raw JSON bytes) and BIN chunk, padded as the spec asks."""
    text = json_bytes if json_bytes is not None else json.dumps(gltf).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), 0x4E4F534A) + text
    if bin_chunk is not None:
        data = bytes(bin_chunk) + b"\0" * (-len(bin_chunk) % 4)
        chunks += struct.pack("<II", len(data), 0x004E4942) + data
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(out, "PNG")
    return out.getvalue()


class GltfBuilder:
    """Accumulates glTF JSON and one binary buffer; every add_* returns the new index."""

    def __init__(self):
        self.json: dict = {"asset": {"version": "2.0", "generator": "datagen tests"}}
        self.bin = bytearray()
        self.image_files: dict[str, bytes] = {}
        """images to be written beside a .gltf (uri -> bytes)."""

    def _add(self, key: str, item: dict) -> int:
        self.json.setdefault(key, []).append(item)
        return len(self.json[key]) - 1

    # -- data ------------------------------------------------------------------

    def add_view(self, data: bytes, stride: int | None = None) -> int:
        self.bin += b"\0" * (-len(self.bin) % 4)
        view = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if stride is not None:
            view["byteStride"] = stride
        self.bin += data
        return self._add("bufferViews", view)

    def add_accessor(self, values, *, normalized: bool = False, view: int | None = None, offset: int = 0,
                     kind: str | None = None, count: int | None = None, dtype=None) -> int:
        values = np.asarray(values) if dtype is None else np.asarray(values, dtype)
        if values.dtype == np.float64:
            values = values.astype(np.float32)
        if values.ndim == 1:
            values = values[:, None]
        if view is None:
            view = self.add_view(np.ascontiguousarray(values).tobytes())
        accessor = {"bufferView": view, "byteOffset": offset, "componentType": COMPONENT[values.dtype],
                    "count": count if count is not None else len(values),
                    "type": kind or TYPES[values.shape[1]]}
        if normalized:
            accessor["normalized"] = True
        return self._add("accessors", accessor)

    def add_interleaved(self, *arrays: np.ndarray) -> list[int]:
        """One buffer view with byteStride holding float32 arrays side by side; their accessors."""
        arrays = [np.asarray(a, np.float32) for a in arrays]
        rows = np.hstack(arrays)
        view = self.add_view(rows.tobytes(), stride=rows.shape[1] * 4)
        offsets = np.cumsum([0] + [a.shape[1] * 4 for a in arrays])
        return [self.add_accessor(a, view=view, offset=int(o)) for a, o in zip(arrays, offsets, strict=False)]

    # -- meshes and materials ---------------------------------------------------

    def primitive(self, positions, normals=None, uvs=None, indices=None, material: int | None = None,
                  mode: int | None = None, **attributes) -> dict:
        prim: dict = {"attributes": {"POSITION": self.add_accessor(np.asarray(positions, np.float32))}}
        if normals is not None:
            prim["attributes"]["NORMAL"] = self.add_accessor(np.asarray(normals, np.float32))
        if uvs is not None:
            prim["attributes"]["TEXCOORD_0"] = self.add_accessor(np.asarray(uvs, np.float32))
        for name, values in attributes.items():
            prim["attributes"][name] = self.add_accessor(np.asarray(values, np.float32))
        if indices is not None:
            prim["indices"] = self.add_accessor(np.asarray(indices, np.uint16).ravel())
        if material is not None:
            prim["material"] = material
        if mode is not None:
            prim["mode"] = mode
        return prim

    def add_mesh(self, *primitives: dict, name: str | None = None) -> int:
        mesh: dict = {"primitives": list(primitives)}
        if name:
            mesh["name"] = name
        return self._add("meshes", mesh)

    def add_material(self, **fields) -> int:
        return self._add("materials", fields)

    def add_image(self, pixels: np.ndarray, how: str = "view", name: str = "tex.png") -> int:
        """A PNG image stored in the buffer ("view"), beside the file ("file") or as a data: URI."""
        data = png_bytes(pixels)
        if how == "view":
            return self._add("images", {"bufferView": self.add_view(data), "mimeType": "image/png"})
        if how == "file":
            self.image_files[name] = data
            return self._add("images", {"uri": name})
        return self._add("images", {"uri": "data:image/png;base64," + base64.b64encode(data).decode()})

    def add_texture(self, image: int, sampler: dict | None = None) -> int:
        texture = {"source": image}
        if sampler is not None:
            texture["sampler"] = self._add("samplers", sampler)
        return self._add("textures", texture)

    # -- nodes, cameras, animation ------------------------------------------------

    def add_node(self, **fields) -> int:
        return self._add("nodes", fields)

    def add_camera(self, yfov: float = np.radians(50.0), znear: float = 0.1,
                   zfar: float | None = 100.0) -> int:
        perspective = {"yfov": float(yfov), "znear": znear}
        if zfar is not None:
            perspective["zfar"] = zfar
        return self._add("cameras", {"type": "perspective", "perspective": perspective})

    def add_animation(self, *channels: tuple[int, str, np.ndarray, np.ndarray, str]) -> int:
        """Channels (node, path, times (k,), values (k or 3k, n), interpolation)."""
        anim: dict = {"channels": [], "samplers": []}
        for node, path, times, values, interpolation in channels:
            sampler = {"input": self.add_accessor(np.asarray(times, np.float32)),
                       "output": self.add_accessor(np.asarray(values, np.float32)),
                       "interpolation": interpolation}
            anim["samplers"].append(sampler)
            anim["channels"].append({"sampler": len(anim["samplers"]) - 1,
                                     "target": {"node": node, "path": path}})
        return self._add("animations", anim)

    def set_scene(self, *roots: int) -> None:
        self.json["scenes"] = [{"nodes": list(roots)}]
        self.json["scene"] = 0

    # -- output ---------------------------------------------------------------------

    def gltf_json(self, buffer_uri: str | None) -> dict:
        gltf = copy.deepcopy(self.json)
        buffer: dict = {"byteLength": len(self.bin)}
        if buffer_uri is not None:
            buffer["uri"] = buffer_uri
        gltf["buffers"] = [buffer]
        return gltf

    def glb(self) -> bytes:
        return pack_glb(self.gltf_json(None), bytes(self.bin))

    def write_glb(self, path: Path) -> Path:
        path.write_bytes(self.glb())
        return path

    def write_gltf(self, path: Path, embed: bool = False) -> Path:
        """A .gltf with its buffer in ``<stem>.bin`` (or a data: URI) and file images beside it."""
        if embed:
            uri = "data:application/octet-stream;base64," + base64.b64encode(bytes(self.bin)).decode()
        else:
            uri = f"{path.stem}.bin"
            (path.parent / uri).write_bytes(bytes(self.bin))
        for name, data in self.image_files.items():
            (path.parent / name).write_bytes(data)
        path.write_text(json.dumps(self.gltf_json(uri), indent=1))
        return path
