"""`datagen status RUN --report`: the run's funnel, subject counts, box areas, depth ranges and
stage times, as report.json (every number behind the plots), PNG plots and report.md.

Stage figures come from the committed markers (the ones `datagen status` counts); sample
figures from the final shards' JSON members. Depth is read from at most `depth_samples`
evenly spread samples: it is most of a shard's bytes, and a 40k-sample run must report in
minutes. The report is derived data, so it is rewritten whole each time (staged_dir).
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from datagen import __version__
from datagen.store.codec import round_floats
from datagen.config import RunConfig
from datagen.errors import UserError
from datagen.final.writer import run_id
from datagen.recipe.geometry import valid_depth
from datagen.store.output_guard import refuse_existing, staged_dir
from datagen.store.paths import RunPaths, stats_beside
from datagen.pipeline.markers import read_marker
from datagen.config import load_run_config
from datagen.schema import DEPTH_FIELD, JSON_FIELD, MEMBER_RE, mask_field
from datagen.views.status import StageStatus, collect_status, requested_subjects
from datagen.pipeline.markers import RunMarkers, final_kept

REPORT_SCHEMA = "datagen-report/1"
DEPTH_SAMPLES = 2000
AREA_BINS = 40
DEPTH_BINS = 30


def write_report(run_dir: Path, out_dir: Path, depth_samples: int = DEPTH_SAMPLES) -> Path:
    """Write report.json, report.md and the PNG plots to `out_dir` (replaced whole); return it."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    _check_out_dir(out_dir, run_dir)  # before reading the shards: fail fast
    report = build_report(run_dir, depth_samples)
    from datagen.views.report_plots import write_plots  # matplotlib only when plots are drawn

    with staged_dir(out_dir, overwrite=True, flag="--report-dir", protect=run_dir) as tmp:
        report["plots"] = write_plots(report, tmp)
        (tmp / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (tmp / "report.md").write_text(render_markdown(report))
    return out_dir


def load_report(out_dir: Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "report.json").read_text())


def _check_out_dir(out_dir: Path, run_dir: Path) -> None:
    """The report directory is replaced whole: refuse the run itself or a directory of other files."""
    refuse_existing(out_dir, True, "--report-dir", protect=run_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "report.json").is_file():
        raise UserError(f"--report-dir {out_dir}: exists and is not a datagen report, so it would be replaced; pick another")


