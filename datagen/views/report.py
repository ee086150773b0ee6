"""`datagen status RUN --report`: the run's funnel, subject counts, box areas, depth ranges,
diversity (backgrounds, subject names, duplicate prompts) and stage times, as report.json
(every number behind the plots), PNG plots and report.md.

Stage figures come from the one walk of the committed markers that `datagen status` counts
(collect_status); sample figures from the final shards' JSON members. Depth is read from at
most `depth_samples` evenly spread samples: it is most of a shard's bytes, and a 40k-sample run
must report in minutes. The report is derived data, so it is rewritten whole each time (staged_dir).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datagen import __version__
from datagen.config import RunConfig, load_run_config
from datagen.errors import ShardReadError, UserError
from datagen.final.writer import run_id
from datagen.pipeline.markers import final_shards
from datagen.recipe.diversity import drawn_scenes, normalise_prompt
from datagen.recipe.geometry import valid_depth
from datagen.final.decode import BadSample, decode_geometry
from datagen.schema import DEPTH_FIELD, DEPTH_PNG_FIELD, INSTANCES_FIELD, JSON_FIELD
from datagen.store.codec import round_floats
from datagen.store.output_guard import refuse_existing, staged_dir
from datagen.store.paths import RunPaths
from datagen.store.shards import read_tar
from datagen.views.report_markdown import render_markdown
from datagen.views.status import StageStatus, collect_status, requested_subjects

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
    # The dataset is every finished final shard, as its readers see it (an older datagen's too);
    # the funnel counts what the current settings count, and a note says where they differ.
    readable = final_shards(cfg, paths, any_settings=True)
    kept, done = sum(int(m.get("samples_written", 0)) for _, m in readable), len(readable)
    notes = []
    if 0 < done < cfg.num_shards:
        notes.append(f"partial run: {done} of {cfg.num_shards} final shards done; sample figures cover those only")
    if done > rows[-1].done:
        notes.append(f"{done - rows[-1].done} final shards were made under other settings (an older datagen or an "
                     "edited config): the sample figures include them, the funnel does not, `datagen run` would redo them")  # fmt: skip
    kept_tars = [paths.final_tar(shard) for shard, _ in readable]
    samples = read_samples(kept_tars, kept, depth_samples) if kept_tars else None
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
        "funnel": [_funnel_row(r) for r in rows],
        "subjects": _subjects_section(cfg, samples),
        "box_area": _box_area_section(cfg, samples) if samples else None,
        "depth": _depth_section(samples) if samples else None,
        "diversity": _diversity_section(cfg, samples, rows),
        "time": _time_section(rows, kept),
        "notes": notes,
    }
    return round_floats(report, 4)


# --- stages ----------------------------------------------------------------------------------


def _funnel_row(row: StageStatus) -> dict[str, Any]:
    return {
        "stage": row.stage,
        "shards_done": row.done,
        "shards_failed": row.failed,
        "shards_pending": row.pending,
        "samples_in": row.samples_in,
        "samples_out": row.samples_out,
        "rejected": dict(sorted(row.rejected.items())),
        "subjects_in": row.subjects_in,
        "subjects_out": row.subjects_out,
        "rejected_subjects": dict(sorted(row.rejected_subjects.items())),
        "identity_repair": dict(row.identity_repair),  # idcheck's: first_try, repaired, dropped ({} elsewhere)
        "bytes_out": row.bytes_out,
    }


def _stage_time(r: StageStatus) -> dict[str, Any]:
    return {
        "stage": r.stage,
        "wall_s": r.wall_s,  # summed over shards: worker-seconds
        "cpu_s": r.cpu_s,
        "cpu_per_wall": r.cpu_s / r.wall_s if r.wall_s else None,
        "span_s": r.finished_at - r.started_at if r.started_at is not None else 0.0,  # first start to last finish
        "samples_in": r.samples_in,
        "samples_per_worker_s": r.samples_in / r.wall_s if r.wall_s else None,
        "subjects_per_worker_s": r.subjects_in / r.wall_s if r.wall_s and r.subjects_in else None,
    }


def _time_section(rows: list[StageStatus], kept: int) -> dict[str, Any]:
    stages = [_stage_time(r) for r in rows]
    starts = [r.started_at for r in rows if r.started_at is not None]
    ends = [r.finished_at for r in rows if r.finished_at is not None]
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
    # Normalised (diversity.normalise_prompt) text of each kept sample's background caption and
    # full prompt, and of each kept subject's name.
    backgrounds: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def read_samples(tars: list[Path], total: int, depth_samples: int = DEPTH_SAMPLES) -> SampleFigures:
    """Every sample's JSON figures from the final `tars` (`total` samples in all); depth ranges from
    every stride-th sample, at most `depth_samples`."""
    stride = max(1, math.ceil(total / depth_samples)) if depth_samples > 0 else 0
    figs = SampleFigures()
    first = 0  # the samples are numbered across the shards, so the spread is even over the run
    for tar in tars:
        try:
            samples = read_tar(tar, keep=DepthSpread(tar, stride, first))
        except ShardReadError as e:
            raise UserError(f"{e} (check it: datagen validate)") from None
        for key, members in samples.items():
            _add_sample(figs, tar, key, members)
        first += len(samples)
    return figs


# What the depth figures need, sigma-set/1 and /2: the depth and the subjects' masks.
DEPTH_MEMBERS = (DEPTH_FIELD, DEPTH_PNG_FIELD, INSTANCES_FIELD)


class DepthSpread:
    """read_tar's member filter for one final shard: every sample's JSON; depth and masks only of
    every stride-th sample (none when stride is 0), numbering samples on from `first`."""

    def __init__(self, tar: Path, stride: int, first: int) -> None:
        self.tar, self.stride, self.number = tar, stride, first - 1
        self.key: str | None = None
        self.seen: set[str] = set()

    def __call__(self, key: str, name: str) -> bool:
        if key != self.key:
            self._next_sample(key)
        if name == JSON_FIELD:
            return True
        with_depth = self.stride > 0 and self.number % self.stride == 0
        return with_depth and (name in DEPTH_MEMBERS or name.startswith("mask_"))

    def _next_sample(self, key: str) -> None:
        if key in self.seen:  # webdataset readers need a sample's members together
            raise ShardReadError(f"{self.tar}: sample {key} is split across the shard")
        self.seen.add(key)
        self.key, self.number = key, self.number + 1


def _add_sample(figs: SampleFigures, tar: Path, key: str, members: dict[str, bytes]) -> None:
    try:
        meta = json.loads(members[JSON_FIELD])
        subjects = meta["subjects"]
        figs.subjects.append(len(subjects))
        figs.requested.append(int(meta.get("filter", {}).get("requested_subjects", len(subjects))))
        prompt = meta.get("prompt") or {}
        if prompt.get("background"):
            figs.backgrounds.append(normalise_prompt(prompt["background"]))
        if prompt.get("full"):
            figs.prompts.append(normalise_prompt(prompt["full"]))
        for s in subjects:
            figs.names.append(normalise_prompt(s["name"]))
            figs.box_area.append(float(s["box_area_frac"]))
            figs.mask_area.append(float(s["mask_area_frac"]))
            figs.centre_z.append(float(s["box_3d"]["center"][2]))
        figs.depth_units = meta.get("depth", {}).get("units", figs.depth_units)
        if DEPTH_FIELD in members or DEPTH_PNG_FIELD in members:
            figs.depth_read += 1
            r = _depth_range(meta, members)
            if r is not None:
                figs.depth_ranges.append(r)
    except (KeyError, TypeError, ValueError, OSError) as e:
        raise UserError(f"{tar}: sample {key}: unreadable ({e.__class__.__name__}: {e}); check it: datagen validate") from None


def _subject_depth(meta: dict[str, Any], members: dict[str, bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(depth in metres, where any subject is) of a sample, sigma-set/1 or /2 (the one decoder)."""
    try:
        masks, depth = decode_geometry(meta, members)
    except BadSample as e:
        raise ValueError(str(e)) from None
    return depth, masks.any(axis=0) if len(masks) else np.zeros(depth.shape, dtype=bool)


