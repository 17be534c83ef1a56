"""A one-screen summary of a ``datagen bench`` result: one row per figure with its
measured value, its reference, their ratio and the target. The full JSON goes to
``--out``; this is what the terminal shows."""

from __future__ import annotations

VALUE_KEYS = (  # (key, unit) in order of preference: the figure's headline value
    ("frames_per_s", "frames/s"), ("mb_per_s", "MB/s"), ("samples_per_s", "samples/s"),
    ("ms_per_frame", "ms/frame"), ("seconds_per_step", "s/step"), ("mib", "MiB"),
    ("seconds_per_frame", "s/frame"), ("cpu_seconds", "CPU-s"), ("value", ""),
)


def _number(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def headline(figure: dict) -> str:
    """The figure's main measured value with its unit, or '-'."""
    for key, unit in VALUE_KEYS:
        value = figure.get(key)
        if isinstance(value, int | float):
            return f"{_number(value)} {unit}".strip()
    return "-"


def reference(figure: dict) -> str:
    """What the value is compared with, as value and unit where the figure gives one."""
    ref = figure.get("reference")
    if isinstance(ref, dict):
        for key, unit in (*VALUE_KEYS, ("data_wait_frac", "wait")):
            if isinstance(ref.get(key), int | float):
                return f"{_number(ref[key])} {unit}".strip()
        return str(ref.get("what", "-"))
    for key, unit in VALUE_KEYS:
        value = figure.get(f"reference_{key}")
        if isinstance(value, int | float):
            return f"{_number(value)} {unit}".strip()
    return str(ref) if ref is not None else "-"


def target(figure: dict) -> str:
    if "target" in figure:
        return str(figure["target"])
    if isinstance(figure.get("target_ratio"), int | float):
        return f">= {figure['target_ratio']:g}"
    return "-"


def summary_table(result: dict) -> str:
    """The result of ``run_bench`` as a fixed-width table, with the machine on top."""
    machine = result.get("machine", {})
    rows = [("figure", "value", "reference", "ratio", "target")]
    for figure in result.get("figures", []):
        if "skipped" in figure:
            rows.append((figure.get("figure", "?"), "skipped", str(figure["skipped"])[:60], "-", "-"))
            continue
        ratio = figure.get("ratio")
        rows.append((str(figure.get("figure", "?")), headline(figure), reference(figure)[:40],
                     f"{ratio:.2f}" if isinstance(ratio, int | float) else "-", target(figure)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"datagen {result.get('datagen_version', '?')} on {machine.get('processor') or '?'} "
             f"({machine.get('cpus', '?')} CPUs, {machine.get('platform', '?')})"]
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
