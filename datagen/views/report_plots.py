"""The report's PNG plots, drawn from report.json's numbers only (so the JSON is all a plot shows).

Figures are built with matplotlib's object API on an Agg canvas, never pyplot: no global
backend or figure state, safe inside a run or a test. PNGs carry no Software/date metadata,
so one report's bytes do not change between two writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

SIZE_IN, DPI = (8, 5), 100  # 800 x 500 pixels
OUT_COLOUR, IN_COLOUR, OTHER_COLOUR = "#2f4b7c", "#a8bbd8", "#999999"


def write_plots(report: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """Draw every plot the report has numbers for; {plot name: file name in out_dir}."""
    plots = {"funnel": draw_funnel, "subjects": draw_subjects, "stage_time": draw_stage_time}
    if report["box_area"] is not None:
        plots["box_area"] = draw_box_area
    if report["depth"] is not None:
        plots["depth"] = draw_depth
    written = {}
    for name, draw in plots.items():
        fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        draw(fig, report)
        for ax in fig.axes if name != "stage_time" else []:  # counts are whole numbers: no 2.5-sample ticks
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.savefig(out_dir / f"{name}.png", dpi=DPI, metadata={"Software": None})
        written[name] = f"{name}.png"
    return written


def _reason_colours(reasons: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    # tab10 without its blue and grey, which "out" and "in rejected samples" use.
    palette = [colormaps["tab10"](i) for i in (1, 2, 3, 4, 5, 6, 8, 9)]
    return {r: palette[i % len(palette)] for i, r in enumerate(sorted(reasons))}


def _stacked_funnel(ax, funnel: list[dict[str, Any]], unit: str, colours: dict[str, Any]) -> None:
    """Per stage: what went out (dark), stacked with what was rejected by reason; total = what came in."""
    x = np.arange(len(funnel))
    ins = np.array([r[f"{unit}_in"] for r in funnel], dtype=float)
    outs = np.array([r[f"{unit}_out"] for r in funnel], dtype=float)
    ax.bar(x, outs, color=OUT_COLOUR, label="out")
    bottom = outs.copy()
    for reason, colour in colours.items():
        counts = np.array([r[f"rejected_{unit}" if unit == "subjects" else "rejected"].get(reason, 0) for r in funnel], float)
        if counts.any():
            ax.bar(x, counts, bottom=bottom, color=colour, label=reason)
            bottom += counts
    # Subjects also leave with their rejected samples; shown, not hidden, so bars reach "in".
    rest = ins - bottom
    if (rest > 0).any():
        label = "in rejected samples" if unit == "subjects" else "other"
        ax.bar(x, np.clip(rest, 0, None), bottom=bottom, color=OTHER_COLOUR, label=label)
    for xi, n_in, n_out in zip(x, ins, outs):
        # The first stage makes subjects from nothing: label what it made, not its zero input.
        text = f"{n_in:.0f}" if n_in >= n_out else f"+{n_out:.0f}"
        if n_in > n_out:
            text += f"\n-{n_in - n_out:.0f}"
        ax.annotate(text, (xi, max(n_in, n_out)), ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, max([1.0, *ins, *outs]) * 1.15)
    ax.set_xticks(x, [r["stage"] for r in funnel], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(f"{unit} (bar height = into the stage)")
    ax.set_title(f"{unit.capitalize()}: out, and rejects by reason", fontsize=10)


def draw_funnel(fig: Figure, report: dict[str, Any]) -> None:
    funnel = report["funnel"]
    sample_reasons = sorted({k for r in funnel for k in r["rejected"]})
    subject_reasons = sorted({k for r in funnel for k in r["rejected_subjects"]})
    colours = _reason_colours(sample_reasons + subject_reasons)
    left, right = fig.subplots(1, 2)
    _stacked_funnel(left, funnel, "samples", {r: colours[r] for r in sample_reasons})
    _stacked_funnel(right, funnel, "subjects", {r: colours[r] for r in subject_reasons})
    # One legend for both panels, below them, so it never hides a bar.
    legend: dict[str, Any] = {}
    for ax in (left, right):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=min(4, len(legend)), fontsize=8)
    fig.suptitle(f"Funnel of {report['run_id']}: {report['kept']} of {report['num_samples']} samples kept")


def draw_subjects(fig: Figure, report: dict[str, Any]) -> None:
    subj = report["subjects"]
    lo, hi = subj["range"]
    seen = [int(n) for n in (*subj["requested"], *subj["kept"])]
    ns = np.arange(min([lo, *seen]), max([hi, *seen]) + 1)
    requested = [subj["requested"].get(str(n), 0) for n in ns]
    kept = [subj["kept"].get(str(n), 0) for n in ns]
    ax = fig.subplots()
    ax.bar(ns - 0.2, requested, width=0.4, color=IN_COLOUR, label=f"requested ({sum(requested)} samples)")
    ax.bar(ns + 0.2, kept, width=0.4, color=OUT_COLOUR, label=f"kept ({sum(kept)} samples)")
    ax.set_xticks(ns)
    ax.set_xlabel("subjects per sample")
    ax.set_ylabel("samples")
    ax.set_title("Subjects per sample: requested by the prompts stage vs kept in the dataset")
    ax.legend()


def draw_box_area(fig: Figure, report: dict[str, Any]) -> None:
    area = report["box_area"]
    edges = area["bin_edges"]
    ax = fig.subplots()
    ax.stairs(area["box_area_frac"]["counts"], edges, color=OUT_COLOUR, linewidth=1.5, label="box_area_frac (2D box)")
    ax.stairs(area["mask_area_frac"]["counts"], edges, color="#dd8452", linewidth=1.5, label="mask_area_frac (mask)")
    for bound in area["range"]:
        ax.axvline(bound, color=OTHER_COLOUR, linestyle="--", linewidth=1)
    ax.set_xlabel("fraction of the image area (dashed: the configured box area range)")
    ax.set_ylabel("subjects")
    ax.set_title(f"Subject area, {area['box_area_frac']['n']} kept subjects")
    ax.legend()


def draw_depth(fig: Figure, report: dict[str, Any]) -> None:
    d = report["depth"]
    left, right = fig.subplots(1, 2)
    for name, colour in (("min", "#55a868"), ("median", OUT_COLOUR), ("max", "#c44e52")):
        label = f"{name} (median {d[name].get('median', 0):.2f})"
        left.stairs(d[name]["counts"], d["bin_edges"], color=colour, linewidth=1.5, label=label)
    left.set_xlabel(f"depth inside the subjects' masks ({d['units']})")
    left.set_ylabel("samples")
    left.set_title(f"Per-sample depth range ({d['samples_read']} of {d['samples']} samples)", fontsize=10)
    left.legend(fontsize=8)
    z = d["subject_centre_z"]
    right.stairs(z["counts"], z["bin_edges"], color=OUT_COLOUR, fill=True, alpha=0.7)
    right.set_xlabel(f"box_3d centre z ({d['units']})")
    right.set_ylabel("subjects")
    right.set_title(f"Subject distance, {z['n']} subjects", fontsize=10)
    fig.suptitle("Depth")


def draw_stage_time(fig: Figure, report: dict[str, Any]) -> None:
    t = report["time"]
    stages = t["stages"]
    y = np.arange(len(stages))
    left, right = fig.subplots(1, 2)
    left.barh(y - 0.2, [s["wall_s"] for s in stages], height=0.4, color=OUT_COLOUR, label="worker (wall) s")
    left.barh(y + 0.2, [s["cpu_s"] for s in stages], height=0.4, color="#dd8452", label="CPU s")
    left.set_yticks(y, [s["stage"] for s in stages])
    left.invert_yaxis()  # stage order top to bottom
    left.set_xlabel("seconds, summed over shards")
    left.set_title("Time per stage", fontsize=10)
    left.legend(fontsize=8)
    rates = [s["samples_per_worker_s"] or 0.0 for s in stages]
    right.barh(y, rates, color=OUT_COLOUR)
    right.set_yticks(y, [s["stage"] for s in stages])
    right.invert_yaxis()
    positive = [r for r in rates if r > 0]
    if positive and max(positive) / min(positive) > 100:  # a cheap stage would flatten the others
        right.set_xscale("log")
    right.set_xlabel("samples in / worker-second")
    right.set_title("Throughput per stage", fontsize=10)
    rate = f", {t['kept_per_s']:.2f} kept samples/s" if t["kept_per_s"] else ""
    fig.suptitle(f"Stage time: {t['elapsed_s']:.1f} s elapsed, {t['worker_s']:.1f} worker-s{rate}")
