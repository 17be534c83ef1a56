"""The renderer: one owner of one headless GL context and every GL object.

``Renderer.render(scene, i)`` draws frame ``i`` of a scene and returns a
``Frame`` of numpy arrays:

1. shadow pass: the sun's depth map at time t;
2. LR pass: one jittered sample per LR pixel into a 7-target G-buffer
   (colour, motion, depth, normal, albedo, material, object id), then the sky,
   then alpha-blended surfaces over the colour only;
3. HR reference: ``spp`` passes on a stratified sub-pixel pattern, each added
   into a float32 accumulator on the GPU, read back once;
4. HR motion and depth at unjittered pixel centres.

``Renderer.render_ratios(scene, i)`` draws the LR pass once per ratio of
``config.scales`` (``extra_scales`` beside ``scale``: each its own G-buffer, jitter
and mip bias) and the shadow map and the HR passes once, and returns one ``Frame``
per ratio sharing the HR arrays.

The scene is mirrored onto the GPU on first use and kept until another scene
arrives. ``close()`` releases everything, in reverse order, and is idempotent.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import moderngl
import numpy as np

from datagen import conventions as cv
from datagen.errors import ConfigError, GLUnavailableError
from datagen.frame import Frame
from datagen.gl import create_context, max_target_size, renderer_name
from datagen.scene import Material, Node, Scene, Texture
from datagen.shaders import (
    ACCUMULATE_BATCH,
    FULLSCREEN_VS,
    SHADOW_FS,
    SHADOW_VS,
    SKY_AVERAGE_FS,
    SKY_FS,
    SKY_SAMPLES_MAX,
    SKY_VS,
    SURFACE_FS,
    SURFACE_VS,
    VARIANTS,
    accumulate_fs,
    program_sources,
)

log = logging.getLogger(__name__)

TEXTURE_UNITS = {
    "u_base_tex": 0, "u_mr_tex": 1, "u_normal_tex": 2, "u_emissive_tex": 3,
    "u_occlusion_tex": 4, "u_shadow_map": 5,
}
ACCUMULATE_UNITS = tuple(range(6, 6 + ACCUMULATE_BATCH))
SKY_UNIT = 6 + ACCUMULATE_BATCH
BASE_UNIT = SKY_UNIT + 1  # the float32 sum of earlier batches
NDC_TO_UNIT = np.array([[0.5, 0, 0, 0.5], [0, 0.5, 0, 0.5], [0, 0, 0.5, 0.5], [0, 0, 0, 1.0]])
MATERIAL_TEXTURES = (  # (material field, sampler uniform, shader define)
    ("base_color_texture", "u_base_tex", "HAS_BASE_TEX"),
    ("metallic_roughness_texture", "u_mr_tex", "HAS_MR_TEX"),
    ("normal_texture", "u_normal_tex", "HAS_NORMAL_TEX"),
    ("emissive_texture", "u_emissive_tex", "HAS_EMISSIVE_TEX"),
    ("occlusion_texture", "u_occlusion_tex", "HAS_OCCLUSION_TEX"),
)


def material_defines(m: Material) -> tuple[str, ...]:
    """The shader permutation a material needs."""
    defines = [define for field, _, define in MATERIAL_TEXTURES if getattr(m, field) is not None]
    if m.alpha_mode in ("MASK", "BLEND"):
        defines.append(f"ALPHA_{m.alpha_mode}")
    if m.double_sided:
        defines.append("DOUBLE_SIDED")
    return tuple(defines)
VERTEX_ATTRIBUTES = (("in_pos", "3f", 12), ("in_normal", "3f", 12), ("in_uv", "2f", 8))

LR_PROBES = 8
"""Default probe budget of the LR pass's anisotropic filtering, chosen by measurement
(docs/benchmarks.md, "LR texture filtering")."""
LR_PROBES_MAX = 16


@dataclass(frozen=True)
class RenderConfig:
    """What to render at; independent of the scene."""

    hr_width: int = 1920
    """target (HR) width in pixels."""
    hr_height: int = 1080
    """target (HR) height in pixels."""
    scale: float = 2.0
    """LR = HR / scale rounded to whole pixels (``conventions.lr_size``); one of
    conventions.SCALES."""
    spp: int = 16
    """HR reference samples per pixel, 8-256 (1+ accepted for tests)."""
    shadow_map_size: int = 2048
    lr_probes: int = LR_PROBES
    """most trilinear probes per texture lookup of the LR pass: anisotropic filtering
    done in the shader along the footprint's major axis (datagen/shaders.py), so its
    cost is bounded and every driver computes the same image; 1 = trilinear. HR
    reference samples are trilinear: the spp stratified samples integrate the
    pixel footprint."""
    driver_anisotropy: float = 0.0
    """for measurements only: > 0 samples LR textures with the GL driver's own
    anisotropic filtering at this max anisotropy instead of the probes. Its cost
    on llvmpipe is unbounded (one 64x36 frame took 205 s, measured), and its
    image differs between drivers."""
    sample_seed: int = 0
    """seed of the stratified HR sample pattern."""
    reference_resolve: str = "box"
    """how the HR samples become a pixel: "box" (their mean) or "karis" (the mean of
    c / (1 + max(c)), inverted afterwards, as Arm's NSS ground truth; suppresses fireflies)."""
    extra_scales: tuple[float, ...] = ()
    """more LR ratios rendered beside ``scale`` with the same HR reference
    (``Renderer.render_ratios``): one jittered LR G-buffer each, with that ratio's own
    jitter phases and mip bias; each one of conventions.SCALES."""

    @property
    def hr_size(self) -> tuple[int, int]:
        return self.hr_width, self.hr_height

    @property
    def lr_size(self) -> tuple[int, int]:
        return cv.lr_size(self.hr_size, self.scale)

    @property
    def ratio(self) -> tuple[float, float]:
        """The exact per-axis HR / LR ratio (``conventions.ratio_of``)."""
        return cv.ratio_of(self.hr_size, self.lr_size)

    @property
    def scales(self) -> tuple[float, ...]:
        """Every LR ratio a frame is rendered at: ``scale`` first, then ``extra_scales``."""
        return (self.scale, *self.extra_scales)

    def check(self, min_spp: int = cv.SPP_RANGE[0]) -> None:
        """Raise ConfigError naming the bad field and the allowed values."""
        for scale in self.scales:
            if scale not in cv.SCALES:
                raise ConfigError(f"scale {scale:g} is not supported; use one of "
                                  + ", ".join(f"{s:g}" for s in cv.SCALES))
        if len(set(self.scales)) != len(self.scales):
            raise ConfigError(f"scales {', '.join(f'{s:g}' for s in self.scales)} name a ratio twice")
        if not min_spp <= self.spp <= cv.SPP_RANGE[1]:
            raise ConfigError(f"spp {self.spp} is out of range; use {min_spp} to {cv.SPP_RANGE[1]}")
        if not 1 <= self.lr_probes <= LR_PROBES_MAX:
            raise ConfigError(f"lr_probes {self.lr_probes} is out of range; use 1 to {LR_PROBES_MAX}")
        if self.reference_resolve not in cv.REFERENCE_RESOLVES:
            raise ConfigError(f"reference_resolve {self.reference_resolve!r} is not one of "
                              + ", ".join(cv.REFERENCE_RESOLVES))
        if self.hr_width < 1 or self.hr_height < 1:
            raise ConfigError(f"resolution {self.hr_width}x{self.hr_height} must be positive")


def check_target_size(config: RenderConfig, limit: int, renderer: str = "this GL renderer") -> None:
    """ConfigError, before anything is allocated, if the HR targets or the shadow map would be
    larger than ``limit`` pixels a side (``gl.max_target_size``)."""
    w, h = config.hr_size
    if max(w, h) > limit:
        raise ConfigError(f"--res {w}x{h} is larger than {renderer} can render: at most {limit} pixels a "
                          "side; choose a smaller --res")
    if config.shadow_map_size > limit:
        raise ConfigError(f"shadow_map_size {config.shadow_map_size} is larger than {renderer} allows "
                          f"({limit}); choose a smaller one")


def ortho(l: float, r: float, b: float, t: float, n: float, f: float) -> np.ndarray:  # noqa: E741
    m = np.eye(4)
    m[0, 0], m[1, 1], m[2, 2] = 2 / (r - l), 2 / (t - b), -2 / (f - n)
    m[:3, 3] = -(r + l) / (r - l), -(t + b) / (t - b), -(f + n) / (f - n)
    return m


def shadow_view_proj(scene: Scene) -> np.ndarray:
    """Orthographic sun view covering the scene bounds."""
    lo, hi = scene.bounds
    centre, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2
    d = np.asarray(scene.sun.direction, dtype=np.float64)
    d /= np.linalg.norm(d)
    view = cv.look_at(centre + d * radius * 2, centre)
    return ortho(-radius, radius, -radius, radius, radius * 0.5, radius * 3.5) @ view


def rotation_only(view: np.ndarray) -> np.ndarray:
    r = view.copy()
    r[:3, 3] = 0
    return r


def srgb_to_linear(u8: np.ndarray) -> np.ndarray:
    c = u8.astype(np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


@dataclass(eq=False)
class _Draw:
    """One node's draw in one frame: its world matrices now and one frame
    earlier, and every uniform that does not change between the frame's passes,
    computed once (bytes for matrices, values for the rest)."""

    node: Node
    model: np.ndarray
    model_prev: np.ndarray
    matrices: dict[str, bytes] = dataclasses.field(default_factory=dict)
    values: dict[str, object] = dataclasses.field(default_factory=dict)


def draw_order(draws: list[_Draw], view: np.ndarray, blend: bool) -> list[_Draw]:
    """The draws of one kind, in drawing order.

    By eye-space z of each node's origin: alpha-blended nodes back to front
    (for "over"), opaque ones front to back so that the early depth test skips
    hidden fragments.
    """
    todo = [d for d in draws if (d.node.material.alpha_mode == "BLEND") == blend]
    todo.sort(key=lambda d: (view @ d.model[:, 3])[2], reverse=not blend)
    return todo


class _GpuMesh:
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


@dataclass(frozen=True)
class _LrGbuffer:
    """The LR G-buffer of one ratio: 7 targets of ``size``, a depth buffer, the
    framebuffer of all targets and the colour-only one (blended surfaces)."""

    scale: float
    size: tuple[int, int]
    ratio: tuple[float, float]
    targets: dict
    zbuf: moderngl.Renderbuffer
    fbo: moderngl.Framebuffer
    fbo_color: moderngl.Framebuffer

    def gl_objects(self) -> list:
        """Its GL objects in release order."""
        return [self.fbo_color, self.fbo, self.zbuf, *self.targets.values()]


class Renderer:
    """Owns one GL context and every GL object made in it."""

    def __init__(self, config: RenderConfig, ctx: moderngl.Context | None = None):
        config.check(min_spp=1)
        self.config = config
        self.ctx = ctx if ctx is not None else create_context()
        self._owns_ctx = ctx is None
        try:
            check_target_size(config, max_target_size(self.ctx), renderer_name(self.ctx))
        except ConfigError:
            if self._owns_ctx:
                self.ctx.release()
            raise
        self._closed = False
        self._scene_key: int | None = None
        self._meshes: dict[int, _GpuMesh] = {}
        self._textures: dict[int, tuple[Texture, moderngl.Texture]] = {}
        self._offsets = cv.stratified_offsets(config.spp, config.sample_seed)
        self._anisotropy = 1.0  # of the driver's filter; driver_anisotropy in the LR pass only
        self._make_programs()
        self._make_targets()

    # -- setup ---------------------------------------------------------------

    def _make_programs(self) -> None:
        ctx = self.ctx
        units = ctx.info["GL_MAX_TEXTURE_IMAGE_UNITS"]
        if units <= BASE_UNIT:
            raise GLUnavailableError(
                f"{ctx.info['GL_RENDERER']} has {units} texture units per shader; the HR sum "
                f"needs {BASE_UNIT + 1} (lower ACCUMULATE_BATCH in datagen/shaders.py)")
        self._programs: dict[tuple[str, ...], moderngl.Program] = {}
        self.sky = {v: ctx.program(**program_sources(SKY_VS, SKY_FS, v)) for v in VARIANTS}
        counts = {min(ACCUMULATE_BATCH, self.config.spp), self.config.spp % ACCUMULATE_BATCH}
        self.accumulate = {n: ctx.program(**program_sources(FULLSCREEN_VS,
                                                            accumulate_fs(n, self.config.reference_resolve)))
                           for n in counts - {0}}
        for n, prog in self.accumulate.items():
            prog["u_src"].value = ACCUMULATE_UNITS[:n] if n > 1 else ACCUMULATE_UNITS[0]
            prog["u_sky"].value = SKY_UNIT
            prog["u_base"].value = BASE_UNIT
            prog["u_size"].value = self.config.hr_size
        self.sky_average_prog = ctx.program(**program_sources(SKY_VS, SKY_AVERAGE_FS))
        sky_offsets = np.zeros((SKY_SAMPLES_MAX, 2), "f4")
        n_sky = min(self.config.spp, SKY_SAMPLES_MAX)
        sky_offsets[:n_sky] = cv.stratified_offsets(n_sky, self.config.sample_seed)
        self.sky_average_prog["u_offsets"].write(sky_offsets.tobytes())
        self.sky_average_prog["u_count"].value = n_sky
        for prog in self.sky.values():
            _bind_units(prog)
        tri = np.array([-1, -1, 3, -1, -1, 3], dtype="f4")
        self._tri_vbo = ctx.buffer(tri.tobytes())
        self._fullscreen = {
            id(p): ctx.vertex_array(p, [(self._tri_vbo, "2f", "in_ndc")])
            for p in [*self.sky.values(), *self.accumulate.values(), self.sky_average_prog]
        }
        self._white = ctx.texture((1, 1), 4, np.ones(4, "f2").tobytes(), dtype="f2")

    def _make_targets(self) -> None:
        ctx, c = self.ctx, self.config
        hr = c.hr_size
        tex = self._target
        self.lr_gbuffers = [self._lr_gbuffer(scale) for scale in c.scales]
        """one LR G-buffer per ratio of ``config.scales``; the first is the primary one."""
        primary = self.lr_gbuffers[0]
        self.lr_targets, self.lr_zbuf = primary.targets, primary.zbuf
        self.fbo_lr, self.fbo_lr_color = primary.fbo, primary.fbo_color

        # HR samples go to a batch of half-float images, summed into a float32
        # accumulator one batch at a time; the last batch writes the mean to a
        # half-float image. Memory is fixed whatever the spp.
        self.hr_zbuf = ctx.depth_renderbuffer(hr)
        self.hr_samples = [tex(hr, 4, "f2") for _ in range(ACCUMULATE_BATCH)]
        self.fbo_samples = [ctx.framebuffer([t], self.hr_zbuf) for t in self.hr_samples]
        self.hr_accum = tex(hr, 4, "f4")
        self.fbo_accum = ctx.framebuffer([self.hr_accum])
        self.hr_color = tex(hr, 4, "f2")
        self.fbo_color = ctx.framebuffer([self.hr_color])
        self.hr_sky = tex(hr, 4, "f2")
        self.fbo_sky = ctx.framebuffer([self.hr_sky])
        self.hr_motion, self.hr_depth = tex(hr, 2, "f4"), tex(hr, 1, "f4")
        self.fbo_hr_md = ctx.framebuffer([self.hr_motion, self.hr_depth], self.hr_zbuf)

        self.shadow_map = ctx.depth_texture((c.shadow_map_size,) * 2)
        self.shadow_map.compare_func = "<="
        self.shadow_map.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.shadow_map.repeat_x = self.shadow_map.repeat_y = False
        self.fbo_shadow = ctx.framebuffer(depth_attachment=self.shadow_map)

    def _target(self, size, comps, dtype) -> moderngl.Texture:
        t = self.ctx.texture(size, comps, dtype=dtype)
        t.filter = (moderngl.NEAREST, moderngl.NEAREST)
        return t

    def _lr_gbuffer(self, scale: float) -> _LrGbuffer:
        """The 7 LR targets of ratio ``scale``, their depth buffer and framebuffers."""
        tex, size = self._target, cv.lr_size(self.config.hr_size, scale)
        targets = {
            "color": tex(size, 4, "f2"), "motion": tex(size, 2, "f4"), "depth": tex(size, 1, "f4"),
            "normal": tex(size, 4, "f2"), "albedo": tex(size, 4, "f2"), "material": tex(size, 2, "f2"),
            "object_id": tex(size, 1, "u4"),
        }
        zbuf = self.ctx.depth_renderbuffer(size)
        return _LrGbuffer(scale, size, cv.ratio_of(self.config.hr_size, size), targets, zbuf,
                          self.ctx.framebuffer(list(targets.values()), zbuf),
                          self.ctx.framebuffer([targets["color"]], zbuf))

    def surface_program(self, variant: str, material: Material) -> moderngl.Program:
        """The surface program of a render variant (``shaders.VARIANTS``) for a material."""
        probes = () if variant != "GBUFFER" or self.config.driver_anisotropy else (
            f"LR_PROBES {self.config.lr_probes}",)
        return self._program(SURFACE_VS, SURFACE_FS, variant, *probes, *material_defines(material))

    def _program(self, vs: str, fs: str, *defines: str) -> moderngl.Program:
        """The program for a shader permutation, compiled on first use."""
        key = (vs, fs, *defines)
        prog = self._programs.get(key)
        if prog is None:
            prog = self.ctx.program(**program_sources(vs, fs, *defines))
            _bind_units(prog)
            self._programs[key] = prog
        return prog

    # -- scene mirroring -----------------------------------------------------

    def _texture(self, texture: Texture) -> moderngl.Texture:
        hit = self._textures.get(id(texture))
        if hit is not None:
            if hit[1].anisotropy != self._anisotropy:
                hit[1].anisotropy = self._anisotropy
            return hit[1]
        px = texture.pixels
        data = np.empty(px.shape, np.float32)
        data[..., :3] = srgb_to_linear(px[..., :3]) if texture.srgb else px[..., :3] / 255.0
        data[..., 3] = px[..., 3] / 255.0
        gl_tex = self.ctx.texture((px.shape[1], px.shape[0]), 4, data.astype("f2").tobytes(), dtype="f2")
        gl_tex.build_mipmaps()
        gl_tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
        gl_tex.anisotropy = self._anisotropy
        gl_tex.repeat_x = gl_tex.repeat_y = texture.wrap != "clamp"
        self._textures[id(texture)] = (texture, gl_tex)  # keep texture alive: ids stay unique
        return gl_tex

    def _mirror(self, scene: Scene) -> None:
        if self._scene_key == id(scene):
            return
        self._release_scene()
        for node in scene.drawables():
            if id(node.mesh) not in self._meshes:
                self._meshes[id(node.mesh)] = _GpuMesh(self.ctx, node)
            for field, _, _ in MATERIAL_TEXTURES:
                if getattr(node.material, field) is not None:
                    self._texture(getattr(node.material, field))
        self._scene = scene  # keep alive so that id(scene) stays unique
        self._scene_key = id(scene)

    def _release_scene(self) -> None:
        for mesh in self._meshes.values():
            mesh.release()
        for _, gl_tex in self._textures.values():
            gl_tex.release()
        self._meshes, self._textures, self._scene_key = {}, {}, None

    # -- passes --------------------------------------------------------------

    def _bind_material(self, prog: moderngl.Program, m: Material) -> None:
        for field, uniform, _ in MATERIAL_TEXTURES:
            texture = getattr(m, field)
            if texture is not None and uniform in _uniforms(prog):
                self._texture(texture).use(TEXTURE_UNITS[uniform])

    def _set_lighting(self, prog: moderngl.Program, scene: Scene, size) -> None:
        sun, sky = scene.sun, scene.sky
        d = np.asarray(sun.direction, dtype=np.float64)
        _set(prog, "u_size", (float(size[0]), float(size[1])))
        _set(prog, "u_sun_dir", tuple(d / np.linalg.norm(d)))
        _set(prog, "u_sun_radiance", tuple(np.asarray(sun.color) * sun.irradiance))
        _set(prog, "u_sun_disc", sky.sun_disc)
        for name, value in (("u_sky_zenith", sky.zenith), ("u_sky_horizon", sky.horizon),
                            ("u_sky_ground", sky.ground)):
            _set(prog, name, tuple(np.asarray(value) * sky.intensity))

    def _draw_surfaces(self, variant, scene, draws, cam, blend: bool, size, mip_bias=0.0):
        """Draw the opaque/masked (blend=False) or alpha-blended (blend=True) nodes."""
        view, _, proj_raster, _ = cam
        todo = draw_order(draws, view, blend)
        if not todo:
            return
        # the one per-pass matrix of every node, in one numpy product
        raster = (proj_raster @ view) @ np.stack([d.model for d in todo])
        raster = np.ascontiguousarray(raster.transpose(0, 2, 1), dtype=np.float32)
        prepared: set[int] = set()
        for d, mvp_raster in zip(todo, raster, strict=True):
            prog = self.surface_program(variant, d.node.material)
            uniforms = _uniforms(prog)
            if id(prog) not in prepared:  # per-pass uniforms, once per program
                prepared.add(id(prog))
                self._set_lighting(prog, scene, size)
                _set(prog, "u_cam_pos", tuple(np.linalg.inv(view)[:3, 3]))
                _set(prog, "u_mip_bias", mip_bias)
            uniforms["u_mvp_raster"].write(mvp_raster.tobytes())
            for name, raw in d.matrices.items():
                if name in uniforms:
                    uniforms[name].write(raw)
            for name, value in d.values.items():
                if name in uniforms:
                    uniforms[name].value = value
            self._bind_material(prog, d.node.material)
            if d.node.material.double_sided:
                self.ctx.disable(moderngl.CULL_FACE)
            else:
                self.ctx.enable(moderngl.CULL_FACE)
            self._meshes[id(d.node.mesh)].vao(prog).render()
        self.ctx.disable(moderngl.CULL_FACE)

    def _prepare_draws(self, scene: Scene, frame_index: int, view, view_prev, proj) -> list[_Draw]:
        """Every node's draw record for the frame: the uniforms that stay fixed
        across its passes, computed once."""
        t, t_prev = scene.frame_time(frame_index), scene.frame_time(frame_index - 1)
        self._shadow_vp = shadow_view_proj(scene)
        shadow = NDC_TO_UNIT @ self._shadow_vp
        draws = []
        for (node, model), (_, model_prev) in zip(scene.walk(t), scene.walk(t_prev), strict=True):
            m = node.material
            normal_mat = np.linalg.inv(model[:3, :3]).T
            draws.append(_Draw(node, model, model_prev, matrices={
                "u_model": cv.gl_bytes(model),
                "u_mvp_cur": cv.gl_bytes(proj @ view @ model),
                "u_mvp_prev": cv.gl_bytes(proj @ view_prev @ model_prev),
                "u_shadow_mvp": cv.gl_bytes(shadow @ model),
                "u_normal_mat": np.ascontiguousarray(normal_mat.T, dtype="f4").tobytes(),
                "u_mvp": cv.gl_bytes(self._shadow_vp @ model),
            }, values={
                "u_mv_row2": tuple((view @ model)[2]),
                "u_object_id": node.object_id,
                "u_base_color": tuple(m.base_color),
                "u_metallic": m.metallic,
                "u_roughness": m.roughness,
                "u_emissive": tuple(m.emissive),
                "u_alpha_cutoff": m.alpha_cutoff,
                "u_alpha_factor": m.base_color[3],
            }))
        return draws

    def _draw_sky(self, variant, scene, cam, size) -> None:
        view, view_prev, proj_raster, proj = cam
        prog = self.sky[variant]
        self._set_lighting(prog, scene, size)
        rot, rot_prev = rotation_only(view), rotation_only(view_prev)
        _set_matrix(prog, "u_inv_vp_raster", np.linalg.inv(proj_raster @ rot))
        _set_matrix(prog, "u_vp_cur", proj @ rot)
        _set_matrix(prog, "u_vp_prev", proj @ rot_prev)
        self.ctx.depth_func = "<="
        self._fullscreen[id(prog)].render()
        self.ctx.depth_func = "<"

    def _shadow_pass(self, draws: list[_Draw]) -> None:
        self.fbo_shadow.use()
        self.fbo_shadow.clear(depth=1.0)
        self.shadow_map.use(TEXTURE_UNITS["u_shadow_map"])  # unbound while drawn into
        for d in draws:
            m = d.node.material
            if m.alpha_mode == "BLEND":
                continue  # glass and the like cast no shadow
            masked = m.alpha_mode == "MASK" and m.base_color_texture is not None
            prog = self._program(SHADOW_VS, SHADOW_FS, "ALPHA_MASK" if masked else "")
            uniforms = _uniforms(prog)
            uniforms["u_mvp"].write(d.matrices["u_mvp"])
            if masked:
                uniforms["u_alpha_cutoff"].value = m.alpha_cutoff
                uniforms["u_alpha_factor"].value = m.base_color[3]
                self._texture(m.base_color_texture).use(TEXTURE_UNITS["u_base_tex"])
            self._meshes[id(d.node.mesh)].vao(prog).render()

    def _lr_pass(self, scene, draws, cam, lr: _LrGbuffer | None = None) -> None:
        """The LR G-buffer pass into ``lr`` (default: the primary ratio's), with its
        ratio's mip bias; ``cam`` carries the projection jittered for it."""
        lr = lr or self.lr_gbuffers[0]
        size = lr.size
        lr.fbo.use()
        lr.fbo.clear(depth=1.0)
        bias = cv.mip_bias(lr.ratio[0])
        self._anisotropy = self.config.driver_anisotropy or 1.0
        self._draw_surfaces("GBUFFER", scene, draws, cam, False, size, bias)
        self._draw_sky("GBUFFER", scene, cam, size)
        self._blended(lr.fbo_color, scene, draws, cam, size, bias)
        self._anisotropy = 1.0

    def _blended(self, fbo, scene, draws, cam, size, bias=0.0) -> None:
        if not any(d.node.material.alpha_mode == "BLEND" for d in draws):
            return
        fbo.use()
        fbo.depth_mask = False
        self.ctx.enable(moderngl.BLEND)
        # "over", keeping coverage in alpha for the sky composite of HR samples
        self.ctx.blend_func = (moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA,
                               moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA)
        self._draw_surfaces("COLOR", scene, draws, cam, True, size, bias)
        self.ctx.disable(moderngl.BLEND)
        fbo.depth_mask = True

    def _hr_reference(self, scene, draws, cam) -> None:
        """spp stratified samples, summed in float32 and resolved to half floats.

        Samples hold surfaces only (coverage in alpha); the sky, box-filtered
        once per frame, is composited behind each in the accumulation pass, which
        saves a full-screen sky pass per sample.
        """
        size = self.config.hr_size
        view, view_prev, _, proj = cam
        self._sky_average(scene, view, proj, size)
        n = len(self._offsets)
        for start in range(0, n, ACCUMULATE_BATCH):
            batch = self._offsets[start:start + ACCUMULATE_BATCH]
            for offset, fbo in zip(batch, self.fbo_samples, strict=False):
                sample_cam = (view, view_prev, cv.jittered(proj, tuple(offset - 0.5), size), proj)
                fbo.use()
                fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
                self._draw_surfaces("COLOR", scene, draws, sample_cam, False, size)
                self._blended(fbo, scene, draws, sample_cam, size)
            self._sum_batch(start, len(batch), n)

    def _sky_average(self, scene, view, proj, size) -> None:
        prog = self.sky_average_prog
        self._set_lighting(prog, scene, size)
        _set_matrix(prog, "u_inv_vp", np.linalg.inv(proj @ rotation_only(view)))
        self.fbo_sky.use()
        self._fullscreen[id(prog)].render()

    def _sum_batch(self, start: int, count: int, n: int) -> None:
        """Fold the ``count`` sample images of the batch starting at sample ``start``
        (of ``n``) into the reference, each over the box-filtered sky, in one full-screen
        pass: the first batch writes the float32 sum (no clear needed), middle ones add
        to it, and the last writes sum-so-far + its own share as the half-float mean
        (no separate resolve pass)."""
        ctx, prog = self.ctx, self.accumulate[count]
        first, last = start == 0, start + count >= n
        fbo = self.fbo_color if last else self.fbo_accum
        fbo.use()
        ctx.disable(moderngl.DEPTH_TEST)
        add = not first and not last
        if add:
            ctx.enable(moderngl.BLEND)
            ctx.blend_func = moderngl.ONE, moderngl.ONE
        for source, unit in zip(self.hr_samples[:count], ACCUMULATE_UNITS, strict=False):
            source.use(unit)
        self.hr_sky.use(SKY_UNIT)
        # the accumulator is only bound for reading when it is not the target
        (self.hr_accum if last else self.hr_sky).use(BASE_UNIT)
        prog["u_weight"].value = 1.0 / n
        prog["u_base_on"].value = 1.0 if last and not first else 0.0
        _set(prog, "u_last", 1.0 if last else 0.0)
        self._fullscreen[id(prog)].render()
        ctx.disable(moderngl.BLEND)
        ctx.enable(moderngl.DEPTH_TEST)

    def _hr_motion_depth(self, scene, draws, cam) -> None:
        size = self.config.hr_size
        view, view_prev, _, proj = cam
        centre_cam = (view, view_prev, proj, proj)
        self.fbo_hr_md.use()
        self.fbo_hr_md.clear(depth=1.0)
        self._draw_surfaces("MOTION_DEPTH", scene, draws, centre_cam, False, size)
        self._draw_sky("MOTION_DEPTH", scene, centre_cam, size)

    # -- the frame -----------------------------------------------------------

    def render(self, scene: Scene, frame_index: int) -> Frame:
        """Frame ``frame_index`` of ``scene`` (see the module docstring), at the primary
        ratio ``config.scale``."""
        return self._render(scene, frame_index, self.lr_gbuffers[:1])[0]

    def render_ratios(self, scene: Scene, frame_index: int) -> list[Frame]:
        """Frame ``frame_index`` of ``scene`` at every ratio of ``config.scales``, in that
        order: the shadow map, HR reference, HR motion and depth are rendered once and
        shared (the same arrays in every Frame); each ratio has its own jittered LR
        G-buffer, jitter and mip bias. Each Frame equals what ``render`` of a Renderer
        made for that ratio alone gives."""
        return self._render(scene, frame_index, self.lr_gbuffers)

    def _render(self, scene: Scene, frame_index: int, gbuffers: list[_LrGbuffer]) -> list[Frame]:
        if self._closed:
            raise RuntimeError("Renderer.render() after close()")
        c = self.config
        self._mirror(scene)
        t = scene.frame_time(frame_index)
        t_prev = scene.frame_time(frame_index - 1)
        camera = scene.camera
        view, view_prev = camera.view(t), camera.view(t_prev)
        proj = cv.perspective(camera.fov_y_deg, c.hr_width / c.hr_height, camera.near, camera.far)
        draws = self._prepare_draws(scene, frame_index, view, view_prev, proj)

        ctx = self.ctx
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.depth_func = "<"
        self._shadow_pass(draws)
        jitters = [cv.jitter_px(frame_index, lr.ratio[0]) for lr in gbuffers]
        for lr, jitter in zip(gbuffers, jitters, strict=True):
            self._lr_pass(scene, draws, (view, view_prev, cv.jittered(proj, jitter, lr.size), proj), lr)
        self._hr_reference(scene, draws, (view, view_prev, proj, proj))
        self._hr_motion_depth(scene, draws, (view, view_prev, proj, proj))
        hr = self._read_hr()
        return [Frame(**self._read_lr(lr), **hr, jitter_px=np.asarray(jitter, np.float32),
                      view=view.astype(np.float32), proj=proj.astype(np.float32),
                      exposure=float(scene.exposure), camera_cut=scene.is_cut(frame_index), time_s=float(t))
                for lr, jitter in zip(gbuffers, jitters, strict=True)]

    @staticmethod
    def _read_lr(lr: _LrGbuffer) -> dict[str, np.ndarray]:
        """The ``Frame`` LR fields of G-buffer ``lr``."""
        at = {name: i for i, name in enumerate(lr.targets)}  # attachment of each target
        return dict(
            color_lr=_read_attachment(lr.fbo, at["color"], 3, "f2"),
            depth_lr=_read_attachment(lr.fbo, at["depth"], 1, "f4")[..., 0],
            motion_lr=_read_attachment(lr.fbo, at["motion"], 2, "f4"),
            normal_lr=_read_attachment(lr.fbo, at["normal"], 3, "f2"),
            albedo_lr=_read_attachment(lr.fbo, at["albedo"], 3, "f2"),
            material_lr=_read_attachment(lr.fbo, at["material"], 2, "f2"),
            object_id_lr=_read_attachment(lr.fbo, at["object_id"], 1, "u4")[..., 0],
        )

    def _read_hr(self) -> dict[str, np.ndarray]:
        """The ``Frame`` HR fields."""
        return dict(
            color_hr=_read_attachment(self.fbo_color, 0, 3, "f2"),
            depth_hr=_read_attachment(self.fbo_hr_md, 1, 1, "f4")[..., 0],
            motion_hr=_read_attachment(self.fbo_hr_md, 0, 2, "f4"),
        )

    # -- teardown ------------------------------------------------------------

    def close(self) -> None:
        """Release every GL object, then the context if we made it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # leave no released framebuffer bound: moderngl would re-bind its dead
        # name on the next framebuffer made in a shared context
        self.ctx.detect_framebuffer(0).use()
        self._release_scene()
        for obj in [self.fbo_shadow, self.shadow_map, self.fbo_hr_md, self.hr_depth,
                    self.hr_motion, self.fbo_accum, self.hr_accum, self.fbo_color, self.hr_color,
                    *self.fbo_samples,
                    *self.hr_samples, self.hr_zbuf,
                    *(obj for lr in self.lr_gbuffers for obj in lr.gl_objects()), self._white,
                    *self._fullscreen.values(),
                    self.fbo_sky, self.hr_sky, self._tri_vbo, self.sky_average_prog,
                    *self.accumulate.values(), *self.sky.values(),
                    *self._programs.values()]:
            obj.release()
        if self._owns_ctx:
            self.ctx.release()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_DTYPES = {"f1": np.uint8, "f2": np.float16, "f4": np.float32, "u4": np.uint32}


def _read_attachment(fbo: moderngl.Framebuffer, attachment: int, components: int,
                     dtype: str) -> np.ndarray:
    """The first ``components`` channels of a colour attachment as a new (h, w, c)
    array, row 0 the top. The driver drops the unread channels while it copies:
    on llvmpipe a 1080p half-float RGBA image read as RGB costs 4 ms, against
    19 ms for reading RGBA and dropping alpha in numpy (measured)."""
    w, h = fbo.size
    data = fbo.read(components=components, attachment=attachment, dtype=dtype, alignment=1)
    return np.frombuffer(data, dtype=_DTYPES[dtype]).reshape(h, w, components)[::-1].copy()


def _uniforms(prog: moderngl.Program) -> dict[str, moderngl.Uniform]:
    """The program's active uniforms by name, looked up once (``name in prog``
    walks every member of the program: it cost ~100 us a draw, measured)."""
    if prog.extra is None:
        members = {name: prog[name] for name in prog}
        prog.extra = {k: v for k, v in members.items() if isinstance(v, moderngl.Uniform)}
    return prog.extra


def _bind_units(prog: moderngl.Program) -> None:
    for name, unit in TEXTURE_UNITS.items():
        _set(prog, name, unit)


def _set(prog: moderngl.Program, name: str, value) -> None:
    uniform = _uniforms(prog).get(name)
    if uniform is not None:  # a uniform a variant does not use is optimised out
        uniform.value = value


def _set_matrix(prog: moderngl.Program, name: str, m: np.ndarray) -> None:
    uniform = _uniforms(prog).get(name)
    if uniform is not None:
        uniform.write(cv.gl_bytes(m))
