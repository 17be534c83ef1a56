"""``datagen bench``: the SPEC §8 figures, each a ratio measured in one run.

Figures so far: render_vs_bare (below), the store's write, window-read,
crop-read and writer peak-memory figures (datagen.store.measure.bench_store),
store reads from S3 against local disk (datagen.store.measure_s3: a moto server
on 127.0.0.1, or DATAGEN_BENCH_S3), and the training figures (datagen.train.bench:
model inference ms per HR frame, train step time and data-wait fraction, also
with the store on S3).

render_vs_bare: frames/s of ``Renderer.render`` (shadow, LR G-buffer, spp HR
samples accumulated on the GPU, HR motion/depth, one read-back) against a bare
moderngl loop issuing the same passes: the same programs, vertex arrays,
framebuffers and draw calls, with every uniform precomputed as bytes, no scene
walk and no per-draw numpy. The ratio is the renderer's overhead; the absolute
frames/s is the GL stack's speed on this machine.

frame_time_spread: per scene and size, the slowest frame's time over its sequence's
median (``bench_frame_spread``): a frame whose cost explodes (as llvmpipe's own
anisotropic filtering did, 30-2000x its neighbours) shows here; the target is <= 3.

scene_vs_primitives: per scene, the median CPU seconds of a frame over the
``primitives`` frame's, the scenes' frames interleaved in one process
(``bench_scene_vs_primitives``), with each pass timed alone and the draws counted;
the target is <= 2.

multi_ratio_vs_single: frames/s of ``Renderer.render_ratios`` at 3 ratios (one HR
reference, 3 LR G-buffers) against 3 single-ratio Renderers rendering the same frames
(3 HR references); the expected speed-up, 3 (HR + LR) / (HR + 3 LR), is reported
beside it, from the LR part of each ratio timed alone (``lr_part_seconds``).

build_vs_render: frames/s of a whole ``datagen build`` (LocalCluster start-up,
store creation, rendering on 2 worker processes, writing every array) against
rendering the same frames alone: 2 plain spawned processes taking sequences
from one queue, one Renderer each, no Dask and no store, timed from context
creation to the last frame. Cluster start-up is reported apart, with the ratio
it leaves out. ``cpu_ratio`` is the same comparison in CPU-seconds (the build:
this process and its ended children, the workers included, start-up and all; the
reference: its processes from context creation to the last frame), which other
processes' load on a shared machine does not change. ``build_cpu_parts`` splits the
build's CPU by what each worker reports of its threads at shutdown, and
``rendering_share`` is rendering's part of it: measured in the same processes, it does
not move with the machine's speed between the build and the reference.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import tempfile
import time
from collections.abc import Callable

import moderngl

from datagen import __version__
from datagen import conventions as cv
from datagen.frame_setup import draw_order
from datagen.gl import renderer_name
from datagen.gl_resources import ACCUMULATE_UNITS, TEXTURE_UNITS, set_uniform, uniforms
from datagen.render import RenderConfig, Renderer
from datagen.scenes import generate
from datagen.shaders import SHADOW_FS, SHADOW_VS
from datagen.store.measure import bench_store
from datagen.store.measure_s3 import s3_read_figure

MULTI_RATIO_SCALES = (2.0, 1.5, 1.7)
"""the ratios of multi_ratio_vs_single (``build --scale 2,1.5,1.7``)."""

TARGETS = {"render_vs_bare": 0.85, "cpu_seconds_per_1080p_frame": 0.8, "gpu_frames_per_s": 50.0,
           "build_vs_render": 0.85, "frame_time_spread": 3.0}

SPREAD_SCENES = ("primitives", "racing", "city", "forest", "showroom")
SPREAD_FRAMES = {(64, 36): 48, (128, 72): 48, (640, 360): 48, (1920, 1080): 8}
"""frames timed per scene at each HR size (scale 2, 16 spp); 1080p takes up to ~6 s a
frame on 2 cores (forest), so it times 8."""
SPREAD_FRAMES_QUICK = {(64, 36): 12, (128, 72): 12, (640, 360): 4}
REPRO_BUILD = {"scenes": ("racing",), "sequences": 6, "frames": 4, "res": "64x36", "scale": 2.0, "spp": 8,
               "seed": 7}
"""``datagen build racing --sequences 6 --frames 4 --res 64x36 --scale 2 --spp 8 --seed 7``:
the build whose 4th sequence stalled on one frame (27-39 s at 64x36) under the driver's
anisotropic filtering."""


class BareLoop:
    """The renderer's GL work for one frame with nothing else: precomputed
    uniform bytes, the renderer's programs, vertex arrays and targets, driven
    through the renderer's per-pass API."""

    def __init__(self, r: Renderer, scene, frame_index: int = 0):
        self.r, c = r, r.config
        setup = r.prepare(scene, frame_index)
        cam, draws = setup.cam, setup.draws
        shadow = r.program(SHADOW_VS, SHADOW_FS)
        self.shadow = [self._call(shadow, d, {"u_mvp": d.matrices["u_mvp"]}) for d in draws]

        def surface_calls(variant, proj_raster, size, bias):
            calls = []
            for d in draw_order(draws, cam.view, blend=False):
                prog = r.surface_program(variant, d.node.material)
                r.set_lighting(prog, scene, size)
                set_uniform(prog, "u_mip_bias", bias)
                matrices = {**d.matrices, "u_mvp_raster": cv.gl_bytes(proj_raster @ cam.view @ d.model)}
                calls.append(self._call(prog, d, matrices))
            return calls

        lr_raster = cv.jittered(cam.proj, setup.jitter, c.lr_size)
        self.lr = surface_calls("GBUFFER", lr_raster, c.lr_size, cv.mip_bias(c.ratio[0]))
        self.samples = [surface_calls("COLOR", cv.jittered(cam.proj, tuple(o - 0.5), c.hr_size),
                                      c.hr_size, 0.0) for o in r.sample_offsets]
        self.md = surface_calls("MOTION_DEPTH", cam.proj, c.hr_size, 0.0)
        self.lr_cam, self.hr_cam = cam._replace(proj_raster=lr_raster), cam
        self.scene = scene

    def _call(self, prog, draw, matrices: dict[str, bytes]):
        """(vertex array, [(uniform, bytes)], textures) of one draw, resolved now."""
        named = uniforms(prog)
        vao = self.r.vertex_array(draw.node, prog)
        data = [(named[k], raw) for k, raw in matrices.items() if k in named]
        texture = draw.node.material.base_color_texture
        return vao, data, [self.r.texture(texture)] if texture is not None else []

    @staticmethod
    def _run(calls) -> None:
        for vao, data, textures in calls:
            for uniform, raw in data:
                uniform.write(raw)
            for t in textures:
                t.use(TEXTURE_UNITS["u_base_tex"])
            vao.render()

    def frame(self) -> None:
        r, ctx = self.r, self.r.ctx
        c = r.config
        ctx.enable(moderngl.DEPTH_TEST)
        r.fbo_shadow.use()
        r.fbo_shadow.clear(depth=1.0)
        self._run(self.shadow)
        r.shadow_map.use(TEXTURE_UNITS["u_shadow_map"])
        r.fbo_lr.use()
        r.fbo_lr.clear(depth=1.0)
        self._run(self.lr)
        r.draw_sky("GBUFFER", self.scene, self.lr_cam, c.lr_size)
        r.sky_average(self.scene, self.hr_cam, c.hr_size)
        batch = len(ACCUMULATE_UNITS)
        for start in range(0, len(self.samples), batch):
            group = self.samples[start:start + batch]
            for calls, fbo in zip(group, r.fbo_samples, strict=False):
                fbo.use()
                fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
                self._run(calls)
            r.sum_batch(start, len(group), len(self.samples))
        r.fbo_hr_md.use()
        r.fbo_hr_md.clear(depth=1.0)
        self._run(self.md)
        r.draw_sky("MOTION_DEPTH", self.scene, self.hr_cam, c.hr_size)
        for tex in [*r.lr_targets.values(), r.hr_color, r.hr_motion, r.hr_depth]:
            tex.read()


