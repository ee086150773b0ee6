"""report.md and the few lines `datagen run` ends with, written from report.json's numbers only."""

from __future__ import annotations

from collections import Counter
from typing import Any


def _reasons(d: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()) or "-"


def _summary_table(section: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    lines = ["| | n | min | p05 | median | p95 | max |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        s = section[name]
        cells = [f"{s[k]:.4g}" if k in s else "-" for k in ("min", "p05", "median", "p95", "max")]
        lines.append(f"| {name} | {s['n']} | " + " | ".join(cells) + " |")
    return lines


def _repair(row: dict[str, Any]) -> str:
    """Identities idcheck kept on repose's first edit, kept after a repair, or dropped."""
    n = row["identity_repair"]
    return f"Identities ({row['stage']}): {n['first_try']} first try, {n['repaired']} repaired, {n['dropped']} dropped."


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _duplicates(d: dict[str, Any]) -> str:
    dup = d["duplicate_prompts"]
    if dup is None:
        return "duplicate prompts: - (no prompts stage)"
    return f"duplicate prompts: {dup['rejected']} of {dup['of']} rejected ({_pct(dup['rate'])})"


def _diversity_lines(d: dict[str, Any]) -> list[str]:
    """The diversity section: distinct backgrounds, subject names and prompts of the kept samples."""
    lines = [
        "| kept samples' | distinct | of |", "| --- | ---: | ---: |",
        f"| backgrounds | {d['distinct_backgrounds']} | {d['backgrounds']} |",
        f"| subject names | {d['distinct_subject_names']} | {d['subject_names']} |",
        f"| full prompts | {d['distinct_prompts']} | {d['prompts']} |",
        "", f"Dedup (prompts or final stage), {_duplicates(d)}.",
    ]  # fmt: skip
    seeds = d.get("scene_seeds")
    if seeds:
        lines += ["", f"Scene seeds (theme, background[, condition]): {seeds['distinct']} distinct of {seeds['draws']} "
                      f"drawn from {seeds['combinations']:,} combinations; {_pct(seeds['repeat_share'])} repeat an earlier "
                      f"draw (expected {_pct(seeds['expected_repeat_share'])})."]  # fmt: skip
    if d["top_backgrounds"]:
        lines += ["", "Most common backgrounds: " + "; ".join(f"{bg} ({n})" for bg, n in d["top_backgrounds"]) + "."]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    t = report["time"]
    lines = [
        f"# Run report: {report['run_id']}",
        "",
        (
            f"`{report['run']}`: {report['kept']} of {report['num_samples']} samples kept, "
            f"{report['final_shards']}/{report['num_shards']} final shards, config sha256 `{report['config_sha256'][:12]}`."
        ),
        "",
        "## Funnel",
        "",
        "| stage | shards done/failed/pending | samples in | out | rejects | subjects in | out | subject rejects |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in report["funnel"]:
        lines.append(
            f"| {r['stage']} | {r['shards_done']}/{r['shards_failed']}/{r['shards_pending']} | {r['samples_in']} | "
            f"{r['samples_out']} | {_reasons(r['rejected'])} | {r['subjects_in']} | {r['subjects_out']} | "
            f"{_reasons(r['rejected_subjects'])} |"
        )
    for r in report["funnel"]:
        if r.get("identity_repair"):  # absent from reports of older runs
            lines += ["", _repair(r)]
    lines += ["", f"## Time: {t['elapsed_s']:.1f} s elapsed, {t['worker_s']:.1f} worker-s, {t['cpu_s']:.1f} CPU-s", "",
              "| stage | worker s | CPU s | span s | samples / worker-s |", "| --- | ---: | ---: | ---: | ---: |"]
    for s in t["stages"]:
        rate = f"{s['samples_per_worker_s']:.2f}" if s["samples_per_worker_s"] is not None else "-"
        lines.append(f"| {s['stage']} | {s['wall_s']:.2f} | {s['cpu_s']:.2f} | {s['span_s']:.2f} | {rate} |")
    subj = report["subjects"]
    lines += ["", "## Subjects per sample", "", "| subjects | requested | kept |", "| ---: | ---: | ---: |"]
    for n in range(subj["range"][0], subj["range"][1] + 1):
        lines.append(f"| {n} | {subj['requested'].get(str(n), 0)} | {subj['kept'].get(str(n), 0)} |")
    if report["box_area"] is not None:
        table = _summary_table(report["box_area"], ("box_area_frac", "mask_area_frac"))
        lines += ["", "## Subject area (fraction of the image)", "", *table]
    if report["depth"] is not None:
        d = report["depth"]
        title = f"## Depth ({d['units']}) inside subject masks, per sample ({d['samples_read']} of {d['samples']} read)"
        lines += ["", title, "", *_summary_table(d, ("min", "median", "max", "subject_centre_z"))]
    if report.get("diversity") is not None:  # absent from reports of older datagens
        lines += ["", "## Diversity", "", *_diversity_lines(report["diversity"])]
    if report["notes"]:
        lines += ["", "## Notes", "", *[f"- {n}" for n in report["notes"]]]
    lines += ["", *[f"![{name}]({png})" for name, png in report.get("plots", {}).items()]]
    return "\n".join(lines) + "\n"


def report_summary(report: dict[str, Any]) -> str:
    """A few lines for the end of `datagen run`: what was kept, where samples and subjects went, time."""
    kept, asked = report["kept"], report["num_samples"]
    shards = f"{report['final_shards']}/{report['num_shards']} final shards"
    lines = [f"report: {kept} of {asked} samples kept ({100 * kept / asked:.1f}%), {shards}"]
    sample_losses = [f"{r['stage']} {_reasons(r['rejected'])}" for r in report["funnel"] if r["rejected"]]
    if sample_losses:
        lines.append("  samples rejected: " + "; ".join(sample_losses))
    subj = report["subjects"]
    asked_subjects = sum(int(n) * c for n, c in subj["requested"].items())
    dropped = Counter()
    for r in report["funnel"]:
        dropped.update(r["rejected_subjects"])
    dropped_text = _reasons(dict(dropped.most_common())) if dropped else "none"
    of = f" of {asked_subjects} requested" if subj["requested"] else ""  # an ingest run asks for none
    lines.append(f"  subjects: {subj['subjects_kept']} kept{of}; dropped {dropped_text}")
    lines += [f"  {_repair(r)}" for r in report["funnel"] if r.get("identity_repair")]
    d = report.get("diversity")
    if d is not None and d["samples"]:
        lines.append(f"  diversity: {d['distinct_backgrounds']} distinct backgrounds, {d['distinct_subject_names']} "
                     f"distinct subject names in the kept samples; {_duplicates(d)}")
    t = report["time"]
    if t["worker_s"]:
        slow = max(t["stages"], key=lambda s: s["wall_s"])
        rate = f", {t['kept_per_s']:.2f} kept samples/s" if t["kept_per_s"] else ""
        lines.append(f"  time: {t['elapsed_s']:.1f} s elapsed{rate}; most worker time in {slow['stage']} "
                     f"({slow['wall_s']:.1f} s, {100 * slow['wall_s'] / t['worker_s']:.0f}%)")
    return "\n".join(lines)
