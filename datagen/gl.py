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
