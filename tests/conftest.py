"""Shared fixtures: one real headless GL context for the whole session.

Without a context the GL tests skip, unless ``DATAGEN_REQUIRE_GL=1`` (set by
``make test``), in which case they fail with the reason. Every GL test ends by
checking ``ctx.error``.
"""

from __future__ import annotations

import os
import signal

# llvmpipe reads its thread count when the context is made; keep tests polite.
os.environ.setdefault("LP_NUM_THREADS", "1")

import pytest  # noqa: E402

# A CI runner may start the suite with SIGINT ignored (a non-interactive shell starts
# background jobs so), and every process inherits that across exec, so `datagen` run by
# the Ctrl-C tests would never see the signal. Handled here, children get the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def gl_session_ctx():
    """The session's moderngl context (EGL: NVIDIA or Mesa llvmpipe)."""
    from datagen.gl import create_context

    try:
        ctx = create_context()
    except Exception as exc:  # GLUnavailableError, or anything a broken driver raises
        if os.environ.get("DATAGEN_REQUIRE_GL") == "1":
            pytest.fail(f"DATAGEN_REQUIRE_GL=1 but no GL context could be created: {exc}")
        pytest.skip(f"no headless GL context: {exc}")
    yield ctx
    ctx.release()


@pytest.fixture
def gl_ctx(gl_session_ctx):
    """The shared context, made current for this test; asserts GL_NO_ERROR afterwards."""
    ctx = gl_session_ctx
    ctx.__enter__()  # make current: another test may have made a context of its own current
    stale = ctx.error
    yield ctx
    error = ctx.error
    ctx.__exit__(None, None, None)
    assert stale == "GL_NO_ERROR", f"GL error left over before this test: {stale}"
    assert error == "GL_NO_ERROR", f"GL error after this test: {error}"


@pytest.fixture
def make_renderer(gl_ctx):
    """Factory ``make_renderer(hr=(W, H), scale=2.0, spp=1, **RenderConfig fields)``:
    a Renderer on the shared context, closed after the test (before the error check)."""
    from datagen.render import RenderConfig, Renderer

    made = []

    def make(hr: tuple[int, int] = (32, 18), scale: float = 2.0, spp: int = 1, **fields) -> Renderer:
        fields.setdefault("shadow_map_size", 256)
        config = RenderConfig(hr_width=hr[0], hr_height=hr[1], scale=scale, spp=spp, **fields)
        renderer = Renderer(config, ctx=gl_ctx)
        made.append(renderer)
        return renderer

    yield make
    for renderer in reversed(made):
        renderer.close()


@pytest.fixture
def mounted(tmp_path):
    """mounted(dir, *mount options) mounts on dir (skips where mounting is not allowed);
    everything is unmounted after the test."""
    import subprocess

    from store_helpers import mount

    made = []

    def do(target, *args: str):
        target.mkdir(exist_ok=True)
        mount(*args, str(target))
        made.append(target)
        return target

    yield do
    for target in reversed(made):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 for the session (stopped afterwards)."""
    from s3_helpers import start_moto, stop_moto

    server = start_moto()
    yield server
    stop_moto(server)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """This process (and the processes it starts) pointed at the moto server through
    the standard AWS variables; yields the server."""
    from datagen.store import location

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    location.forget_settings()
    yield s3_server
    location.forget_settings()