def bench_render(config: RenderConfig, frames: int) -> dict:
    """Renderer vs bare loop, frames interleaved so both see the same machine."""
    scene = generate("primitives", {}, 0)
    with Renderer(config) as r:
        bare = BareLoop(r, scene)
        r.render(scene, 0)  # warm-up: programs, vertex arrays, textures
        bare.frame()
        renderer_s = bare_s = 0.0
        for i in range(frames):
            start = time.perf_counter()
            r.render(scene, i)
            middle = time.perf_counter()
            bare.frame()
            renderer_s += middle - start
            bare_s += time.perf_counter() - middle
        gl = renderer_name(r.ctx)
    renderer_s, bare_s = renderer_s / frames, bare_s / frames
    return {
        "figure": "render_vs_bare",
        "what": f"LR+G-buffer+HR frames/s, primitives, {config.hr_width}x{config.hr_height} HR, "
                f"scale {config.scale:g}, {config.spp} spp",
        "frames_per_s": 1.0 / renderer_s,
        "seconds_per_frame": renderer_s,
        "reference": "bare moderngl loop of the same passes",
        "reference_frames_per_s": 1.0 / bare_s,
        "ratio": bare_s / renderer_s,
        "target_ratio": TARGETS["render_vs_bare"],
        "gl_renderer": gl,
    }


