"""Completion markers: the one owner of writing them, reading them, and judging which count.

A (stage, shard) output is committed when its marker is (FORMAT.md): `stages/<stage>/
shard-N.done.json` beside the stage's tar, or, for the last stage, `final/shard-N.stats.json`
beside the final tar, holding every stage's figures for that shard. The marker is written
last, so a shard without one is not done.

One rule says when a marker counts: it names the fingerprint the current settings give, and
the output beside it has the recorded size. A resume checks more, as `output.verify` says:
`index` (the default) also reads the tar's member headers and compares their checksum with the
marker's `index_sha256` (a marker from before it was recorded falls back to the size), and
`sha256` re-hashes the whole output. The trade-off of the default: data bytes changed in place
at the same size go unseen until `datagen verify RUN` (datagen.pipeline.verify) or a resume with
`output.verify: sha256`. Status, reports, viewers and resume all ask here.

Readers of the dataset (datagen.final.read) pass `fingerprint=None`: a finished final shard
is whole whatever settings made it (an older datagen, an edited config), so old runs stay
readable while `status` and resume judge them by the current settings. The final stage's
different file and layout are hidden behind `RunMarkers`: callers ask for a stage's marker,
output or own figures and never test whether the stage is the last.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from datagen.config import RunConfig
from datagen.pipeline.fingerprint import stage_fingerprints
from datagen.store.codec import encode_json
from datagen.store.paths import RunPaths
from datagen.store.shards import commit_bytes, file_sha256, tar_index_sha256

Verify = Literal["size", "index", "sha256"]

# Per-stage figures the final stats keep for each shard: the run's measured cost model, and
# idcheck's identity_repair (subjects kept on the first edit, repaired, dropped).
FLOW_KEYS = (
    "samples_in", "samples_out", "subjects_in", "subjects_out", "wall_s", "size", "started_at", "finished_at",
    "identity_repair",
)  # fmt: skip


def read_marker(path: Path) -> dict[str, Any] | None:
    """A marker's contents; None when it is missing, unreadable or not a JSON object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class StageFigures:
    """One stage's own figures for one shard, whichever file holds them."""

    samples_in: int
    samples_out: int
    rejected: dict[str, int]
    rejected_subjects: dict[str, int]
    wall_s: float
    subjects_in: int = 0
    subjects_out: int = 0
    cpu_s: float = 0.0
    started_at: float | None = None  # absent from markers of older runs
    finished_at: float | None = None
    bytes: int = 0  # the committed output's size
    identity_repair: dict[str, int] = field(default_factory=dict)  # idcheck's: first_try, repaired, dropped


def _flow_figures(own: dict[str, Any], marker: dict[str, Any]) -> dict[str, Any]:
    """StageFigures' subjects, CPU time and times from a stage's own entry; bytes from its marker."""
    return {
        "subjects_in": own.get("subjects_in", 0), "subjects_out": own.get("subjects_out", 0),
        "cpu_s": own.get("cpu_s", 0.0), "started_at": own.get("started_at"), "finished_at": own.get("finished_at"),
        "bytes": marker.get("size", 0), "identity_repair": own.get("identity_repair", {}),
    }  # fmt: skip


@dataclass(frozen=True)
class ShardState:
    """A (stage, shard) as the current settings see it: its counted marker, or its failure."""

    marker: dict[str, Any] | None
    failure: dict[str, Any] | None


