"""What a run still has to do: per shard, which stages to run, from the committed outputs.

A (stage, shard) output counts as done only when its completion marker exists, names the
expected fingerprint, was computed from the bytes its input holds now (the input's sha256 is
recorded in the marker), and the shard file beside it has the recorded size (and sha256,
unless `output.verify: size`). Anything else (missing, truncated, stale, failed) is redone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen.config import RunConfig
from datagen.fingerprint import stage_fingerprints
from datagen.paths import RunPaths
from datagen.shards import file_sha256


@dataclass
class ShardJob:
    shard: int
    fingerprints: dict[str, str]
    run: list[str] = field(default_factory=list)  # stages to run, in order
    blocked: str | None = None  # why a selected stage cannot run (its input is not committed)

    def to_json(self) -> str:
        return json.dumps({"shard": self.shard, "fingerprints": self.fingerprints, "run": self.run})

    @classmethod
    def from_json(cls, text: str) -> ShardJob:
        d = json.loads(text)
        return cls(shard=d["shard"], fingerprints=d["fingerprints"], run=d["run"])


def read_marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def valid_marker(cfg: RunConfig, paths: RunPaths, stage: str, shard: int, fingerprint: str) -> dict[str, Any] | None:
    """The completion marker of a committed output that matches `fingerprint`, else None."""
    final = cfg.stages.order[-1]
    marker = read_marker(paths.output_marker(stage, shard, final))
    if marker is None or marker.get("fingerprint") != fingerprint:
        return None
    tar = paths.output_tar(stage, shard, final)
    try:
        if tar.stat().st_size != marker.get("size"):
            return None
    except OSError:
        return None
    if cfg.output.verify == "sha256" and file_sha256(tar) != marker.get("sha256"):
        return None
    return marker


def plan_shard(cfg: RunConfig, paths: RunPaths, shard: int, selected: list[str]) -> ShardJob:
    fps = stage_fingerprints(cfg, shard)
    job = ShardJob(shard=shard, fingerprints=fps)
    order = cfg.stages.order
    markers: dict[str, dict[str, Any] | None] = {}

    def marker_of(stage: str) -> dict[str, Any] | None:
        if stage not in markers:
            markers[stage] = valid_marker(cfg, paths, stage, shard, fps[stage])
        return markers[stage]

    def is_done(stage: str) -> bool:
        marker = marker_of(stage)
        pos = order.index(stage)
        if marker is None or pos == 0:
            return marker is not None
        # Made from the input as it is now? (guards against an input redone with other bytes)
        prev = marker_of(order[pos - 1])
        return prev is not None and prev.get("sha256") == marker.get("input_sha256")

    for pos, stage in enumerate(order):
        if stage not in selected:
            continue
        # A stage reruns when its output is not valid, or when its input is being redone.
        if job.run or not is_done(stage):
            prev = order[pos - 1] if pos else None
            if prev is None or prev in job.run or is_done(prev):
                job.run.append(stage)
            else:
                job.blocked = f"{stage} needs {prev}, which is not committed"
                break
    return job


def make_plan(cfg: RunConfig, paths: RunPaths, selected: list[str]) -> list[ShardJob]:
    return [plan_shard(cfg, paths, shard, selected) for shard in range(cfg.num_shards)]


def clear_failures(paths: RunPaths, jobs: list[ShardJob]) -> None:
    """Forget earlier failures of what is about to be retried.

    Committed outputs stay in place until their replacements are committed over them: an
    interrupted rerun never loses a finished shard.
    """
    for job in jobs:
        for stage in job.run:
            paths.failed_marker(stage, job.shard).unlink(missing_ok=True)