def lr_part_seconds(r: Renderer, scene, frame_index: int) -> float:
    """Wall seconds of the LR part of a frame of ``r`` (its primary ratio) alone: the LR
    G-buffer pass and its read-back, after an untimed shadow pass (what a frame of
    several ratios repeats per ratio)."""
    setup = r.prepare(scene, frame_index)
    r.ctx.enable(moderngl.DEPTH_TEST)
    r.ctx.depth_func = "<"
    r.shadow_pass(setup.draws)
    r.ctx.finish()
    start = time.perf_counter()
    r.lr_ratio(scene, setup, 0)
    return time.perf_counter() - start


def bench_multi_ratio(res: tuple[int, int] = (320, 180), frames: int = 4, spp: int = 16,
                      scales: tuple[float, ...] = MULTI_RATIO_SCALES) -> dict:
    """multi_ratio_vs_single: racing frames at ``scales`` from one Renderer
    (``render_ratios``) against one single-ratio Renderer per scale, frames interleaved
    so that all see the same machine, after an untimed warm-up frame each. All four share
    one GL context (GL calls go to the thread's current context, whichever Renderer makes
    them)."""
    from datagen.gl import create_context

    scene = generate("racing", {}, 0)
    base = RenderConfig(res[0], res[1], scales[0], spp, shadow_map_size=1024)
    ctx = create_context()
    multi = Renderer(dataclasses.replace(base, extra_scales=tuple(scales[1:])), ctx)
    singles = []
    try:
        singles += [Renderer(dataclasses.replace(base, scale=s), ctx) for s in scales]
        for r in (multi, *singles):
            r.render_ratios(scene, 0)
        multi_s, single_s, lr_s = 0.0, [0.0] * len(scales), [0.0] * len(scales)
        for i in range(1, frames + 1):
            start = time.perf_counter()
            multi.render_ratios(scene, i)
            multi_s += time.perf_counter() - start
            for k, r in enumerate(singles):
                start = time.perf_counter()
                r.render(scene, i)
                single_s[k] += time.perf_counter() - start
                lr_s[k] += lr_part_seconds(r, scene, i)
        gl = renderer_name(multi.ctx)
    finally:
        for r in (*singles, multi):
            r.close()
        ctx.release()
    multi_s, single_s, lr_s = multi_s / frames, [t / frames for t in single_s], [t / frames for t in lr_s]
    hr_s = sum(t - lr for t, lr in zip(single_s, lr_s, strict=True)) / len(scales)
    expected = (len(scales) * hr_s + sum(lr_s)) / (hr_s + sum(lr_s))
    names = ", ".join(f"{s:g}" for s in scales)
    return {
        "figure": "multi_ratio_vs_single",
        "what": f"racing frames at scales {names} from one Renderer (one HR reference, one LR G-buffer per "
                f"ratio), {res[0]}x{res[1]} HR, {spp} spp, {frames} frames",
        "frames_per_s": 1.0 / multi_s,
        "seconds_per_frame": multi_s,
        "reference": f"the same frames from {len(scales)} single-ratio Renderers (one HR reference each)",
        "reference_frames_per_s": 1.0 / sum(single_s),
        "ratio": sum(single_s) / multi_s,
        "expected_ratio": expected,
        "target": f"~ {expected:.2f} = {len(scales)} (HR + LR) / (HR + {len(scales)} LR)",
        "hr_part_s": hr_s,
        "lr_part_s": dict(zip([f"{s:g}" for s in scales], lr_s, strict=True)),
        "single_s": dict(zip([f"{s:g}" for s in scales], single_s, strict=True)),
        "gl_renderer": gl,
    }


def sequence_frame_times(renderer: Renderer, scene, frames: int) -> list[tuple[float, float]]:
    """(CPU seconds, wall seconds) of frames 0 .. frames-1 of ``scene``, after an untimed
    render of frame 0 (scene upload and shader compiles are once per scene, not per
    frame). CPU time is the process's, llvmpipe's threads included: on a shared machine
    it does not count other processes' load, as wall time does."""
    renderer.render(scene, 0)
    times = []
    for i in range(frames):
        cpu, wall = time.process_time(), time.perf_counter()
        renderer.render(scene, i)
        times.append((time.process_time() - cpu, time.perf_counter() - wall))
    return times


