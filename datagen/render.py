"""The renderer: one owner of one headless GL context and every GL object.

``Renderer.render(scene, i)`` draws frame ``i`` of a scene and returns a
``Frame`` of numpy arrays:

1. shadow pass: the sun's depth map at time t;
2. LR pass: one jittered sample per LR pixel into a 7-target G-buffer
   (colour, motion, depth, normal, albedo, material, object id), then the sky,
   then alpha-blended surfaces over the colour only;
3. HR reference: ``spp`` passes on a stratified sub-pixel pattern, each added
   into a float32 accumulator on the GPU, read back once (each pass with a depth
   pre-pass where the scene asks for one: ``Scene.depth_prepass``);
4. HR motion and depth at unjittered pixel centres.

``Renderer.render_ratios(scene, i)`` draws the LR pass once per ratio of
``config.scales`` (``extra_scales`` beside ``scale``: each its own G-buffer, jitter
and mip bias) and the shadow map and the HR passes once, and returns one ``Frame``
per ratio sharing the HR arrays.

What the passes of a frame share (camera matrices, per-node uniforms) is computed
on the CPU first (``datagen.frame_setup``). The scene is mirrored onto the GPU on
first use and kept until another scene arrives (the GL objects themselves:
``datagen.gl_resources``). ``close()`` releases everything, in reverse order, and
is idempotent.

The per-pass methods (``prepare``, ``program``, ``surface_program``,
``vertex_array``, ``texture``, ``set_lighting``, ``draw_sky``, ``sky_average``,
``sum_batch``, ``shadow_pass``, ``lr_ratio``, ``hr_reference``, ``depth_prepass``,
``hr_motion_depth``, ``read_hr``) are public so that ``datagen.bench`` replays the same GL work without
the renderer's per-draw Python (``BareLoop``) and times each pass alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import moderngl
import numpy as np

from datagen import conventions as cv
from datagen.errors import GLUnavailableError
from datagen.frame import Frame
from datagen.frame_setup import Draw, FrameSetup, PassCamera, draw_order, frame_setup, rotation_only
from datagen.gl import create_context, max_target_size, renderer_name
from datagen.gl_resources import (
    ACCUMULATE_UNITS,
    BASE_UNIT,
    SKY_UNIT,
    TEXTURE_UNITS,
    GpuMesh,
    bind_units,
    material_defines,
    material_textures,
    read_attachment,
    set_matrix,
    set_uniform,
    uniforms,
    upload_texture,
)
from datagen.render_config import RenderConfig, check_target_size
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

PREPASS_MAX_TRIANGLES = 1000
"""The draws of more triangles skip the depth pre-pass (``Renderer.depth_prepass``):
in city, leaving out the road markings, poles, lamps and wires (2,304-13,920 triangles
each) made its HR samples 0.92 of the time with all draws in it (960x540, 4 frames)."""


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
        self._closed = False
        self._scene: Scene | None = None  # kept alive so that id(scene) stays unique
        self._meshes: dict[int, GpuMesh] = {}
        self._textures: dict[int, tuple[Texture, moderngl.Texture]] = {}
        self._programs: dict[tuple[str, ...], moderngl.Program] = {}
        self._anisotropy = 1.0  # of the driver's filter; driver_anisotropy in the LR pass only
        self.sample_offsets = cv.stratified_offsets(config.spp, config.sample_seed)
        """(spp, 2) sub-pixel positions in [0, 1) of the HR reference samples."""
        self.ctx = ctx if ctx is not None else create_context()
        self._owns_ctx = ctx is None
        try:
            check_target_size(config, max_target_size(self.ctx), renderer_name(self.ctx))
            self._make_programs()
            self._make_targets()
        except BaseException:
            if self._owns_ctx:  # releasing the context releases what was made in it
                self.ctx.release()
            raise

    # -- setup ---------------------------------------------------------------

    def _make_programs(self) -> None:
        ctx = self.ctx
        units = ctx.info["GL_MAX_TEXTURE_IMAGE_UNITS"]
        if units <= BASE_UNIT:
            raise GLUnavailableError(
                f"{ctx.info['GL_RENDERER']} has {units} texture units per shader; the HR sum "
                f"needs {BASE_UNIT + 1} (lower ACCUMULATE_BATCH in datagen/shaders.py)")
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
            bind_units(prog)
        tri = np.array([-1, -1, 3, -1, -1, 3], dtype="f4")
        self._tri_vbo = ctx.buffer(tri.tobytes())
        self._fullscreen = {
            id(p): ctx.vertex_array(p, [(self._tri_vbo, "2f", "in_ndc")])
            for p in [*self.sky.values(), *self.accumulate.values(), self.sky_average_prog]
        }

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

    # -- the per-pass API (shared with datagen.bench.BareLoop) -------------------

    def prepare(self, scene: Scene, frame_index: int) -> FrameSetup:
        """Mirror ``scene`` onto the GPU (once per scene) and compute what every pass of
        frame ``frame_index`` shares: its time, camera, jitter and draws."""
        self._mirror(scene)
        return frame_setup(scene, frame_index, self.config.hr_size, self.config.ratio[0])

    def program(self, vs: str, fs: str, *defines: str) -> moderngl.Program:
        """The program for a shader permutation, compiled on first use."""
        key = (vs, fs, *defines)
        prog = self._programs.get(key)
        if prog is None:
            prog = self.ctx.program(**program_sources(vs, fs, *defines))
            bind_units(prog)
            self._programs[key] = prog
        return prog

    def surface_program(self, variant: str, material: Material) -> moderngl.Program:
        """The surface program of a render variant (``shaders.VARIANTS``) for a material."""
        probes = () if variant != "GBUFFER" or self.config.driver_anisotropy else (
            f"LR_PROBES {self.config.lr_probes}",)
        return self.program(SURFACE_VS, SURFACE_FS, variant, *probes, *material_defines(material))

    def vertex_array(self, node: Node, prog: moderngl.Program) -> moderngl.VertexArray:
        """The vertex array of a node of the mirrored scene for a program."""
        return self._meshes[id(node.mesh)].vao(prog)

    def texture(self, texture: Texture) -> moderngl.Texture:
        """The GPU copy of a texture, uploaded on first use and kept with the scene."""
        hit = self._textures.get(id(texture))
        if hit is not None:
            if hit[1].anisotropy != self._anisotropy:
                hit[1].anisotropy = self._anisotropy
            return hit[1]
        gl_tex = upload_texture(self.ctx, texture, self._anisotropy)
        self._textures[id(texture)] = (texture, gl_tex)  # keep texture alive: ids stay unique
        return gl_tex

    def set_lighting(self, prog: moderngl.Program, scene: Scene, size: tuple[int, int]) -> None:
        """The sun, sky and target-size uniforms of a program, for a target of ``size`` pixels."""
        sun, sky = scene.sun, scene.sky
        d = np.asarray(sun.direction, dtype=np.float64)
        set_uniform(prog, "u_size", (float(size[0]), float(size[1])))
        set_uniform(prog, "u_sun_dir", tuple(d / np.linalg.norm(d)))
        set_uniform(prog, "u_sun_radiance", tuple(np.asarray(sun.color) * sun.irradiance))
        set_uniform(prog, "u_sun_disc", sky.sun_disc)
        for name, value in (("u_sky_zenith", sky.zenith), ("u_sky_horizon", sky.horizon),
                            ("u_sky_ground", sky.ground)):
            set_uniform(prog, name, tuple(np.asarray(value) * sky.intensity))

    def draw_sky(self, variant: str, scene: Scene, cam: PassCamera, size: tuple[int, int]) -> None:
        """The sky of a variant behind what the bound framebuffer holds (depth test <=)."""
        prog = self.sky[variant]
        self.set_lighting(prog, scene, size)
        rot, rot_prev = rotation_only(cam.view), rotation_only(cam.view_prev)
        set_matrix(prog, "u_inv_vp_raster", np.linalg.inv(cam.proj_raster @ rot))
        set_matrix(prog, "u_vp_cur", cam.proj @ rot)
        set_matrix(prog, "u_vp_prev", cam.proj @ rot_prev)
        self.ctx.depth_func = "<="
        self._fullscreen[id(prog)].render()
        self.ctx.depth_func = "<"

    def sky_average(self, scene: Scene, cam: PassCamera, size: tuple[int, int]) -> None:
        """The box-filtered sky of the HR pixels into ``hr_sky``, once per frame."""
        prog = self.sky_average_prog
        self.set_lighting(prog, scene, size)
        set_matrix(prog, "u_inv_vp", np.linalg.inv(cam.proj @ rotation_only(cam.view)))
        self.fbo_sky.use()
        self._fullscreen[id(prog)].render()

    def sum_batch(self, start: int, count: int, n: int) -> None:
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
        set_uniform(prog, "u_last", 1.0 if last else 0.0)
        self._fullscreen[id(prog)].render()
        ctx.disable(moderngl.BLEND)
        ctx.enable(moderngl.DEPTH_TEST)

    # -- scene mirroring -----------------------------------------------------

    def _mirror(self, scene: Scene) -> None:
        if self._scene is scene:
            return
        self._release_scene()
        for node in scene.drawables():
            if id(node.mesh) not in self._meshes:
                self._meshes[id(node.mesh)] = GpuMesh(self.ctx, node)
            for texture, _ in material_textures(node.material):
                self.texture(texture)
        self._scene = scene

    def _release_scene(self) -> None:
        for mesh in self._meshes.values():
            mesh.release()
        for _, gl_tex in self._textures.values():
            gl_tex.release()
        self._meshes, self._textures, self._scene = {}, {}, None

    # -- passes --------------------------------------------------------------

    def _draw_surfaces(self, variant: str, scene: Scene, draws: list[Draw], cam: PassCamera, blend: bool,
                       size: tuple[int, int], mip_bias: float = 0.0) -> None:
        """Draw the opaque/masked (blend=False) or alpha-blended (blend=True) nodes."""
        todo = draw_order(draws, cam.view, blend)
        if not todo:
            return
        # the one per-pass matrix of every node, in one numpy product
        raster = (cam.proj_raster @ cam.view) @ np.stack([d.model for d in todo])
        raster = np.ascontiguousarray(raster.transpose(0, 2, 1), dtype=np.float32)
        camera_pos = tuple(np.linalg.inv(cam.view)[:3, 3])
        prepared: set[int] = set()
        for d, mvp_raster in zip(todo, raster, strict=True):
            prog = self.surface_program(variant, d.node.material)
            named = uniforms(prog)
            if id(prog) not in prepared:  # per-pass uniforms, once per program
                prepared.add(id(prog))
                self.set_lighting(prog, scene, size)
                set_uniform(prog, "u_cam_pos", camera_pos)
                set_uniform(prog, "u_mip_bias", mip_bias)
            named["u_mvp_raster"].write(mvp_raster.tobytes())
            for name, raw in d.matrices.items():
                if name in named:
                    named[name].write(raw)
            for name, value in d.values.items():
                if name in named:
                    named[name].value = value
            for texture, uniform in material_textures(d.node.material):
                if uniform in named:
                    self.texture(texture).use(TEXTURE_UNITS[uniform])
            if d.node.material.double_sided:
                self.ctx.disable(moderngl.CULL_FACE)
            else:
                self.ctx.enable(moderngl.CULL_FACE)
            self.vertex_array(d.node, prog).render()
        self.ctx.disable(moderngl.CULL_FACE)

    def shadow_pass(self, draws: list[Draw]) -> None:
        """The sun's depth map of the frame's ``draws`` (blended surfaces cast none)."""
        self.fbo_shadow.use()
        self.fbo_shadow.clear(depth=1.0)
        self.shadow_map.use(TEXTURE_UNITS["u_shadow_map"])  # unbound while drawn into
        for d in draws:
            m = d.node.material
            if m.alpha_mode == "BLEND":
                continue  # glass and the like cast no shadow
            masked = m.alpha_mode == "MASK" and m.base_color_texture is not None
            prog = self.program(SHADOW_VS, SHADOW_FS, "ALPHA_MASK" if masked else "")
            named = uniforms(prog)
            named["u_mvp"].write(d.matrices["u_mvp"])
            if masked:
                named["u_alpha_cutoff"].value = m.alpha_cutoff
                named["u_alpha_factor"].value = m.base_color[3]
                self.texture(m.base_color_texture).use(TEXTURE_UNITS["u_base_tex"])
            self.vertex_array(d.node, prog).render()

    def _lr_pass(self, scene: Scene, draws: list[Draw], cam: PassCamera,
                 lr: _LrGbuffer | None = None) -> None:
        """The LR G-buffer pass into ``lr`` (default: the primary ratio's), with its
        ratio's mip bias; ``cam`` carries the projection jittered for it."""
        lr = lr or self.lr_gbuffers[0]
        size = lr.size
        lr.fbo.use()
        lr.fbo.clear(depth=1.0)
        bias = cv.mip_bias(lr.ratio[0])
        self._anisotropy = self.config.driver_anisotropy or 1.0
        try:
            self._draw_surfaces("GBUFFER", scene, draws, cam, False, size, bias)
            self.draw_sky("GBUFFER", scene, cam, size)
            self._blended(lr.fbo_color, scene, draws, cam, size, bias)
        finally:  # the HR passes sample with the driver's plain trilinear filter
            self._anisotropy = 1.0

    def _blended(self, fbo: moderngl.Framebuffer, scene: Scene, draws: list[Draw], cam: PassCamera,
                 size: tuple[int, int], bias: float = 0.0) -> None:
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

    def hr_reference(self, scene: Scene, draws: list[Draw], cam: PassCamera) -> None:
        """spp stratified samples, summed in float32 and resolved to half floats.

        Samples hold surfaces only (coverage in alpha); the sky, box-filtered
        once per frame, is composited behind each in the accumulation pass, which
        saves a full-screen sky pass per sample.
        """
        size = self.config.hr_size
        self.sky_average(scene, cam, size)
        n = len(self.sample_offsets)
        for start in range(0, n, ACCUMULATE_BATCH):
            batch = self.sample_offsets[start:start + ACCUMULATE_BATCH]
            for offset, fbo in zip(batch, self.fbo_samples, strict=False):
                sample_cam = cam._replace(proj_raster=cv.jittered(cam.proj, tuple(offset - 0.5), size))
                fbo.use()
                fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
                if scene.depth_prepass:
                    self.depth_prepass(fbo, scene, draws, sample_cam)
                else:
                    self._draw_surfaces("COLOR", scene, draws, sample_cam, False, size)
                self._blended(fbo, scene, draws, sample_cam, size)
            self.sum_batch(start, len(batch), n)

    def depth_prepass(self, fbo: moderngl.Framebuffer, scene: Scene, draws: list[Draw],
                      cam: PassCamera) -> None:
        """The opaque and alpha-tested surfaces of one HR sample into ``fbo``, each
        pixel's nearest one alone shaded: the draws of at most ``PREPASS_MAX_TRIANGLES``
        first depth only (``DEPTH_ONLY``: the surface shader up to its alpha test), then
        shaded with depth test ``<=`` and no depth writes; the draws of more triangles
        (thin detail: wires, poles, road markings, which hide little and cost more to
        draw twice than they save) last, as without the pre-pass. llvmpipe tests depth
        before the shader, even one that discards, so hidden fragments cost only their
        rasterization. The image equals one pass's but where two surfaces have exactly
        the same depth. ``Scene.depth_prepass`` says when to use it."""
        size = self.config.hr_size
        occluders = [d for d in draws if len(d.node.mesh.indices) <= PREPASS_MAX_TRIANGLES]
        detail = [d for d in draws if len(d.node.mesh.indices) > PREPASS_MAX_TRIANGLES]
        fbo.color_mask = False, False, False, False
        self._draw_surfaces("DEPTH_ONLY", scene, occluders, cam, False, size)
        fbo.color_mask = True, True, True, True
        fbo.depth_mask = False
        self.ctx.depth_func = "<="
        self._draw_surfaces("COLOR", scene, occluders, cam, False, size)
        self.ctx.depth_func = "<"
        fbo.depth_mask = True
        self._draw_surfaces("COLOR", scene, detail, cam, False, size)

    def hr_motion_depth(self, scene: Scene, draws: list[Draw], cam: PassCamera) -> None:
        """HR motion vectors and depth at unjittered pixel centres, sky included."""
        size = self.config.hr_size
        self.fbo_hr_md.use()
        self.fbo_hr_md.clear(depth=1.0)
        self._draw_surfaces("MOTION_DEPTH", scene, draws, cam, False, size)
        self.draw_sky("MOTION_DEPTH", scene, cam, size)

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
        setup = self.prepare(scene, frame_index)
        cam, draws = setup.cam, setup.draws
        ctx = self.ctx
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.depth_func = "<"
        self.shadow_pass(draws)
        jitters = [self._jittered_lr_pass(scene, setup, lr) for lr in gbuffers]
        self.hr_reference(scene, draws, cam)
        self.hr_motion_depth(scene, draws, cam)
        hr = self.read_hr()
        return [Frame(**self._read_lr(lr), **hr, jitter_px=np.asarray(jitter, np.float32),
                      view=setup.cam.view.astype(np.float32), proj=setup.cam.proj.astype(np.float32),
                      exposure=float(scene.exposure), camera_cut=scene.is_cut(frame_index),
                      time_s=float(setup.t))
                for lr, jitter in zip(gbuffers, jitters, strict=True)]

    def lr_ratio(self, scene: Scene, setup: FrameSetup, index: int = 0) -> dict[str, np.ndarray]:
        """The LR G-buffer pass of ratio ``config.scales[index]`` for frame ``setup``
        (``prepare``; after its ``shadow_pass``) and its read-back: the ``Frame``'s LR
        fields. What a frame of several ratios repeats per ratio."""
        lr = self.lr_gbuffers[index]
        self._jittered_lr_pass(scene, setup, lr)
        return self._read_lr(lr)

    def _jittered_lr_pass(self, scene: Scene, setup: FrameSetup, lr: _LrGbuffer) -> tuple[float, float]:
        """The LR pass into ``lr`` jittered for its ratio; returns the jitter in LR pixels."""
        jitter = cv.jitter_px(setup.frame_index, lr.ratio[0])
        raster = cv.jittered(setup.cam.proj, jitter, lr.size)
        self._lr_pass(scene, setup.draws, setup.cam._replace(proj_raster=raster), lr)
        return jitter

    @staticmethod
    def _read_lr(lr: _LrGbuffer) -> dict[str, np.ndarray]:
        """The ``Frame`` LR fields of G-buffer ``lr``."""
        at = {name: i for i, name in enumerate(lr.targets)}  # attachment of each target
        return dict(
            color_lr=read_attachment(lr.fbo, at["color"], 3, "f2"),
            depth_lr=read_attachment(lr.fbo, at["depth"], 1, "f4")[..., 0],
            motion_lr=read_attachment(lr.fbo, at["motion"], 2, "f4"),
            normal_lr=read_attachment(lr.fbo, at["normal"], 3, "f2"),
            albedo_lr=read_attachment(lr.fbo, at["albedo"], 3, "f2"),
            material_lr=read_attachment(lr.fbo, at["material"], 2, "f2"),
            object_id_lr=read_attachment(lr.fbo, at["object_id"], 1, "u4")[..., 0],
        )

    def read_hr(self) -> dict[str, np.ndarray]:
        """The ``Frame`` HR fields."""
        return dict(
            color_hr=read_attachment(self.fbo_color, 0, 3, "f2"),
            depth_hr=read_attachment(self.fbo_hr_md, 1, 1, "f4")[..., 0],
            motion_hr=read_attachment(self.fbo_hr_md, 0, 2, "f4"),
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
                    *(obj for lr in self.lr_gbuffers for obj in lr.gl_objects()),
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
