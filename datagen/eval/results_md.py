"""results.md: datagen's figures laid out like the paper's table (`paper_table`: Table 1, or Table 4
for DreamBooth), the paper's own beside them.

`results` is results.json's object: {"samples": N, "models": {...}, "rows": {row: {mode: {metric:
value, "single": {metric: value}, "multi": {metric: value}}}}}. Depth MSE is shown on the 8-bit
scale (`depth_mse_8bit`) where the results have it, the scale the paper's figures read like.
"""

from __future__ import annotations

from typing import Any

from datagen.eval.paper import LABELS, METRICS, MODES, SPLITS, TABLES

SPLIT_TITLES = {"single": "Single subject", "multi": "Multi subject"}


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ours(figures: dict[str, Any], metric: str) -> Any:
    if metric == "depth_mse" and "depth_mse_8bit" in figures:
        return figures["depth_mse_8bit"]
    return figures.get(metric)


def render_results(results: dict[str, Any]) -> str:
    table, citation = TABLES[results.get("paper_table", "table1")]
    lines = [
        "# Evaluation results",
        "",
        f"{results.get('samples', '?')} samples. Each cell: ours / the paper's ({citation}).",
        "Models: " + ", ".join(f"{k} `{v}`" for k, v in sorted(results.get("models", {}).items())) + ".",
    ]
    header = "| row | mode | " + " | ".join(LABELS[m] for m in METRICS) + " |"
    for split in SPLITS:
        if split not in table and not any(modes[m].get(split) for modes in results.get("rows", {}).values() for m in modes):
            continue  # neither the paper's table nor this data has the split (DreamBooth: one subject)
        lines += ["", f"## {SPLIT_TITLES[split]}", "", header, "|" + " --- |" * (len(METRICS) + 2)]
        for row, modes in results.get("rows", {}).items():
            for mode in sorted(modes, key=lambda m: (MODES + (m,)).index(m)):
                figures = modes[mode].get(split) or {}
                paper = table.get(split, {}).get(mode, {})  # full_depth, mixed: not in the paper's tables
                cells = [f"{_cell(_ours(figures, m))} / {_cell(paper.get(m))}" for m in METRICS]
                lines.append(f"| {row} | {mode} | " + " | ".join(cells) + " |")
    if results.get("depth_mse_normalisation"):
        lines += ["", "Depth MSE: " + results["depth_mse_normalisation"] + "."]
    speed = results.get("seconds_per_image") or {}
    if speed:
        counts = sorted({int(n) for per in speed.values() for n in per})
        lines += ["", "## Seconds per image by subject count", "", "| row | " + " | ".join(map(str, counts)) + " |",
                  "|" + " --- |" * (len(counts) + 1)]  # fmt: skip
        for row, per in speed.items():
            lines.append(f"| {row} | " + " | ".join(_cell(per.get(str(n))) for n in counts) + " |")
    return "\n".join(lines) + "\n"