def spread_row(label: str, size: tuple[int, int], times: list[tuple[float, float]]) -> dict:
    """One sequence's figures: median and slowest frame, their ratio (CPU and wall)."""
    import numpy as np

    cpu, wall = np.array([c for c, _ in times]), np.array([w for _, w in times])
    return {"sequence": label, "res": f"{size[0]}x{size[1]}", "frames": len(times),
            "median_cpu_s": float(np.median(cpu)), "max_cpu_s": float(cpu.max()),
            "slowest_frame": int(cpu.argmax()), "spread": float(cpu.max() / np.median(cpu)),
            "spread_wall": float(wall.max() / np.median(wall))}


def bench_frame_spread(quick: bool = False, progress: Callable[[str], None] = lambda _: None) -> dict:
    """frame_time_spread: every scene of ``SPREAD_SCENES`` at every size of
    ``SPREAD_FRAMES`` (one sequence each: the default build recipe's first, with its
    varied parameters and stride), plus every sequence of ``REPRO_BUILD``."""
    from datagen.pipeline.plan import load_config, plan
    from datagen.pipeline.worker import sequence_scene

    rows = []
    for size, frames in (SPREAD_FRAMES_QUICK if quick else SPREAD_FRAMES).items():
        res = f"{size[0]}x{size[1]}"
        config = load_config(None, scenes=SPREAD_SCENES, sequences=1, frames=frames, res=res, spp=16)
        with Renderer(config.render_config()) as r:
            for task in plan(config):
                progress(f"frame_time_spread: {task.scene} at {res}, {frames} frames ...")
                rows.append(spread_row(task.scene, size, sequence_frame_times(r, sequence_scene(task)[1],
                                                                                 frames)))
    repro = load_config(None, **REPRO_BUILD)
    progress("frame_time_spread: the 64x36 racing build of seed 7 ...")
    with Renderer(repro.render_config()) as r:
        for task in plan(repro):
            rows.append(spread_row(f"repro {task.split} {task.index}", repro.render_size,
                                   sequence_frame_times(r, sequence_scene(task)[1], repro.frames)))
    worst = max(rows, key=lambda row: row["spread"])
    return {
        "figure": "frame_time_spread",
        "what": "per sequence: the slowest frame's CPU time over the median frame's (LR G-buffer + 16-spp "
                "HR, scale 2, after an untimed warm-up frame); every scene at "
                + ", ".join(f"{w}x{h} ({n} frames)" for (w, h), n in
                            (SPREAD_FRAMES_QUICK if quick else SPREAD_FRAMES).items())
                + "; and each sequence of `datagen build racing --sequences 6 --frames 4 --res 64x36 "
                  "--scale 2 --spp 8 --seed 7`",
        "seconds_per_frame": worst["max_cpu_s"],
        "reference": "the median frame of the same sequence",
        "reference_seconds_per_frame": worst["median_cpu_s"],
        "ratio": worst["spread"],
        "worst": f"{worst['sequence']} at {worst['res']}, frame {worst['slowest_frame']}",
        "target_ratio": TARGETS["frame_time_spread"],
        "target": f"ratio <= {TARGETS['frame_time_spread']:g}",
        "rows": rows,
    }


SCENE_RATIO_SCENES = ("primitives", "racing", "city", "forest")
SCENE_RATIO_RES = {False: ((1920, 1080), 3), True: ((960, 540), 2)}
"""(HR size, frames) of ``scene_vs_primitives``, full and ``--quick``."""
PASSES = ("shadow", "lr_gbuffer", "hr_samples", "hr_motion_depth", "read_back")


def draw_counts(setup) -> dict:
    """Draws of a frame (``Renderer.prepare``) by kind, and their triangles."""
    modes = [d.node.material.alpha_mode for d in setup.draws]
    masked = [d for d in setup.draws if d.node.material.alpha_mode == "MASK"]
    return {"draws": len(modes), "triangles": sum(len(d.node.mesh.indices) for d in setup.draws),
            "masked_draws": len(masked), "masked_triangles": sum(len(d.node.mesh.indices) for d in masked),
            "blended_draws": modes.count("BLEND")}


def pass_cpu_seconds(r: Renderer, scene, frame_index: int) -> dict[str, float]:
    """CPU seconds (this process, llvmpipe's threads included) of each pass of one
    ``Renderer.render`` frame, with ``ctx.finish()`` closing each: the same passes in
    the same order as ``Renderer._render`` at the primary ratio."""
    times, clock = {}, time.process_time()

    def done(name: str) -> None:
        nonlocal clock
        r.ctx.finish()
        now = time.process_time()
        times[name], clock = now - clock, now

    setup = r.prepare(scene, frame_index)
    r.ctx.enable(moderngl.DEPTH_TEST)
    r.ctx.depth_func = "<"
    r.shadow_pass(setup.draws)
    done("shadow")
    r.lr_ratio(scene, setup, 0)  # the LR G-buffer pass and its read-back
    done("lr_gbuffer")
    r.hr_reference(scene, setup.draws, setup.cam)
    done("hr_samples")
    r.hr_motion_depth(scene, setup.draws, setup.cam)
    done("hr_motion_depth")
    r.read_hr()
    done("read_back")
    return times