def build_report(run_dir: Path, depth_samples: int = DEPTH_SAMPLES) -> dict[str, Any]:
    """Every number of the report (no files written). UserError when `run_dir` is not a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a datagen run (no such directory)")
    cfg = load_run_config(run_dir)
    paths = RunPaths(run_dir)
    rows = collect_status(cfg, paths)
    figures, kept_tars = stage_figures(cfg, paths)
    kept, done = final_kept(cfg, paths)
    notes = []
    if 0 < done < cfg.num_shards:
        notes.append(f"partial run: {done} of {cfg.num_shards} final shards done; sample figures cover those only")
    samples = read_samples(kept_tars, depth_samples) if kept_tars else None
    if samples is None:
        notes.append(f"partial run: no final shards of {cfg.num_shards} done; box area and depth plots omitted")
    report = {
        "schema": REPORT_SCHEMA,
        "run": str(run_dir),
        "run_id": run_id(cfg),
        "config_sha256": cfg.config_sha256(),
        "datagen_version": __version__,
        "num_samples": cfg.run.num_samples,
        "num_shards": cfg.num_shards,
        "final_shards": done,
        "kept": kept,
        "funnel": [_funnel_row(r, figures[r.stage]) for r in rows],
        "subjects": _subjects_section(cfg, samples),
        "box_area": _box_area_section(cfg, samples) if samples else None,
        "depth": _depth_section(samples) if samples else None,
        "time": _time_section(rows, figures, kept),
        "notes": notes,
    }
    return round_floats(report, 4)


# --- stage markers ---------------------------------------------------------------------------


def stage_figures(cfg: RunConfig, paths: RunPaths) -> tuple[dict[str, dict[str, Any]], list[Path]]:
    """Per stage, what collect_status does not sum (subjects, CPU seconds, wall-clock span, bytes),
    from the same markers it counts (current fingerprint, output present); and the final tars."""
    markers = RunMarkers(cfg, paths)
    order, final = cfg.stages.order, markers.final
    zero = {"subjects_in": 0, "subjects_out": 0, "cpu_s": 0.0, "started_at": None, "finished_at": None, "bytes": 0}
    out = {s: dict(zero) for s in order}
    kept_tars = []
    for shard in range(cfg.num_shards):
        for stage, state in markers.shard_states(shard).items():
            marker = state.marker
            if marker is None:
                continue
            if stage == final:  # the final stats hold every stage's figures; take this stage's own
                own = {**marker.get("stages", {}).get(stage, {}), "cpu_s": marker.get("cpu_time_s", {}).get(stage, 0.0)}
                kept_tars.append(paths.final_tar(shard))
            else:
                own = marker
            f = out[stage]
            for k in ("subjects_in", "subjects_out", "cpu_s"):
                f[k] += own.get(k, 0)
            f["bytes"] += marker.get("size", 0)
            if "started_at" in own:
                f["started_at"] = own["started_at"] if f["started_at"] is None else min(own["started_at"], f["started_at"])
                f["finished_at"] = own["finished_at"] if f["finished_at"] is None else max(own["finished_at"], f["finished_at"])
    return out, kept_tars


def _funnel_row(row: StageStatus, fig: dict[str, Any]) -> dict[str, Any]:
    return {
        "stage": row.stage,
        "shards_done": row.done,
        "shards_failed": row.failed,
        "shards_pending": row.pending,
        "samples_in": row.samples_in,
        "samples_out": row.samples_out,
        "rejected": dict(sorted(row.rejected.items())),
        "subjects_in": fig["subjects_in"],
        "subjects_out": fig["subjects_out"],
        "rejected_subjects": dict(sorted(row.rejected_subjects.items())),
        "bytes_out": fig["bytes"],
    }


def _time_section(rows: list[StageStatus], figures: dict[str, dict[str, Any]], kept: int) -> dict[str, Any]:
    stages = []
    for r in rows:
        f = figures[r.stage]
        span = f["finished_at"] - f["started_at"] if f["started_at"] is not None else 0.0
        stages.append({
            "stage": r.stage,
            "wall_s": r.wall_s,  # summed over shards: worker-seconds
            "cpu_s": f["cpu_s"],
            "cpu_per_wall": f["cpu_s"] / r.wall_s if r.wall_s else None,
            "span_s": span,  # first start to last finish of this stage, across workers
            "samples_in": r.samples_in,
            "samples_per_worker_s": r.samples_in / r.wall_s if r.wall_s else None,
            "subjects_per_worker_s": f["subjects_in"] / r.wall_s if r.wall_s and f["subjects_in"] else None,
        })
    starts = [f["started_at"] for f in figures.values() if f["started_at"] is not None]
    ends = [f["finished_at"] for f in figures.values() if f["finished_at"] is not None]
    # Elapsed spans resumes too: a run stopped overnight and resumed counts the night.
    elapsed = max(ends) - min(starts) if starts else 0.0
    return {
        "started_at": min(starts) if starts else None,
        "finished_at": max(ends) if ends else None,
        "elapsed_s": elapsed,
        "kept_per_s": kept / elapsed if elapsed else None,
        "worker_s": sum(s["wall_s"] for s in stages),
        "cpu_s": sum(s["cpu_s"] for s in stages),
        "stages": stages,
    }


# --- final samples ---------------------------------------------------------------------------


@dataclass
class SampleFigures:
    """Per-sample and per-subject numbers read from the final shards."""

    subjects: list[int] = field(default_factory=list)
    requested: list[int] = field(default_factory=list)
    box_area: list[float] = field(default_factory=list)
    mask_area: list[float] = field(default_factory=list)
    centre_z: list[float] = field(default_factory=list)
    depth_ranges: list[tuple[float, float, float]] = field(default_factory=list)  # (min, median, max)
    depth_read: int = 0
    depth_units: str = "m"


def read_samples(tars: list[Path], depth_samples: int = DEPTH_SAMPLES) -> SampleFigures:
    """Every sample's JSON figures; depth ranges from every stride-th sample, at most `depth_samples`."""
    stats = [read_marker(stats_beside(t)) or {} for t in tars]
    total = sum(int(s.get("samples_written", 0)) for s in stats)
    stride = max(1, math.ceil(total / depth_samples)) if depth_samples > 0 else 0
    figs = SampleFigures()
    index = 0
    for tar in tars:
        for key, members in _shard_samples(tar, lambda i: stride > 0 and i % stride == 0, start=index):
            _add_sample(figs, tar, key, members)
            index += 1
    return figs


