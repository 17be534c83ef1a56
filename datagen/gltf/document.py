"""The glTF container: a .gltf or .glb file, its JSON and its binary buffers.

Everything here checks what it reads and raises ``SceneLoadError`` naming the
file and the problem. ``Document`` resolves indices into the top-level arrays
and reads buffers and buffer views on first use; ``Fields`` reads the typed
fields of one JSON object.

Trust: a model file is untrusted input. An external ``uri`` (buffer or image) must
name a file inside the model's folder (or below it) after ``%``-decoding and after
resolving symlinks; ``..`` out of it, absolute paths, other schemes and symlinks
leading out are refused before anything is read. A ``data:`` URI may not be longer
than the bytes it declares need. ``Budget`` caps what one file may make the loader
allocate, checked on the declared sizes before any data is decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import struct
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from datagen.errors import ConfigError, SceneLoadError

log = logging.getLogger("datagen.gltf")

GLB_MAGIC = b"glTF"
GLB_VERSION = 2
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
SUPPORTED_EXTENSIONS = frozenset({
    "KHR_materials_emissive_strength",  # multiplies emissiveFactor
    "KHR_mesh_quantization",  # integer attributes: read like any other component type
    "EXT_texture_webp",  # Pillow decodes WebP
})
MAX_FILE_BYTES = 4 << 30
"""Largest file (model, buffer or image) read; a GLB cannot be larger either."""
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class Budget:
    """The most one glTF file may make the loader allocate. Checked on the sizes the file
    declares (accessor counts, buffer byteLengths, image headers) before the data is
    decoded, so a small hostile file cannot exhaust memory. Every real asset in
    ``scenes/assets`` uses well under 1% of it; raise it for large scans."""

    max_vertices: int = 1 << 22
    """POSITION elements over every mesh primitive of the file (4.2M)."""
    max_triangles: int = 1 << 22
    """triangles over every mesh primitive, as their index (or vertex) counts declare."""
    max_bytes: int = 1 << 30
    """decoded bytes: buffers (their byteLength), accessor elements and image pixels (RGBA),
    summed (1 GiB)."""

    def check(self) -> None:
        for name in ("max_vertices", "max_triangles", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"glTF budget {name} must be an integer >= 1, got {value!r}")


DEFAULT_BUDGET = Budget()


class Document:
    """A parsed glTF file. ``name`` (the path as given) starts every error message."""

    def __init__(self, path: Path, gltf: dict, bin_chunk: bytes | None, is_glb: bool,
                 budget: Budget = DEFAULT_BUDGET):
        self.path = path
        self.name = str(path)
        self.folder = path.parent.resolve()
        """external uris must resolve to files under this folder."""
        self.json = gltf
        self.bin_chunk = bin_chunk
        self.is_glb = is_glb
        self.budget = budget
        self.decoded = 0
        """bytes charged against ``budget.max_bytes`` so far (``charge``)."""
        self._buffers: dict[int, bytes] = {}
        self._warnings: dict[str, str] = {}

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, budget: Budget = DEFAULT_BUDGET) -> Document:
        data = read_file(str(path), path, "the model")
        if data[:4] == GLB_MAGIC or path.suffix.lower() == ".glb":
            json_bytes, bin_chunk = parse_glb(str(path), data)
            is_glb = True
        else:
            json_bytes, bin_chunk, is_glb = data, None, False
        doc = cls(path, parse_json(str(path), json_bytes), bin_chunk, is_glb, budget)
        doc.check_asset()
        return doc

    def charge(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` about to be decoded for ``what``; fail past ``budget.max_bytes``."""
        self.decoded += nbytes
        if self.decoded > self.budget.max_bytes:
            self.fail(f"{what} would bring the decoded data to {self.decoded} bytes, more than the "
                      f"budget of {self.budget.max_bytes} bytes per file (max_bytes)")

    def check_asset(self) -> None:
        asset = self.fields(self.json, "the glTF").obj("asset", required=True)
        f = self.fields(asset, "asset")
        version = f.str("version", required=True)
        if not re.fullmatch(r"\d+\.\d+", version) or version.split(".")[0] != "2":
            self.fail(f"asset.version is {version!r}; only glTF 2.x is supported")
        min_version = f.str("minVersion", default="2.0")
        if min_version != "2.0":
            self.fail(f"asset.minVersion is {min_version!r}; this loader reads glTF 2.0")
        required = self.fields(self.json, "the glTF").list("extensionsRequired")
        unknown = [e for e in required if not isinstance(e, str) or e not in SUPPORTED_EXTENSIONS]
        if unknown:
            self.fail(f"requires unsupported extension(s) {', '.join(map(str, unknown))}; supported: "
                      f"{', '.join(sorted(SUPPORTED_EXTENSIONS))}")

    # -- errors and warnings -------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        raise SceneLoadError(f"{self.name}: {message}")

    def warn(self, key: str, message: str) -> None:
        """Remember a warning; ``flush_warnings`` logs each key once."""
        self._warnings.setdefault(key, message)

    def flush_warnings(self) -> None:
        for message in self._warnings.values():
            log.warning("%s: %s", self.name, message)
        self._warnings.clear()

    # -- JSON access ---------------------------------------------------------

    def fields(self, obj: Any, where: str) -> Fields:
        if not isinstance(obj, dict):
            self.fail(f"{where} must be a JSON object, got {type(obj).__name__}")
        return Fields(self, obj, where)

    def array(self, key: str) -> list:
        """A top-level array (``nodes``, ``accessors``, ...), empty if absent."""
        return self.fields(self.json, "the glTF").list(key)

    def item(self, key: str, index: int, where: str = "") -> Fields:
        """Fields of ``json[key][index]``; ``where`` says who refers to it."""
        items = self.array(key)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(items):
            referrer = f"{where} refers to " if where else ""
            self.fail(f"{referrer}{singular(key)} {index!r}, but the file has {len(items)} {key}")
        return self.fields(items[index], f"{singular(key)} {index}")

    # -- binary data ---------------------------------------------------------

    def buffer(self, index: int, where: str) -> bytes:
        """The bytes of buffer ``index`` (exactly its byteLength)."""
        if index in self._buffers:
            return self._buffers[index]
        f = self.item("buffers", index, where)
        length = f.int("byteLength", required=True, lo=1)
        uri = f.str("uri", default=None)
        if uri is None:
            if not self.is_glb or index != 0:
                self.fail(f"{f.where} has no uri (only buffer 0 of a .glb may use the BIN chunk)")
            if self.bin_chunk is None:
                self.fail(f"{f.where} refers to the BIN chunk, but the GLB has none")
            data = self.bin_chunk
        else:
            data = self.resolve_uri(uri, f.where, limit=length)
        if len(data) < length:
            self.fail(f"{f.where} has byteLength {length}, but its data has only {len(data)} bytes")
        self._buffers[index] = data[:length]
        return self._buffers[index]

    def buffer_view(self, index: int, where: str) -> tuple[memoryview, int | None]:
        """(bytes, byteStride or None) of buffer view ``index``."""
        f = self.item("bufferViews", index, where)
        buffer_index = f.ref("buffer", "buffers", required=True)
        offset = f.int("byteOffset", default=0, lo=0)
        length = f.int("byteLength", required=True, lo=1)
        stride = f.int("byteStride", default=None, lo=4, hi=252)
        if stride is not None and stride % 4:
            self.fail(f"{f.where} has byteStride {stride}; it must be a multiple of 4")
        data = self.buffer(buffer_index, f.where)
        if offset + length > len(data):
            self.fail(f"{f.where} covers bytes {offset}..{offset + length} of buffer {buffer_index}, "
                      f"which has {len(data)} bytes")
        return memoryview(data)[offset:offset + length], stride

    def resolve_uri(self, uri: str, where: str, limit: int = MAX_FILE_BYTES) -> bytes:
        """The bytes a buffer or image uri names (a data: URI, or a file in the model's
        folder: see the module docstring), at most ``limit`` of them."""
        if uri.startswith("data:"):
            header, sep, payload = uri.partition(",")
            if not sep or not header.endswith(";base64"):
                self.fail(f"{where} has a data: URI that is not base64 ({header[:40]!r})")
            need = 4 * math.ceil(limit / 3)  # base64 characters of ``limit`` bytes
            if len(payload) > need:
                self.fail(f"{where} has a data: URI of {len(payload)} base64 characters, more than the "
                          f"{need} that {limit} bytes need; refused before decoding")
            try:
                return base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError) as exc:
                self.fail(f"{where} has a data: URI that is not valid base64 ({exc})")
        return read_file(self.name, self.local_path(uri, where), f"{where} ({uri[:80]!r})", limit)

    def local_path(self, uri: str, where: str) -> Path:
        """The file a relative ``uri`` names, refused unless it lies inside the model's folder
        after %-decoding and resolving ``..`` and symlinks."""
        relative = urllib.parse.unquote(uri)
        shown = repr(uri[:80])
        if _SCHEME.match(uri) or _SCHEME.match(relative) or Path(relative).is_absolute() or "\0" in relative:
            self.fail(f"{where} has uri {shown}; only relative file paths inside the model's folder and "
                      "data: URIs are supported")
        try:
            target = (self.folder / relative).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
            self.fail(f"{where} has uri {shown}, which cannot be resolved ({exc})")
        if not target.is_relative_to(self.folder):
            self.fail(f"{where} has uri {shown}, which leads outside the model's folder {self.folder} "
                      f"(to {target}); a model may only use files in its own folder, so it is refused "
                      "unread")
        return target


