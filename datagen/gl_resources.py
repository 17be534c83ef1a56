"""The GL objects behind a render, below the passes: a scene's meshes and textures
mirrored onto the GPU, the texture units and uniforms of the programs, and reading
a target back. Only ``datagen.render`` (and the bench's bare loop, through the
renderer) uses them; every object here is owned and released by a ``Renderer``.
"""

from __future__ import annotations

import moderngl
import numpy as np

from datagen import conventions as cv
from datagen.scene import Material, Node, Texture
from datagen.shaders import ACCUMULATE_BATCH

TEXTURE_UNITS = {
    "u_base_tex": 0, "u_mr_tex": 1, "u_normal_tex": 2, "u_emissive_tex": 3,
    "u_occlusion_tex": 4, "u_shadow_map": 5,
}
"""the texture unit of each sampler of the surface, shadow and sky programs."""
ACCUMULATE_UNITS = tuple(range(6, 6 + ACCUMULATE_BATCH))
"""the units of one batch of HR sample images in the accumulation pass."""
SKY_UNIT = 6 + ACCUMULATE_BATCH
"""the box-filtered sky image in the accumulation pass."""
BASE_UNIT = SKY_UNIT + 1
"""the float32 sum of earlier batches in the accumulation pass."""
MATERIAL_TEXTURES = (  # (material field, sampler uniform, shader define)
    ("base_color_texture", "u_base_tex", "HAS_BASE_TEX"),
    ("metallic_roughness_texture", "u_mr_tex", "HAS_MR_TEX"),
    ("normal_texture", "u_normal_tex", "HAS_NORMAL_TEX"),
    ("emissive_texture", "u_emissive_tex", "HAS_EMISSIVE_TEX"),
    ("occlusion_texture", "u_occlusion_tex", "HAS_OCCLUSION_TEX"),
)
VERTEX_ATTRIBUTES = (("in_pos", "3f", 12), ("in_normal", "3f", 12), ("in_uv", "2f", 8))
"""(name, format, bytes) of each vertex attribute, interleaved in this order."""


def material_defines(m: Material) -> tuple[str, ...]:
    """The shader permutation a material needs."""
    defines = [define for field, _, define in MATERIAL_TEXTURES if getattr(m, field) is not None]
    if m.alpha_mode in ("MASK", "BLEND"):
        defines.append(f"ALPHA_{m.alpha_mode}")
    if m.double_sided:
        defines.append("DOUBLE_SIDED")
    return tuple(defines)


def material_textures(m: Material) -> list[tuple[Texture, str]]:
    """(texture, sampler uniform) of each texture the material has."""
    return [(getattr(m, field), uniform) for field, uniform, _ in MATERIAL_TEXTURES
            if getattr(m, field) is not None]


class GpuMesh:
    """A mesh's buffers and, made on first use, one vertex array per program."""

    def __init__(self, ctx: moderngl.Context, node: Node):
        mesh = node.mesh
        interleaved = np.hstack([mesh.positions, mesh.normals, mesh.uvs]).astype("f4")
        self.ctx = ctx
        self.vbo = ctx.buffer(interleaved.tobytes())
        self.ibo = ctx.buffer(mesh.indices.astype("u4").tobytes())
        self.vaos: dict[int, moderngl.VertexArray] = {}

    def vao(self, prog: moderngl.Program) -> moderngl.VertexArray:
        vao = self.vaos.get(id(prog))
        if vao is None:
            fmt, names = [], []
            for name, kind, nbytes in VERTEX_ATTRIBUTES:
                if name in prog:
                    fmt.append(kind)
                    names.append(name)
                else:  # optimised out of this program: skip its bytes
                    fmt.append(f"{nbytes}x")
            vao = self.ctx.vertex_array(prog, [(self.vbo, " ".join(fmt), *names)],
                                        index_buffer=self.ibo, index_element_size=4)
            self.vaos[id(prog)] = vao
        return vao

    def release(self) -> None:
        for vao in self.vaos.values():
            vao.release()
        self.ibo.release()
        self.vbo.release()


def srgb_to_linear(u8: np.ndarray) -> np.ndarray:
    c = u8.astype(np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def upload_texture(ctx: moderngl.Context, texture: Texture, anisotropy: float) -> moderngl.Texture:
    """A mipmapped half-float RGBA texture of ``texture`` (its colour made linear when
    it is sRGB), trilinear, repeating unless the texture clamps."""
    px = texture.pixels
    data = np.empty(px.shape, np.float32)
    data[..., :3] = srgb_to_linear(px[..., :3]) if texture.srgb else px[..., :3] / 255.0
    data[..., 3] = px[..., 3] / 255.0
    gl_tex = ctx.texture((px.shape[1], px.shape[0]), 4, data.astype("f2").tobytes(), dtype="f2")
    gl_tex.build_mipmaps()
    gl_tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
    gl_tex.anisotropy = anisotropy
    gl_tex.repeat_x = gl_tex.repeat_y = texture.wrap != "clamp"
    return gl_tex


def uniforms(prog: moderngl.Program) -> dict[str, moderngl.Uniform]:
    """The program's active uniforms by name, looked up once (``name in prog``
    walks every member of the program: it cost ~100 us a draw, measured)."""
    if prog.extra is None:
        members = {name: prog[name] for name in prog}
        prog.extra = {k: v for k, v in members.items() if isinstance(v, moderngl.Uniform)}
    return prog.extra


def set_uniform(prog: moderngl.Program, name: str, value) -> None:
    """Set a uniform if the program has it (a variant optimises out the ones it does not use)."""
    uniform = uniforms(prog).get(name)
    if uniform is not None:
        uniform.value = value


def set_matrix(prog: moderngl.Program, name: str, m: np.ndarray) -> None:
    """Set a mat4 uniform from a row-major (4, 4) array, if the program has it."""
    uniform = uniforms(prog).get(name)
    if uniform is not None:
        uniform.write(cv.gl_bytes(m))


def bind_units(prog: moderngl.Program) -> None:
    """Point the program's samplers at their ``TEXTURE_UNITS``."""
    for name, unit in TEXTURE_UNITS.items():
        set_uniform(prog, name, unit)


_DTYPES = {"f1": np.uint8, "f2": np.float16, "f4": np.float32, "u4": np.uint32}


def read_attachment(fbo: moderngl.Framebuffer, attachment: int, components: int,
                    dtype: str) -> np.ndarray:
    """The first ``components`` channels of a colour attachment as a new (h, w, c)
    array, row 0 the top. The driver drops the unread channels while it copies:
    on llvmpipe a 1080p half-float RGBA image read as RGB costs 4 ms, against
    19 ms for reading RGBA and dropping alpha in numpy (measured)."""
    w, h = fbo.size
    data = fbo.read(components=components, attachment=attachment, dtype=dtype, alignment=1)
    return np.frombuffer(data, dtype=_DTYPES[dtype]).reshape(h, w, components)[::-1].copy()