def _shard_samples(path: Path, with_depth: Callable[[int], bool], start: int) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) per sample of a final shard: the JSON always, depth and masks only
    when with_depth(sample number). Members not read are skipped by seeking, not read."""
    seen: set[str] = set()
    key, members, number = None, {}, start - 1
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                m = MEMBER_RE.match(info.name)
                if not info.isreg() or m is None:
                    raise UserError(f"{path}: unsafe or unexpected member {info.name!r} (check it: datagen validate)")
                if m.group(1) != key:
                    if key is not None:
                        yield key, members
                    key, members, number = m.group(1), {}, number + 1
                    if key in seen:  # webdataset readers need a sample's members together
                        raise UserError(f"{path}: sample {key} is split across the shard (check it: datagen validate)")
                    seen.add(key)
                name = m.group(2)
                if name == JSON_FIELD or (with_depth(number) and (name == DEPTH_FIELD or name.startswith("mask_"))):
                    members[name] = tar.extractfile(info).read()
            if key is not None:
                yield key, members
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UserError(f"{path}: unreadable shard ({e.__class__.__name__}: {e})") from None


def _add_sample(figs: SampleFigures, tar: Path, key: str, members: dict[str, bytes]) -> None:
    try:
        meta = json.loads(members[JSON_FIELD])
        subjects = meta["subjects"]
        figs.subjects.append(len(subjects))
        figs.requested.append(int(meta.get("filter", {}).get("requested_subjects", len(subjects))))
        for s in subjects:
            figs.box_area.append(float(s["box_area_frac"]))
            figs.mask_area.append(float(s["mask_area_frac"]))
            figs.centre_z.append(float(s["box_3d"]["center"][2]))
        figs.depth_units = meta.get("depth", {}).get("units", figs.depth_units)
        if DEPTH_FIELD in members:
            figs.depth_read += 1
            r = _depth_range(members, len(subjects))
            if r is not None:
                figs.depth_ranges.append(r)
    except (KeyError, TypeError, ValueError, OSError) as e:
        raise UserError(f"{tar}: sample {key}: unreadable ({e.__class__.__name__}: {e}); check it: datagen validate") from None


def _depth_range(members: dict[str, bytes], n: int) -> tuple[float, float, float] | None:
    """(min, median, max) of known depth inside the subjects' masks: the depth span of the subjects."""
    depth = np.load(io.BytesIO(members[DEPTH_FIELD]), allow_pickle=False)
    inside = np.zeros(depth.shape, dtype=bool)
    for i in range(n):
        inside |= np.asarray(Image.open(io.BytesIO(members[mask_field(i)])).convert("L")) > 127
    values = depth[inside & valid_depth(depth)].astype(np.float64)
    if values.size == 0:
        return None
    return float(values.min()), float(np.median(values)), float(values.max())


