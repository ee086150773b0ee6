"""`datagen status RUN`: per stage, shards done / failed / pending, samples in and out,
rejections by reason, read from the markers the run committed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from datagen.config import RunConfig
from datagen.fingerprint import stage_fingerprints
from datagen.paths import RunPaths
from datagen.plan import read_marker


@dataclass
class StageStatus:
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

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["rejected"] = dict(sorted(self.rejected.items()))
        d["rejected_subjects"] = dict(sorted(self.rejected_subjects.items()))
        return d


def current_marker(paths: RunPaths, stage: str, shard: int, final: str, fingerprint: str) -> dict | None:
    """The (stage, shard)'s completion marker if it counts: written for the current settings
    (its fingerprint) and its output still there. One rule for status, reports and viewers."""
    marker = read_marker(paths.output_marker(stage, shard, final))
    if marker and marker.get("fingerprint") == fingerprint and paths.output_tar(stage, shard, final).exists():
        return marker
    return None


def current_final_shards(cfg: RunConfig, paths: RunPaths) -> list[tuple[int, dict]]:
    """(shard, stats marker) of every final shard that counts, in shard order."""
    final = cfg.stages.order[-1]
    found = []
    for shard in range(cfg.num_shards):
        marker = current_marker(paths, final, shard, final, stage_fingerprints(cfg, shard)[final])
        if marker is not None:
            found.append((shard, marker))
    return found


def collect_status(cfg: RunConfig, paths: RunPaths) -> list[StageStatus]:
    """Cheap: markers and fingerprints only (no checksums); `datagen run` verifies bytes."""
    final = cfg.stages.order[-1]
    rows = {s: StageStatus(s) for s in cfg.stages.order}
    for shard in range(cfg.num_shards):
        fps = stage_fingerprints(cfg, shard)
        for stage in cfg.stages.order:
            row = rows[stage]
            marker = current_marker(paths, stage, shard, final, fps[stage])
            failed = read_marker(paths.failed_marker(stage, shard))
            if marker is not None:
                row.done += 1
                row.samples_in += marker.get("samples_in", 0)
                row.samples_out += marker.get("samples_out", marker.get("samples_written", 0))
                own = marker["rejected"].get(stage, {}) if stage == final else marker.get("rejected", {})
                own_subj = (
                    marker["rejected_subjects"].get(stage, {}) if stage == final else marker.get("rejected_subjects", {})
                )
                row.rejected.update(own)
                row.rejected_subjects.update(own_subj)
                row.wall_s += marker["wall_time_s"].get(stage, 0.0) if stage == final else marker.get("wall_s", 0.0)
            elif failed and failed.get("fingerprint") == fps[stage]:
                row.failed += 1
                row.failures.append(f"shard {shard}: {failed.get('error', '?')}")
            else:
                row.pending += 1
    # The final stage's samples_in in its stats is the run's first-stage count; use its own.
    final_row = rows[final]
    if final_row.done:
        final_row.samples_in = final_row.samples_out + sum(final_row.rejected.values())
    return [rows[s] for s in cfg.stages.order]


def final_kept(cfg: RunConfig, paths: RunPaths) -> tuple[int, int]:
    """(samples kept, final shards done) by the current fingerprints."""
    done = current_final_shards(cfg, paths)
    return sum(marker.get("samples_written", 0) for _, marker in done), len(done)


def subjects_histogram(cfg: RunConfig, paths: RunPaths) -> dict[str, int]:
    hist: Counter = Counter()
    for _, marker in current_final_shards(cfg, paths):
        hist.update({k: int(v) for k, v in marker.get("subjects_histogram", {}).items()})
    return {k: hist[k] for k in sorted(hist, key=int)}


def requested_subjects(cfg: RunConfig) -> dict[str, int]:
    """The subject count asked of the prompts stage, for every sample of the run."""
    from datagen.diversity import requested_histogram
    from datagen.seeds import sample_seed

    return requested_histogram(cfg.stages.prompts, [sample_seed(cfg.run.seed, i) for i in range(cfg.run.num_samples)])


def render_status(cfg: RunConfig, paths: RunPaths, rows: list[StageStatus]) -> str:
    """A plain-text table: readable in a terminal and in logs."""
    kept, done = final_kept(cfg, paths)
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
    lines.append(f"final: {done}/{cfg.num_shards} shards, {kept} samples kept")
    hist = subjects_histogram(cfg, paths)
    if hist:
        requested = requested_subjects(cfg)
        lines.append("subjects per sample   requested -> kept")
        for n in sorted(set(requested) | set(hist), key=int):
            lines.append(f"  {n:>2} subjects          {requested.get(n, 0):>7} -> {hist.get(n, 0):>5}")
    for r in rows:
        for f in r.failures:
            lines.append(f"FAILED {r.stage} {f}")
    return "\n".join(lines)
