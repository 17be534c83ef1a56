"""The one-screen table `datagen bench` prints, on a real (tiny) render figure."""

from __future__ import annotations

from datagen.bench import bench_render
from datagen.bench_report import summary_table
from datagen.render import RenderConfig


def test_summary_table_has_a_row_per_figure_with_value_ratio_and_target():
    figure = bench_render(RenderConfig(48, 27, 3.0, 8), frames=1)
    result = {"datagen_version": "0.1.0", "machine": {"processor": "cpu-x", "cpus": 2, "platform": "linux"},
              "figures": [figure, {"figure": "training", "skipped": "torch is not installed"},
                          {"figure": "store_write", "mb_per_s": 123.4, "ratio": 0.5,
                           "reference": {"what": "bare compressor", "mb_per_s": 246.8}}]}
    lines = summary_table(result).splitlines()
    assert "cpu-x" in lines[0] and "2 CPUs" in lines[0]
    assert lines[1].split() == ["figure", "value", "reference", "ratio", "target"]
    render = next(line for line in lines if line.startswith("render_vs_bare"))
    assert f"{figure['ratio']:.2f}" in render and ">= 0.85" in render
    assert f"{figure['frames_per_s']:.3g} frames/s" in render
    store = next(line for line in lines if line.startswith("store_write"))
    assert "123 MB/s" in store and "247 MB/s" in store and "0.50" in store
    assert "skipped" in next(line for line in lines if line.startswith("training"))
    assert len(lines) == 3 + 3  # title, header, rule, one row per figure