# --- sections --------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64)
    q = np.percentile(a, [5, 25, 50, 75, 95])
    return {"n": int(a.size), "mean": float(a.mean()), "min": float(a.min()), "p05": q[0], "p25": q[1],
            "median": q[2], "p75": q[3], "p95": q[4], "max": float(a.max())}


def _counts(values: list[float], edges: np.ndarray) -> list[int]:
    return [int(c) for c in np.histogram(np.asarray(values, dtype=np.float64), bins=edges)[0]]


def _edges(lo: float, hi: float, bins: int) -> np.ndarray:
    return np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)


def _subjects_section(cfg: RunConfig, samples: SampleFigures | None) -> dict[str, Any]:
    kept = Counter(samples.subjects) if samples else Counter()
    requested_of_kept = Counter(samples.requested) if samples else Counter()
    lo = min(cfg.stages.prompts.num_subjects[0], cfg.filters.min_subjects)
    hi = max(cfg.stages.prompts.num_subjects[1], cfg.filters.max_subjects)
    return {
        "range": [lo, hi],
        "requested": requested_subjects(cfg),  # every sample of the run, as the prompts stage drew them
        "kept": {str(n): kept[n] for n in sorted(kept)},  # counted from the final samples' JSON
        "requested_of_kept": {str(n): requested_of_kept[n] for n in sorted(requested_of_kept)},
        "subjects_kept": sum(n * c for n, c in kept.items()),
    }


def _box_area_section(cfg: RunConfig, s: SampleFigures) -> dict[str, Any]:
    edges = _edges(0.0, max([cfg.filters.max_box_area_frac, *s.box_area]), AREA_BINS)
    return {
        "range": [cfg.filters.min_box_area_frac, cfg.filters.max_box_area_frac],
        "bin_edges": edges.tolist(),
        "box_area_frac": {**summary(s.box_area), "counts": _counts(s.box_area, edges)},
        "mask_area_frac": {**summary(s.mask_area), "counts": _counts(s.mask_area, edges)},
    }


def _depth_section(s: SampleFigures) -> dict[str, Any]:
    cols = {name: [r[i] for r in s.depth_ranges] for i, name in enumerate(("min", "median", "max"))}
    edges = _edges(min(cols["min"], default=0.0), max(cols["max"], default=1.0), DEPTH_BINS)
    z_edges = _edges(min(s.centre_z, default=0.0), max(s.centre_z, default=1.0), DEPTH_BINS)
    return {
        "units": s.depth_units,
        "samples": len(s.subjects),
        "samples_read": s.depth_read,  # depth is read from an even spread of at most DEPTH_SAMPLES
        "samples_without_depth": s.depth_read - len(s.depth_ranges),  # no known depth inside any mask
        "bin_edges": edges.tolist(),
        **{name: {**summary(v), "counts": _counts(v, edges)} for name, v in cols.items()},
        "subject_centre_z": {**summary(s.centre_z), "bin_edges": z_edges.tolist(), "counts": _counts(s.centre_z, z_edges)},
    }


# --- text ------------------------------------------------------------------------------------


def _reasons(d: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()) or "-"


def _summary_table(section: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    lines = ["| | n | min | p05 | median | p95 | max |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        s = section[name]
        cells = [f"{s[k]:.4g}" if k in s else "-" for k in ("min", "p05", "median", "p95", "max")]
        lines.append(f"| {name} | {s['n']} | " + " | ".join(cells) + " |")
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
    lines.append(f"  subjects: {subj['subjects_kept']} kept of {asked_subjects} requested; dropped {dropped_text}")
    t = report["time"]
    if t["worker_s"]:
        slow = max(t["stages"], key=lambda s: s["wall_s"])
        rate = f", {t['kept_per_s']:.2f} kept samples/s" if t["kept_per_s"] else ""
        lines.append(f"  time: {t['elapsed_s']:.1f} s elapsed{rate}; most worker time in {slow['stage']} "
                     f"({slow['wall_s']:.1f} s, {100 * slow['wall_s'] / t['worker_s']:.0f}%)")
    return "\n".join(lines)