@contextlib.contextmanager
def _scene_renderers(names: tuple[str, ...], size: tuple[int, int], frames: int):
    """(scenes, renderers) by scene name: the default build recipe's first sequence of each
    of ``names`` (``frames`` frames at ``size``, 16 spp), one Renderer each on one shared
    context, each scene's frame 0 already rendered (upload, shader compiles: untimed);
    everything released on the way out."""
    from datagen.gl import create_context
    from datagen.pipeline.plan import load_config, plan
    from datagen.pipeline.worker import sequence_scene

    config = load_config(None, scenes=names, sequences=1, frames=frames, res=f"{size[0]}x{size[1]}", spp=16)
    scenes = {task.scene: sequence_scene(task)[1] for task in plan(config)}
    ctx = create_context()
    renderers = {name: Renderer(config.render_config(), ctx) for name in scenes}
    try:
        for name, scene in scenes.items():
            renderers[name].render(scene, 0)
        yield scenes, renderers
    finally:
        for r in renderers.values():
            r.close()
        ctx.release()


def bench_scene_vs_primitives(quick: bool = False, progress: Callable[[str], None] = lambda _: None,
                              size: tuple[int, int] | None = None, frames: int | None = None) -> dict:
    """scene_vs_primitives: per scene of ``SCENE_RATIO_SCENES`` (the default build
    recipe's first sequence of each), the median CPU seconds of a ``Renderer.render``
    frame over ``primitives``'; frames interleaved across scenes (one Renderer each, one
    shared context) so that every scene sees the same machine. Per-pass CPU seconds
    (``pass_cpu_seconds``) and draw counts come with each row."""
    import numpy as np

    default_size, default_frames = SCENE_RATIO_RES[quick]
    size, frames = size or default_size, frames or default_frames
    res = f"{size[0]}x{size[1]}"
    progress(f"scene_vs_primitives: {', '.join(SCENE_RATIO_SCENES)} at {res}, {frames} frames, "
             "interleaved ...")
    with _scene_renderers(SCENE_RATIO_SCENES, size, frames) as (scenes, renderers):
        cpu = {name: [] for name in scenes}
        wall = {name: [] for name in scenes}
        passes = {name: {p: [] for p in PASSES} for name in scenes}
        for i in range(frames):
            for name, scene in scenes.items():
                c, w = time.process_time(), time.perf_counter()
                renderers[name].render(scene, i)
                renderers[name].ctx.finish()
                cpu[name].append(time.process_time() - c)
                wall[name].append(time.perf_counter() - w)
                for p, s in pass_cpu_seconds(renderers[name], scene, i).items():
                    passes[name][p].append(s)
        counts = {name: draw_counts(renderers[name].prepare(scene, 0)) for name, scene in scenes.items()}
    base, base_wall = float(np.median(cpu["primitives"])), float(np.median(wall["primitives"]))
    rows = [{"scene": name, "median_cpu_s": float(np.median(cpu[name])),
             "ratio": float(np.median(cpu[name])) / base,
             "ratio_wall": float(np.median(wall[name])) / base_wall,
             "pass_cpu_s": {p: float(np.median(v)) for p, v in passes[name].items()}, **counts[name]}
            for name in scenes]
    worst = max(rows, key=lambda row: row["ratio"])
    return {
        "figure": "scene_vs_primitives",
        "what": f"per scene: median CPU seconds of a frame (LR G-buffer + 16-spp HR, scale 2, {res} HR, "
                f"{frames} frames interleaved across scenes, after an untimed warm-up) over primitives'",
        "seconds_per_frame": worst["median_cpu_s"],
        "reference": "the primitives frame in the same run",
        "reference_seconds_per_frame": base,
        "ratio": worst["ratio"],
        "worst": worst["scene"],
        "target": "ratio <= 2",
        "rows": rows,
    }