class RunMarkers:
    """The markers of one run, judged against `cfg` (its stage order and fingerprints)."""

    def __init__(self, cfg: RunConfig, paths: RunPaths) -> None:
        self.cfg, self.paths = cfg, paths
        self.order = tuple(cfg.stages.order)

    @property
    def final(self) -> str:
        return self.order[-1]

    # --- where ------------------------------------------------------------------------------

    def marker_path(self, stage: str, shard: int) -> Path:
        return self.paths.final_stats(shard) if stage == self.final else self.paths.stage_done(stage, shard)

    def output_tar(self, stage: str, shard: int) -> Path:
        return self.paths.final_tar(shard) if stage == self.final else self.paths.stage_tar(stage, shard)

    # --- write ------------------------------------------------------------------------------

    def commit(self, stage: str, shard: int, marker: dict[str, Any]) -> None:
        """Commit the marker of an output already committed beside it."""
        commit_bytes(self.marker_path(stage, shard), encode_json(marker))

    def commit_failure(self, stage: str, shard: int, marker: dict[str, Any]) -> None:
        commit_bytes(self.paths.failed_marker(stage, shard), encode_json(marker))

    def clear_failure(self, stage: str, shard: int) -> None:
        self.paths.failed_marker(stage, shard).unlink(missing_ok=True)

    # --- read and judge ---------------------------------------------------------------------

    def read(self, stage: str, shard: int) -> dict[str, Any] | None:
        return read_marker(self.marker_path(stage, shard))

    def counted(self, stage: str, shard: int, fingerprint: str | None, verify: Verify = "size") -> dict[str, Any] | None:
        """The marker if it counts (the one rule, see the module doc; None: any settings), else None."""
        marker = self.read(stage, shard)
        if marker is None or fingerprint not in (None, marker.get("fingerprint")):
            return None
        tar = self.output_tar(stage, shard)
        try:
            if tar.stat().st_size != marker.get("size"):
                return None
        except OSError:
            return None
        if verify == "sha256" and file_sha256(tar) != marker.get("sha256"):
            return None
        recorded = marker.get("index_sha256")
        if verify == "index" and recorded is not None and tar_index_sha256(tar) != recorded:
            return None
        return marker

    def damage(self, stage: str, shard: int, fingerprint: str | None) -> str | None:
        """Why a current marker's output is there but no longer matches it (another size), else None.

        Such an output does not count (resume redoes it), but a reader must not skip it silently.
        An output that is gone altogether is simply not there to read (status shows it pending)."""
        marker = self.read(stage, shard)
        if marker is None or fingerprint not in (None, marker.get("fingerprint")):
            return None
        tar = self.output_tar(stage, shard)
        try:
            size = tar.stat().st_size
        except OSError:
            return None
        return None if size == marker.get("size") else f"{tar}: damaged ({size} bytes, its marker says {marker.get('size')})"

    def failure(self, stage: str, shard: int, fingerprint: str) -> dict[str, Any] | None:
        """The failure marker of this (stage, shard) under the current settings, else None."""
        failed = read_marker(self.paths.failed_marker(stage, shard))
        return failed if failed and failed.get("fingerprint") == fingerprint else None

    def shard_states(self, shard: int) -> dict[str, ShardState]:
        """stage -> its state for this shard under the current fingerprints (sizes checked, no hashing)."""
        fps = stage_fingerprints(self.cfg, shard)
        return {s: ShardState(self.counted(s, shard, fps[s]), self.failure(s, shard, fps[s])) for s in self.order}

    def own_figures(self, stage: str, marker: dict[str, Any]) -> StageFigures:
        """This stage's own figures from its marker (the final stats hold every stage's: take its own)."""
        if stage != self.final:
            return StageFigures(
                marker.get("samples_in", 0), marker.get("samples_out", 0), marker.get("rejected", {}),
                marker.get("rejected_subjects", {}), marker.get("wall_s", 0.0), **_flow_figures(marker, marker),
            )  # fmt: skip
        rejected = marker["rejected"].get(stage, {})
        kept = marker.get("samples_written", 0)
        # The stats keep each stage's CPU time apart from its flow figures (FLOW_KEYS).
        own = {**marker.get("stages", {}).get(stage, {}), "cpu_s": marker.get("cpu_time_s", {}).get(stage, 0.0)}
        # Its stats' samples_in is the run's first-stage count; this stage's own is kept + rejected.
        return StageFigures(
            kept + sum(rejected.values()), kept, rejected, marker["rejected_subjects"].get(stage, {}),
            marker["wall_time_s"].get(stage, 0.0), **_flow_figures(own, marker),
        )  # fmt: skip

    def final_stats(self, shard: int, own: dict[str, Any], subject_counts: Iterable[int]) -> dict[str, Any]:
        """The final shard's stats: the last stage's marker `own` plus every earlier stage's counts."""
        rejected: dict[str, dict[str, int]] = {}
        rejected_subjects: dict[str, dict[str, int]] = {}
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}
        flow: dict[str, dict[str, Any]] = {}
        samples_in = own["samples_in"]
        for stage in self.order:
            m = own if stage == self.final else self.read(stage, shard) or {}
            rejected[stage] = m.get("rejected", {})
            rejected_subjects[stage] = m.get("rejected_subjects", {})
            wall[stage] = m.get("wall_s", 0.0)
            cpu[stage] = m.get("cpu_s", 0.0)
            flow[stage] = {k: m[k] for k in FLOW_KEYS if k in m}
            if stage == self.order[0]:
                samples_in = m.get("samples_in", samples_in)
        histogram = Counter(subject_counts)
        return {
            **{k: own[k] for k in ("stage", "shard", "fingerprint", "input_sha256", "sha256", "size", "index_sha256")},
            "samples_in": samples_in,
            "samples_written": own["samples_out"],
            "samples_rejected": sum(sum(v.values()) for v in rejected.values()),
            "rejected": rejected,
            "rejected_subjects": rejected_subjects,
            "subjects_histogram": {str(k): histogram[k] for k in sorted(histogram)},
            # sigma-set/2: the configured subject range (ingested and evaluation runs allow 1 or 2)
            "subjects_range": [self.cfg.filters.min_subjects, self.cfg.filters.max_subjects],
            "wall_time_s": wall,
            "cpu_time_s": cpu,
            "stages": flow,
            "rejected_keys": own["rejected_keys"],
        }


def final_shards(cfg: RunConfig, paths: RunPaths, any_settings: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """(shard, stats marker) of every final shard that counts, in shard order."""
    return [(shard, marker) for shard, marker, _ in final_shard_states(cfg, paths, any_settings) if marker is not None]


def final_shard_states(
    cfg: RunConfig, paths: RunPaths, any_settings: bool = False
) -> list[tuple[int, dict[str, Any] | None, str | None]]:
    """(shard, stats marker if it counts, damage if its current output was damaged) per shard;
    `any_settings`: a finished shard counts whatever settings made it (readers of the dataset)."""
    markers = RunMarkers(cfg, paths)
    states = []
    for shard in range(cfg.num_shards):
        fingerprint = None if any_settings else stage_fingerprints(cfg, shard)[markers.final]
        marker = markers.counted(markers.final, shard, fingerprint)
        states.append((shard, marker, None if marker else markers.damage(markers.final, shard, fingerprint)))
    return states


def final_kept(cfg: RunConfig, paths: RunPaths) -> tuple[int, int]:
    """(samples kept, final shards done) by the current fingerprints."""
    done = final_shards(cfg, paths)
    return sum(marker.get("samples_written", 0) for _, marker in done), len(done)


def stats_markers(paths: RunPaths) -> list[tuple[Path, dict[str, Any] | None]]:
    """Every final stats marker present, whatever settings made it (for measuring a past run)."""
    if not paths.final_dir.is_dir():
        return []
    return [(p, read_marker(p)) for p in sorted(paths.final_dir.glob("shard-*.stats.json"))]
