"""Metallic-roughness materials, their textures, samplers and images.

Images are decoded with Pillow (PNG, JPEG, WebP) to (h, w, 4) uint8 with row 0
the top of the image, as files store it; glTF UVs, (0, 0) at the top-left, then
sample them unchanged. A material's textures share one UV set: the TEXCOORD_n
they name if they agree, else TEXCOORD_0 with a warning.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image

from datagen.errors import SceneLoadError
from datagen.gltf.document import Document, Fields
from datagen.scene import Material, Texture

WRAPS = {10497: "repeat", 33071: "clamp", 33648: "mirror"}
MAG_FILTERS = (9728, 9729)
MIN_FILTERS = (9728, 9729, 9984, 9985, 9986, 9987)
ALPHA_MODES = ("OPAQUE", "MASK", "BLEND")
IMAGE_FORMATS = ["PNG", "JPEG", "WEBP"]
MAX_IMAGE_SIDE = 16384
MAX_IMAGE_PIXELS = 8192 * 8192
MAX_IMAGE_BYTES = 256 << 20
"""bytes read of an image file; a longer one is cut short and fails to decode."""
MATERIAL_TEXTURES = (  # (object: "pbr" or "material", glTF key, Material field, sRGB)
    ("pbr", "baseColorTexture", "base_color_texture", True),
    ("pbr", "metallicRoughnessTexture", "metallic_roughness_texture", False),
    ("material", "normalTexture", "normal_texture", False),
    ("material", "occlusionTexture", "occlusion_texture", False),
    ("material", "emissiveTexture", "emissive_texture", True),
)
DEFAULT_MATERIAL = Material()
"""For primitives without a material (the glTF spec leaves it to the implementation)."""


class Materials:
    """Reads materials, textures and images of one document, each once."""

    def __init__(self, doc: Document):
        self.doc = doc
        self._materials: dict[int, tuple[Material, int]] = {}
        self._textures: dict[tuple[int, bool], Texture | None] = {}
        self._images: dict[int, np.ndarray] = {}

    def material(self, index: int | None, where: str) -> tuple[Material, int]:
        """(Material, the TEXCOORD set its textures sample) of material ``index``."""
        if index is None:
            return DEFAULT_MATERIAL, 0
        if index not in self._materials:
            self._materials[index] = self._read_material(index, where)
        return self._materials[index]

    def _read_material(self, index: int, where: str) -> tuple[Material, int]:
        f = self.doc.item("materials", index, where)
        pbr = f.sub("pbrMetallicRoughness")
        textures, sets = {}, set()
        for owner, key, name, srgb in MATERIAL_TEXTURES:
            fields = pbr if owner == "pbr" else f
            if key in fields:
                info = fields.sub(key)
                texture = self.texture(info.ref("index", "textures", required=True), srgb, info.where)
                if texture is not None:
                    textures[name] = texture
                    sets.add(info.int("texCoord", 0, lo=0))
        uv_set = sets.pop() if len(sets) == 1 else 0
        if sets:
            self.doc.warn(f"texcoord{index}", f"{f.where}'s textures use several TEXCOORD sets; "
                                              "all sample TEXCOORD_0")
        strength = f.sub("extensions").sub("KHR_materials_emissive_strength").num("emissiveStrength", 1.0,
                                                                                   lo=0)
        emissive = f.nums("emissiveFactor", 3, (0.0, 0.0, 0.0), lo=0, hi=1)
        material = Material(
            base_color=pbr.nums("baseColorFactor", 4, (1.0, 1.0, 1.0, 1.0), lo=0, hi=1),
            metallic=pbr.num("metallicFactor", 1.0, lo=0, hi=1),
            roughness=pbr.num("roughnessFactor", 1.0, lo=0, hi=1),
            emissive=tuple(e * strength for e in emissive),
            alpha_mode=f.enum("alphaMode", ALPHA_MODES, "OPAQUE"),
            alpha_cutoff=f.num("alphaCutoff", 0.5, lo=0),
            double_sided=f.bool("doubleSided", False),
            **textures,
        )
        return material, uv_set

    def texture(self, index: int, srgb: bool, where: str) -> Texture | None:
        """Texture ``index`` with its sampler's wrap mode; None (and a warning) if it has no image."""
        key = (index, srgb)
        if key not in self._textures:
            self._textures[key] = self._read_texture(index, srgb, where)
        return self._textures[key]

    def _read_texture(self, index: int, srgb: bool, where: str) -> Texture | None:
        t = self.doc.item("textures", index, where)
        source = t.ref("source", "images")
        webp = t.sub("extensions").sub("EXT_texture_webp")
        if "source" in webp:
            source = webp.ref("source", "images")
        if source is None:
            self.doc.warn(f"texture{index}", f"{t.where} has no image this loader can read; ignored")
            return None
        wrap = "repeat"
        sampler = t.ref("sampler", "samplers")
        if sampler is not None:
            wrap = self._wrap(self.doc.item("samplers", sampler, t.where))
        return Texture(self.image(source, t.where), srgb=srgb, wrap=wrap)

    def _wrap(self, s: Fields) -> str:
        s.enum("magFilter", MAG_FILTERS)
        s.enum("minFilter", MIN_FILTERS)
        wrap_s, wrap_t = (WRAPS[s.enum(key, WRAPS, 10497)] for key in ("wrapS", "wrapT"))
        if wrap_s == wrap_t:
            return wrap_s
        self.doc.warn(f"wrap{s.where}", f"{s.where} wraps S ({wrap_s}) and T ({wrap_t}) differently; "
                                        "both use " + ("repeat" if "repeat" in (wrap_s, wrap_t) else wrap_s))
        return "repeat" if "repeat" in (wrap_s, wrap_t) else wrap_s

    def image(self, index: int, where: str) -> np.ndarray:
        """(h, w, 4) uint8 pixels of image ``index``, row 0 the top."""
        if index not in self._images:
            self._images[index] = self._read_image(index, where)
        return self._images[index]

    def _read_image(self, index: int, where: str) -> np.ndarray:
        f = self.doc.item("images", index, where)
        uri, view = f.str("uri"), f.ref("bufferView", "bufferViews")
        if (uri is None) == (view is None):
            self.doc.fail(f"{f.where} must have exactly one of 'uri' and 'bufferView'")
        label = f.where if uri is None or uri.startswith("data:") else f"{f.where} ({uri!r})"
        if uri is not None:
            data = self.doc.resolve_uri(uri, f.where, limit=MAX_IMAGE_BYTES)
        else:
            data = bytes(self.doc.buffer_view(view, f.where)[0])
        try:
            return decode_image(data, lambda nbytes: self.doc.charge(nbytes, label))
        except SceneLoadError as exc:
            if str(exc).startswith(self.doc.name):  # the budget's own message
                raise
            self.doc.fail(f"{label}: {exc}")
        except Exception as exc:  # Pillow raises many types on corrupt data
            self.doc.fail(f"{label} could not be decoded as PNG, JPEG or WebP ({type(exc).__name__}: {exc})")


def decode_image(data: bytes, charge: Callable[[int], None] = lambda nbytes: None) -> np.ndarray:
    """Encoded image bytes -> (h, w, 4) uint8 RGBA, row 0 the top. Refuses absurd sizes;
    ``charge`` is called with the decoded size (w * h * 4) before the pixels are decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sizes are checked below
        try:
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        except Image.DecompressionBombError as exc:
            raise SceneLoadError(f"image is too large ({exc})") from exc
        w, h = image.size
        if not (0 < w <= MAX_IMAGE_SIDE and 0 < h <= MAX_IMAGE_SIDE and w * h <= MAX_IMAGE_PIXELS):
            raise SceneLoadError(f"image of {w}x{h} pixels is too large (at most {MAX_IMAGE_SIDE} a side "
                                 f"and {MAX_IMAGE_PIXELS} pixels)")
        charge(w * h * 4)
        image.load()
    if image.mode.startswith("I"):  # 16-bit greyscale PNG: keep the high byte
        grey = np.clip(np.asarray(image).astype(np.int64) >> 8, 0, 255).astype(np.uint8)
        return np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    return np.ascontiguousarray(np.asarray(image.convert("RGBA"), dtype=np.uint8))
