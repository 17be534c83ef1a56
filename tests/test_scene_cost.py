"""``datagen bench`` figure scene_vs_primitives on a real (tiny) render: a row per scene
with its frame time over primitives', per-pass CPU seconds and draw counts. Speed itself
is the bench's (docs/benchmarks.md); here only what the figure reports is checked."""

from __future__ import annotations

import numpy as np

from datagen.bench import (
    PASSES,
    SCENE_RATIO_SCENES,
    bench_scene_vs_primitives,
    depth_prepass_check,
    depth_prepass_cost,
    forest_without_cards,
    pass_cpu_seconds,
)
from datagen.bench_report import summary_table
from datagen.render import RenderConfig, Renderer
from datagen.scenes import generate


def test_scene_vs_primitives_figure_has_a_row_per_scene_with_passes_and_draw_counts():
    figure = bench_scene_vs_primitives(size=(64, 36), frames=1)
    rows = {row["scene"]: row for row in figure["rows"]}
    assert tuple(rows) == SCENE_RATIO_SCENES
    assert rows["primitives"]["ratio"] == 1.0
    assert figure["ratio"] == max(row["ratio"] for row in rows.values())
    for row in rows.values():
        assert set(row["pass_cpu_s"]) == set(PASSES)
        assert all(s >= 0 for s in row["pass_cpu_s"].values())
        assert row["median_cpu_s"] > 0 and row["draws"] > 0 and row["triangles"] > 0
    assert rows["primitives"]["masked_draws"] == rows["primitives"]["blended_draws"] == 0
    assert rows["forest"]["masked_draws"] > 0 and rows["racing"]["blended_draws"] > 0
    assert "scene_vs_primitives" in summary_table({"figures": [figure]})


def test_timing_the_passes_one_by_one_leaves_the_frame_unchanged():
    scene = generate("racing", {}, 0)
    with Renderer(RenderConfig(64, 36, 2.0, 2)) as r:
        before = r.render(scene, 1)
        pass_cpu_seconds(r, scene, 1)
        after = r.render(scene, 1)
    for name in ("color_hr", "depth_hr", "motion_hr", "color_lr", "object_id_lr"):
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name))


def test_depth_prepass_check_compares_against_the_sampling_noise(tmp_path):
    png = tmp_path / "check.png"
    result = depth_prepass_check("primitives", (48, 27), 1, str(png))
    assert result["with_vs_without"] == {"psnr_db": float("inf"), "pixels_differ": 0}  # no depth ties
    assert 0 < result["seed1_vs_seed0"]["pixels_differ"] <= result["pixels"] == 48 * 27
    assert 20 < result["seed1_vs_seed0"]["psnr_db"] < 80
    assert png.stat().st_size > 0


def test_depth_prepass_cost_times_the_hr_samples_with_and_without():
    rows = depth_prepass_cost(("primitives",), (32, 18), 2)
    row = rows["primitives"]
    assert row["hr_samples_cpu_s_without"] > 0 and row["hr_samples_cpu_s_with"] > 0
    assert row["ratio"] == row["hr_samples_cpu_s_with"] / row["hr_samples_cpu_s_without"]


def test_forest_without_cards_times_forest_with_fewer_draws():
    """Dropping forest's alpha-tested cards, then every draw, leaves less to render; the
    passes with no draw still cost something (clears, sky, accumulation)."""
    figure = forest_without_cards((128, 72), 2)
    cpu = figure["hr_samples_cpu_s"]
    assert set(cpu) == {"primitives", "forest", "forest_no_alpha_tested", "forest_no_draws"}
    assert cpu["forest"] > cpu["forest_no_alpha_tested"] > cpu["forest_no_draws"] > 0
    assert figure["over_primitives"]["primitives"] == 1.0