def forest_without_cards(size: tuple[int, int] = (1920, 1080), frames: int = 3) -> dict:
    """What forest's HR sample passes would cost if its alpha-tested cards cost nothing:
    median CPU seconds of the 16 HR sample passes (shadow map drawn first, untimed) of
    frames 1.. ``frames`` of the scene_vs_primitives sequences, each variant interleaved
    on one shared context: ``primitives`` whole, ``forest`` whole, ``forest`` without its
    alpha-tested (MASK) draws, and ``forest`` with no draw (the passes' fixed work:
    clears, sky, accumulation)."""
    import numpy as np

    variants = {"primitives": ("primitives", lambda d: True), "forest": ("forest", lambda d: True),
                "forest_no_alpha_tested": ("forest", lambda d: d.node.material.alpha_mode != "MASK"),
                "forest_no_draws": ("forest", lambda d: False)}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    with _scene_renderers(("primitives", "forest"), size, frames + 1) as (scenes, renderers):
        for i in range(1, frames + 1):
            for variant, (name, keep) in variants.items():
                r, scene = renderers[name], scenes[name]
                setup = r.prepare(scene, i)
                r.ctx.enable(moderngl.DEPTH_TEST)
                r.ctx.depth_func = "<"
                r.shadow_pass(setup.draws)
                r.ctx.finish()
                clock = time.process_time()
                r.hr_reference(scene, [d for d in setup.draws if keep(d)], setup.cam)
                r.ctx.finish()
                seconds[variant].append(time.process_time() - clock)
    medians = {name: float(np.median(v)) for name, v in seconds.items()}
    return {"hr_samples_cpu_s": medians,
            "over_primitives": {name: v / medians["primitives"] for name, v in medians.items()}}


def depth_prepass_cost(names=SCENE_RATIO_SCENES, size: tuple[int, int] = (960, 540), frames: int = 3) -> dict:
    """Per scene of ``names`` (``generate(name, {}, 0)``): the median CPU seconds of the
    HR sample passes (``pass_cpu_seconds``) with ``Scene.depth_prepass`` over without,
    frames 1.. ``frames`` of both interleaved (in turn first) on one Renderer each."""
    import numpy as np

    from datagen.gl import create_context

    rows = {}
    for name in names:
        scene = generate(name, {}, 0)
        variants = {on: dataclasses.replace(scene, depth_prepass=on) for on in (False, True)}
        ctx = create_context()
        renderers = {on: Renderer(RenderConfig(size[0], size[1], 2.0, 16), ctx) for on in variants}
        try:
            seconds = {on: [] for on in variants}
            for on, r in renderers.items():
                r.render(variants[on], 0)  # untimed: upload, shader compiles
            for i in range(1, frames + 1):
                for on in (False, True) if i % 2 else (True, False):
                    seconds[on].append(pass_cpu_seconds(renderers[on], variants[on], i)["hr_samples"])
        finally:
            for r in renderers.values():
                r.close()
            ctx.release()
        without, with_ = float(np.median(seconds[False])), float(np.median(seconds[True]))
        rows[name] = {"hr_samples_cpu_s_without": without, "hr_samples_cpu_s_with": with_,
                      "ratio": with_ / without}
    return rows


def depth_prepass_check(name: str, size: tuple[int, int] = (480, 270), frame: int = 1,
                        png: str | None = None) -> dict:
    """What ``Scene.depth_prepass`` changes in the HR reference of frame ``frame`` of
    ``generate(name, {}, 0)`` (16 spp): the PSNR (dB, of ``images.display_values``)
    and the pixels that differ, with the pre-pass against without, beside the same
    between two references without it whose sample patterns differ (sample seeds 0 and
    1): the reference's own sampling noise. With ``png``, a picture: the frame without
    and with it, then each pair's absolute difference times 16."""
    import numpy as np

    from datagen.images import contact_sheet, display_values

    scene = generate(name, {}, 0)
    frames = {}
    for label, prepass, seed in (("without", False, 0), ("with", True, 0), ("seed 1", False, 1)):
        config = RenderConfig(size[0], size[1], 2.0, 16, sample_seed=seed)
        with Renderer(config) as r:
            frames[label] = display_values(
                r.render(dataclasses.replace(scene, depth_prepass=prepass), frame).color_hr)

    def compare(a: str, b: str) -> dict:
        diff = frames[a] - frames[b]
        mse = float(np.mean(np.square(diff, dtype=np.float64)))
        return {"psnr_db": float("inf") if mse == 0 else float(-10 * np.log10(mse)),
                "pixels_differ": int(np.any(diff != 0, axis=-1).sum())}

    result = {"scene": name, "size": list(size), "frame": frame, "pixels": size[0] * size[1],
              "with_vs_without": compare("with", "without"),
              "seed1_vs_seed0": compare("seed 1", "without")}
    if png is not None:
        import imageio.v3 as iio

        def u8(x: np.ndarray) -> np.ndarray:  # as images.tonemap rounds
            return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)

        tiles = [u8(frames["without"]), u8(frames["with"]),
                 u8(16 * np.abs(frames["with"] - frames["without"])),
                 u8(16 * np.abs(frames["seed 1"] - frames["without"]))]
        labels = ["without pre-pass", "with pre-pass", "|with - without| x16", "|seed 1 - seed 0| x16"]
        iio.imwrite(png, contact_sheet(tiles, labels, cols=2), optimize=True)
    return result


