"""Dask workers release their GL context: ``worker.RendererPlugin``, registered by the
build on every worker, closes the cached Renderer on the worker's task thread when the
plugin is removed and when the worker process shuts down (a real LocalCluster of one
spawned worker process; GL only inside the worker)."""

from __future__ import annotations

import logging
import os
import sys

import cloudpickle

from datagen.pipeline.build import _register_plugins

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the worker cannot import tests/


def _log_to(path: str) -> None:
    """In the worker: datagen.pipeline.worker's INFO lines go to ``path`` too."""
    logger = logging.getLogger("datagen.pipeline.worker")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(process)d %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _render_one() -> int:
    """In the worker: render a frame with the process's cached Renderer; keep a handle on it."""
    from datagen.pipeline import worker
    from datagen.render import RenderConfig
    from datagen.scenes import generate

    renderer = worker._renderer(RenderConfig(16, 9, 2.0, 1, shadow_map_size=64))
    renderer.render(generate("primitives", {}, 0), 0)
    worker._probe = renderer  # test-only handle: the cache drops its reference on close
    return os.getpid()


def _state() -> tuple[bool, bool]:
    """In the worker: (a Renderer is cached, the probed one is closed)."""
    from datagen.pipeline import worker

    return worker._cache["renderer"] is not None, worker._probe._closed


def test_renderer_is_closed_on_plugin_removal_and_worker_shutdown(tmp_path):
    from distributed import Client, LocalCluster

    log = tmp_path / "worker.log"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR, env={"LP_NUM_THREADS": "1"}) as cluster, \
            Client(cluster) as client:
        _register_plugins(client)
        client.run(_log_to, str(log))
        pid = client.submit(_render_one, pure=False).result()
        assert pid != os.getpid()
        assert list(client.run(_state).values()) == [(True, False)]
        client.unregister_worker_plugin("datagen-renderer")  # its teardown runs now
        assert list(client.run(_state).values()) == [(False, True)]
        _register_plugins(client)
        client.submit(_render_one, pure=False).result()  # a new Renderer, closed at shutdown below
        assert list(client.run(_state).values()) == [(True, False)]
    lines = [line for line in log.read_text().splitlines() if "closed its Renderer and GL context" in line]
    assert lines == [f"{pid} worker {pid}: closed its Renderer and GL context"] * 2, log.read_text()