def _depth_range(meta: dict[str, Any], members: dict[str, bytes]) -> tuple[float, float, float] | None:
    """(min, median, max) of known depth inside the subjects' masks: the depth span of the subjects."""
    depth, inside = _subject_depth(meta, members)
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


TOP_BACKGROUNDS = 10


def _diversity_section(cfg: RunConfig, s: SampleFigures | None, rows: list[StageStatus]) -> dict[str, Any]:
    """How varied the kept samples are (their json, normalised as the dedup compares prompts),
    the duplicate prompts the run rejected (prompts stage or final stage: datagen.pipeline.dedup)
    and, for the LLM backends, the theme/background seeds every sample of the run drew."""
    s = s or SampleFigures()
    backgrounds = Counter(s.backgrounds)
    prompts = cfg.stages.prompts if "prompts" in cfg.stages.order else None
    written = sum(r.samples_in for r in rows if r.stage == "prompts")  # every sample the prompts stage saw
    duplicates = sum(r.rejected.get("duplicate_prompt", 0) for r in rows)
    llm = prompts is not None and prompts.backend != "procedural"  # procedural: the world's vocabulary
    return {
        "samples": len(s.subjects),
        "backgrounds": len(s.backgrounds),  # kept samples with a background caption
        "distinct_backgrounds": len(backgrounds),
        "top_backgrounds": [[bg, n] for bg, n in backgrounds.most_common(TOP_BACKGROUNDS)],
        "subject_names": len(s.names),
        "distinct_subject_names": len(set(s.names)),
        "prompts": len(s.prompts),
        "distinct_prompts": len(set(s.prompts)),
        "duplicate_prompts": {
            "rejected": duplicates,
            "of": written,
            "rate": duplicates / written if written else None,
        } if prompts is not None else None,
        "scene_seeds": drawn_scenes(prompts, [cfg.sample_seed(i) for i in range(cfg.run.num_samples)]) if llm else None,
    }  # fmt: skip
