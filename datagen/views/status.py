"""`datagen status RUN`: per stage, shards done / failed / pending, samples in and out,
rejections by reason, read from the markers the run committed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from datagen.config import RunConfig
from datagen.pipeline.markers import RunMarkers, StageFigures, final_shards
from datagen.store.paths import RunPaths


# The figures `datagen status --json` shows per stage; the rest of a StageStatus is the report's.
STATUS_KEYS = (
    "stage", "done", "failed", "pending", "samples_in", "samples_out", "rejected", "rejected_subjects", "wall_s",
    "failures", "identity_repair",
)  # fmt: skip


@dataclass
class StageStatus:
    """One stage summed over the run's shards: the status table's figures and the report's."""

    stage: str
    done: int = 0
    failed: int = 0
    pending: int = 0
    samples_in: int = 0
    samples_out: int = 0
    rejected: Counter = field(default_factory=Counter)
    rejected_subjects: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    done_shards: list[int] = field(default_factory=list)
    subjects_in: int = 0
    subjects_out: int = 0
    cpu_s: float = 0.0
    started_at: float | None = None  # first start and last finish over the shards: the stage's span
    finished_at: float | None = None
    bytes_out: int = 0
    identity_repair: Counter = field(default_factory=Counter)  # idcheck's: first_try, repaired, dropped

    def add_done(self, shard: int, own: StageFigures) -> None:
        self.done += 1
        self.done_shards.append(shard)
        self.samples_in += own.samples_in
        self.samples_out += own.samples_out
        self.rejected.update(own.rejected)
        self.rejected_subjects.update(own.rejected_subjects)
        self.wall_s += own.wall_s
        self.subjects_in += own.subjects_in
        self.subjects_out += own.subjects_out
        self.cpu_s += own.cpu_s
        self.bytes_out += own.bytes
        self.identity_repair.update(own.identity_repair)
        if own.started_at is not None:
            self.started_at = own.started_at if self.started_at is None else min(own.started_at, self.started_at)
        if own.finished_at is not None:
            self.finished_at = own.finished_at if self.finished_at is None else max(own.finished_at, self.finished_at)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in STATUS_KEYS}
        d["rejected"] = dict(sorted(self.rejected.items()))
        d["rejected_subjects"] = dict(sorted(self.rejected_subjects.items()))
        d["identity_repair"] = dict(self.identity_repair)
        return d


def collect_status(cfg: RunConfig, paths: RunPaths) -> list[StageStatus]:
    """Every stage's figures in one walk of the markers: cheap (markers, fingerprints and file sizes,
    no checksums); `datagen run` verifies bytes."""
    markers = RunMarkers(cfg, paths)
    rows = {s: StageStatus(s) for s in cfg.stages.order}
    for shard in range(cfg.num_shards):
        for stage, state in markers.shard_states(shard).items():
            row, marker, failed = rows[stage], state.marker, state.failure
            if marker is not None:
                row.add_done(shard, markers.own_figures(stage, marker))
            elif failed:
                row.failed += 1
                row.failures.append(f"shard {shard}: {failed.get('error', '?')}")
            else:
                row.pending += 1
    return [rows[s] for s in cfg.stages.order]


def subjects_histogram(cfg: RunConfig, paths: RunPaths) -> dict[str, int]:
    hist: Counter = Counter()
    for _, marker in final_shards(cfg, paths):
        hist.update({k: int(v) for k, v in marker.get("subjects_histogram", {}).items()})
    return {k: hist[k] for k in sorted(hist, key=int)}


def requested_subjects(cfg: RunConfig) -> dict[str, int]:
    """The subject count asked of the prompts stage, for every sample of the run; {} for an
    ingest run (no prompts stage: its rows come with their subjects)."""
    from datagen.recipe.diversity import requested_histogram

    if "prompts" not in cfg.stages.order:
        return {}
    return requested_histogram(cfg.stages.prompts, [cfg.sample_seed(i) for i in range(cfg.run.num_samples)])


def repair_line(row: StageStatus, cfg: RunConfig) -> str:
    """Subjects idcheck checked: kept on the first edit, kept after repose's repair, dropped."""
    n = row.identity_repair
    return (f"{row.stage}: identities first try {n['first_try']}, repaired {n['repaired']}, dropped {n['dropped']}"
            f"  (stages.repose.retries={cfg.stages.repose.retries})")  # fmt: skip


def render_status(cfg: RunConfig, paths: RunPaths, rows: list[StageStatus]) -> str:
    """A plain-text table: readable in a terminal and in logs."""
    kept, done = rows[-1].samples_out, rows[-1].done  # the last stage's row counts the final shards
    lines = [
        f"run {paths.root}  ({cfg.run.name}: {cfg.run.num_samples} samples in {cfg.num_shards} shards)",
        f"{'stage':<8} {'done':>5} {'failed':>6} {'pending':>7} {'in':>7} {'out':>7} {'time_s':>8}  rejects",
    ]
    for r in rows:
        rejects = ", ".join(f"{k}={v}" for k, v in sorted(r.rejected.items())) or "-"
        subj = ", ".join(f"{k}={v}" for k, v in sorted(r.rejected_subjects.items()))
        if subj:
            rejects += f"  (subjects: {subj})"
        lines.append(
            f"{r.stage:<8} {r.done:>5} {r.failed:>6} {r.pending:>7} {r.samples_in:>7} {r.samples_out:>7} {r.wall_s:>8.1f}  {rejects}"
        )
    lines += [repair_line(r, cfg) for r in rows if r.identity_repair]
    lines.append(f"final: {done}/{cfg.num_shards} shards, {kept} samples kept")
    older = len(final_shards(cfg, paths, any_settings=True)) - done
    if older > 0:  # finished under other settings (an older datagen, an edited config): readable
        lines.append(f"       {older} more finished under other settings: readable (show, export...), `datagen run` would redo them")
    hist = subjects_histogram(cfg, paths)
    if hist:
        requested = requested_subjects(cfg)
        if requested:
            lines.append("subjects per sample   requested -> kept")
            for n in sorted(set(requested) | set(hist), key=int):
                lines.append(f"  {n:>2} subjects          {requested.get(n, 0):>7} -> {hist.get(n, 0):>5}")
        else:  # an ingest run: nothing was asked for
            lines.append("subjects per sample   kept")
            lines += [f"  {n:>2} subjects          {hist[n]:>5}" for n in sorted(hist, key=int)]
    for r in rows:
        for f in r.failures:
            lines.append(f"FAILED {r.stage} {f}")
    return "\n".join(lines)
