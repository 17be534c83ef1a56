"""Headless OpenGL contexts: EGL on NVIDIA (GPU) or Mesa llvmpipe (CPU)."""

from __future__ import annotations

import logging
import os

import moderngl

from datagen.errors import GLUnavailableError

log = logging.getLogger(__name__)

MESA_HINT = (
    "install Mesa's EGL and software rasteriser: "
    "`apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri` (Debian/Ubuntu), "
    "or run on a machine with the NVIDIA driver"
)


def create_context() -> moderngl.Context:
    """A standalone EGL context with OpenGL >= 3.3, or GLUnavailableError.

    llvmpipe's thread count comes from LP_NUM_THREADS (read by Mesa when the
    context is made); callers that share cores, like Dask workers, set it first.
    """
    try:
        ctx = moderngl.create_context(standalone=True, backend="egl", require=330)
    except Exception as exc:  # moderngl raises bare Exceptions for missing libraries
        raise GLUnavailableError(f"no headless OpenGL context ({exc}); {MESA_HINT}") from exc
    log.info(
        "GL context: %s, GL %s, LP_NUM_THREADS=%s",
        ctx.info["GL_RENDERER"], ctx.version_code, os.environ.get("LP_NUM_THREADS", "default"),
    )
    return ctx


def renderer_name(ctx: moderngl.Context) -> str:
    return str(ctx.info["GL_RENDERER"])


def max_target_size(ctx: moderngl.Context) -> int:
    """The largest width and height of a render target this context can make: the least of
    its texture, renderbuffer, viewport and framebuffer limits (16384 on llvmpipe)."""
    info = ctx.info
    limits = [info["GL_MAX_TEXTURE_SIZE"], info["GL_MAX_RENDERBUFFER_SIZE"], *info["GL_MAX_VIEWPORT_DIMS"]]
    limits += [info[k] for k in ("GL_MAX_FRAMEBUFFER_WIDTH", "GL_MAX_FRAMEBUFFER_HEIGHT") if info.get(k)]
    return int(min(limits))


def probe_max_target_size() -> int:
    """``max_target_size`` of a throwaway context: for a process that renders nothing itself
    (``python -m datagen.gl`` prints it, so that a parent never holds a context)."""
    ctx = create_context()
    try:
        return max_target_size(ctx)
    finally:
        ctx.release()


if __name__ == "__main__":
    print(probe_max_target_size())