def _render_alone(tasks, results, config, lp_threads: str) -> None:
    """In a spawned process: take sequence tasks from the ``tasks`` queue until None,
    render each with this process's one Renderer and keep nothing; put (start, end) on
    the system-wide monotonic clock, from before the context is made to the last
    frame, and the frame count on ``results``."""
    os.environ["LP_NUM_THREADS"] = lp_threads  # as the build's workers get it
    from datagen.pipeline.worker import sequence_scene

    start, cpu, frames = time.monotonic(), time.process_time(), 0
    with Renderer(config.render_config()) as r:
        while (task := tasks.get()) is not None:
            _, scene = sequence_scene(task)
            for i in range(config.frames):
                r.render(scene, i)
            frames += config.frames
    results.put((start, time.monotonic(), frames, time.process_time() - cpu))


def render_alone_seconds(config, tasks: list, workers: int, lp_threads: str) -> tuple[float, float]:
    """(wall seconds, CPU-seconds) for ``workers`` plain processes to render ``tasks``,
    dealt from one queue as Dask deals them to free workers (process start-up not
    counted)."""
    import multiprocessing
    import queue

    ctx = multiprocessing.get_context("spawn")
    todo, results = ctx.Queue(), ctx.Queue()
    for task in [*tasks, *[None] * workers]:
        todo.put(task)
    procs = [ctx.Process(target=_render_alone, args=(todo, results, config, lp_threads))
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    spans = []
    try:
        while len(spans) < workers:
            try:
                spans.append(results.get(timeout=1.0))
            except queue.Empty:
                dead = [proc.exitcode for proc in procs if proc.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"a render-alone process died (exit {dead[0]})") from None
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return (max(end for _, end, _, _ in spans) - min(start for start, _, _, _ in spans),
            sum(cpu for *_, cpu in spans))


def bench_build(tmp: str, quick: bool, workers: int = 2, config=None) -> dict:
    """End-to-end ``build`` into a temp store vs the same frames rendered alone by
    ``workers`` plain processes; alternated ``rounds`` times (the fastest of each
    side kept), since a shared machine's load drifts over a minute. ``config`` (a
    BuildConfig) replaces the racing build, e.g. in tests."""
    import shutil
    from pathlib import Path

    from datagen.pipeline.build import build, local_cluster_env, quiet_dask_logs
    from datagen.pipeline.plan import BuildConfig, plan
    from datagen.pipeline.worker import ThreadCpuReport

    quiet_dask_logs()
    config = config or BuildConfig(scenes=("racing",), sequences=2 if quick else 4,
                                   frames=3 if quick else 12, res="320x180" if quick else "640x360",
                                   spp=16, workers=workers)
    workers = config.workers or workers
    tasks = plan(config)
    frames = len(tasks) * config.frames
    lp = local_cluster_env(workers)["LP_NUM_THREADS"]
    out = Path(tmp) / "bench-build.zarr"
    rounds = 1 if quick else 2
    render_s, render_cpu, builds, build_cpu, parts = [], [], [], [], []
    for i in range(rounds):
        wall, cpu = render_alone_seconds(config, tasks, workers, lp)
        render_s.append(wall)
        render_cpu.append(cpu)
        shutil.rmtree(out, ignore_errors=True)
        up: dict[str, float] = {}
        reports = Path(tmp) / f"worker-cpu-{i}"
        reports.mkdir(exist_ok=True)
        cpu = _cpu_with_children()
        start = time.perf_counter()
        summary = build(config, out, on_cluster=lambda _, up=up: up.setdefault("at", time.perf_counter()),
                        plugins=(ThreadCpuReport(str(reports)),))
        builds.append((time.perf_counter() - start, up["at"] - start))
        build_cpu.append(_cpu_with_children() - cpu)
        parts.append(_build_cpu_parts(reports, build_cpu[-1]))
        if summary.frames != frames:
            raise RuntimeError(f"bench build rendered {summary.frames} frames, expected {frames}")
    build_s, startup_s = min(builds)
    ref_s = min(render_s)
    cheapest = parts[build_cpu.index(min(build_cpu))]
    return {
        "figure": "build_vs_render",
        "what": f"datagen build end to end: {'+'.join(config.scenes)}, {len(tasks)} sequences x "
                f"{config.frames} frames, {cv.format_size(config.res)} HR, scale {config.scale:g}, "
                f"{config.spp} spp, LocalCluster of {workers} worker processes (LP_NUM_THREADS={lp} each), "
                "into a temp store",
        "frames_per_s": frames / build_s,
        "seconds": build_s,
        "cluster_startup_s": startup_s,
        "frames_per_s_after_startup": frames / (build_s - startup_s),
        "reference": f"the same frames rendered by {workers} plain processes from one task queue (one "
                     "Renderer each, no Dask, no store), from context creation to the last frame",
        "reference_frames_per_s": frames / ref_s,
        "reference_seconds": ref_s,
        "ratio": ref_s / build_s,
        "ratio_after_startup": ref_s / (build_s - startup_s),
        "target_ratio": TARGETS["build_vs_render"],
        "cpu_seconds": min(build_cpu),
        "reference_cpu_seconds": min(render_cpu),
        "cpu_ratio": min(render_cpu) / min(build_cpu),
        "build_cpu_parts": cheapest,
        "rendering_share": cheapest["rendering"] / min(build_cpu),
        "rounds": {"build_s": [b for b, _ in builds], "render_alone_s": render_s,
                   "build_cpu_s": build_cpu, "render_alone_cpu_s": render_cpu},
    }


def _build_cpu_parts(reports, build_cpu: float) -> dict[str, float]:
    """A build's CPU-seconds by part, from its workers' ``ThreadCpuReport`` files:
    rendering (llvmpipe's threads and the task thread), tensorstore's threads (the
    pixel writes), the rest of the workers (Dask, the writer thread, zarr-python),
    and outside the workers (the client's Dask and store creation, the forkserver,
    the GL probe)."""
    import json

    workers = [json.loads(f.read_text()) for f in sorted(reports.glob("*.json"))]
    if not workers:
        raise RuntimeError("bench build: no worker CPU report came back")
    rendering = sum(w["gl"] + w["task"] for w in workers)
    total = sum(w["total"] for w in workers)
    store = sum(w["tensorstore"] for w in workers)
    return {"rendering": rendering, "tensorstore": store, "workers_rest": total - rendering - store,
            "outside_workers": build_cpu - total, "workers": len(workers)}


def _cpu_with_children() -> float:
    """CPU-seconds of this process and of its children that have ended (the build's
    worker processes and probes): what ``cpu_ratio`` counts, since other processes'
    load on a shared machine does not enter it."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def training_figures(quick: bool, progress: Callable[[str], None]) -> list[dict]:
    """The datagen.train figures (inference ms per HR frame, train step time and data
    wait); one figure saying why they are missing where torch is not installed."""
    try:
        from datagen.train.bench import bench_training
    except ImportError as exc:
        return [{"figure": "training",
                 "skipped": f"torch is not installed ({exc}); pip install -e '.[train]'"}]
    progress("model inference per HR frame, train step time and data wait ...")
    return bench_training(quick)


def run_bench(quick: bool = False, progress: Callable[[str], None] = lambda _: None) -> dict:
    """Every figure available in this version, as a JSON-ready dict."""
    config = RenderConfig(960, 540, 2.0, 16) if quick else RenderConfig(1920, 1080, 2.0, 16)
    frames = 2 if quick else 4
    progress(f"render vs bare loop at {config.hr_width}x{config.hr_height}, {frames} frames ...")
    figures = [bench_render(config, frames)]
    figures.append(bench_frame_spread(quick, progress))
    figures.append(bench_scene_vs_primitives(quick, progress))
    progress("one HR reference for 3 ratios against 3 single-ratio renders (racing, 320x180) ...")
    figures.append(bench_multi_ratio(frames=2 if quick else 6))
    progress("store write/read/crop against the bare codec ...")
    with tempfile.TemporaryDirectory(prefix="datagen-bench-") as tmp:
        figures += bench_store(tmp, quick)
        progress("store reads from S3 (moto on 127.0.0.1, or DATAGEN_BENCH_S3) against local disk ...")
        figures.append(s3_read_figure(quick))
        progress("build end to end (2-worker LocalCluster, racing) against render alone ...")
        figures.append(bench_build(tmp, quick))
    figures += training_figures(quick, progress)
    return {
        "datagen_version": __version__,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "lp_num_threads": os.environ.get("LP_NUM_THREADS")},
        "quick": quick,
        "figures": figures,
    }


def rendered_frames(hr_size: tuple[int, int], scale: float, count: int, spp: int = 8) -> list:
    """Frames of the ``primitives`` scene, for measuring store layouts on real pixels."""
    scene = generate("primitives", {}, 0)
    with Renderer(RenderConfig(hr_size[0], hr_size[1], scale, spp)) as renderer:
        return [renderer.render(scene, t) for t in range(count)]


if __name__ == "__main__":  # the store layout table (datagen.store.measure) on rendered frames
    from datagen.store.measure import main

    main(render_frames=rendered_frames)