class Fields:
    """Typed access to one JSON object; errors name ``where`` (e.g. "accessor 3")."""

    def __init__(self, doc: Document, obj: dict, where: str):
        self.doc, self.data, self.where = doc, obj, where

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, default: Any, required: bool) -> Any:
        if key not in self.data:
            if required:
                self.doc.fail(f"{self.where} is missing the required field {key!r}")
            return default
        return self.data[key]

    def _bad(self, key: str, expected: str, value: Any) -> NoReturn:
        shown = json.dumps(value)[:60] if _jsonable(value) else repr(value)[:60]
        self.doc.fail(f"{self.where}: {key!r} must be {expected}, got {shown}")

    def int(self, key: str, default: Any = None, *, required: bool = False, lo: int | None = None,
            hi: int | None = None) -> Any:
        value = self._get(key, default, required)
        if key not in self.data:
            return value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or (lo is not None and value < lo) or (
                hi is not None and value > hi):
            bounds = (f" >= {lo}" if lo is not None else "") + (f" and <= {hi}" if hi is not None else "")
            self._bad(key, f"an integer{bounds}", value)
        return value

    def num(self, key: str, default: Any = None, *, required: bool = False, lo: float | None = None,
            hi: float | None = None) -> Any:
        value = self._get(key, default, required)
        if key not in self.data:
            return value
        if not _finite_number(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = (f" >= {lo}" if lo is not None else "") + (f" and <= {hi}" if hi is not None else "")
            self._bad(key, f"a finite number{bounds}", value)
        return float(value)

    def nums(self, key: str, n: int, default: Any = None, *, lo: float | None = None,
             hi: float | None = None) -> Any:
        """A list of exactly ``n`` finite numbers, as a tuple of floats."""
        value = self._get(key, default, False)
        if key not in self.data:
            return value
        ok = isinstance(value, list) and len(value) == n and all(
            _finite_number(v) and (lo is None or v >= lo) and (hi is None or v <= hi) for v in value)
        if not ok:
            bounds = f" in [{lo}, {hi}]" if lo is not None and hi is not None else ""
            self._bad(key, f"a list of {n} finite numbers{bounds}", value)
        return tuple(float(v) for v in value)

    def str(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        value = self._get(key, default, required)
        if key in self.data and not isinstance(value, str):
            self._bad(key, "a string", value)
        return value

    def enum(self, key: str, choices, default: Any = None, *, required: bool = False) -> Any:
        value = self._get(key, default, required)
        if key in self.data and (isinstance(value, bool | list | dict) or value not in choices):
            self._bad(key, "one of " + ", ".join(json.dumps(c) for c in choices), value)
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self._get(key, default, False)
        if not isinstance(value, bool):
            self._bad(key, "true or false", value)
        return value

    def obj(self, key: str, *, required: bool = False) -> dict:
        value = self._get(key, {}, required)
        if not isinstance(value, dict):
            self._bad(key, "a JSON object", value)
        return value

    def sub(self, key: str, *, required: bool = False) -> Fields:
        """The fields of a nested object (empty if absent and not required)."""
        return Fields(self.doc, self.obj(key, required=required), f"{self.where} {key}")

    def list(self, key: str, *, required: bool = False) -> list:
        value = self._get(key, [], required)
        if not isinstance(value, list):
            self._bad(key, "a JSON array", value)
        return value

    def ref(self, key: str, collection: str, *, required: bool = False) -> Any:
        """An index into the top-level array ``collection``, checked; None if absent."""
        value = self._get(key, None, required)
        if key in self.data:
            self.doc.item(collection, value, f"{self.where} {key}")
        return value

    def refs(self, key: str, collection: str) -> list[int]:
        """A list of distinct indices into ``collection``."""
        values = self.list(key)
        for value in values:
            self.doc.item(collection, value, f"{self.where} {key}")
        if len(set(values)) != len(values):
            self._bad(key, f"a list of distinct {collection} indices", values)
        return values


def singular(key: str) -> str:
    """'meshes' -> 'mesh', 'accessors' -> 'accessor'."""
    return key[:-2] if key.endswith("shes") else key[:-1]


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond float range
        return False


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def read_file(name: str, path: Path, what: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The first ``limit`` bytes of a regular file, or SceneLoadError saying why not
    (prefixed with ``name``)."""
    try:
        if not path.exists():
            raise SceneLoadError(f"{name}: {what}: file not found ({path})")
        if not path.is_file():
            raise SceneLoadError(f"{name}: {what}: {path} is not a regular file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SceneLoadError(f"{name}: {what}: {path} has {path.stat().st_size} bytes, more than "
                                 f"the {MAX_FILE_BYTES} this loader reads")
        with path.open("rb") as file:
            return file.read(limit)
    except OSError as exc:
        raise SceneLoadError(f"{name}: {what}: cannot read {path} ({exc.strerror or exc})") from exc


def parse_glb(name: str, data: bytes) -> tuple[bytes, bytes | None]:
    """(JSON chunk, BIN chunk or None) of a binary glTF."""

    def fail(message: str) -> NoReturn:
        raise SceneLoadError(f"{name}: {message}")

    if len(data) < 12:
        fail(f"truncated GLB: the 12-byte header is cut off at {len(data)} bytes")
    magic, version, length = struct.unpack_from("<4sII", data)
    if magic != GLB_MAGIC:
        fail(f"not a binary glTF: magic is {magic!r}, expected b'glTF'")
    if version != GLB_VERSION:
        fail(f"GLB version {version} is not supported; expected {GLB_VERSION}")
    if length != len(data):
        state = "truncated GLB" if length > len(data) else "GLB with trailing bytes"
        fail(f"{state}: the header says {length} bytes, the file has {len(data)}")
    chunks: list[tuple[int, bytes]] = []
    offset = 12
    while offset < length:  # each pass moves on by at least 8 bytes
        if length - offset < 8:
            fail(f"truncated GLB: chunk {len(chunks)} header at byte {offset} is cut off")
        chunk_length, chunk_type = struct.unpack_from("<II", data, offset)
        start = offset + 8
        if chunk_length > length - start:
            fail(f"chunk {len(chunks)} at byte {offset} claims {chunk_length} bytes, "
                 f"but only {length - start} remain")
        chunks.append((chunk_type, data[start:start + chunk_length]))
        offset = start + chunk_length
    if not chunks:
        fail("GLB has no chunks; the first must be JSON")
    if chunks[0][0] != CHUNK_JSON:
        fail(f"the first GLB chunk has type 0x{chunks[0][0]:08X}; expected JSON (0x{CHUNK_JSON:08X})")
    bins = [c for t, c in chunks[1:] if t == CHUNK_BIN]
    if len(bins) > 1 or (bins and chunks[1][0] != CHUNK_BIN):
        fail("the BIN chunk must be the second chunk, and there may be only one")
    return chunks[0][1], (bins[0] if bins else None)


def parse_json(name: str, data: bytes) -> dict:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SceneLoadError(f"{name}: the glTF JSON is not UTF-8 (byte {exc.start})") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SceneLoadError(f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                             f"{exc.msg}") from exc
    except RecursionError as exc:
        raise SceneLoadError(f"{name}: the JSON is nested too deeply") from exc
    if not isinstance(value, dict):
        raise SceneLoadError(f"{name}: the glTF JSON must be an object, got {type(value).__name__}")
    return value
