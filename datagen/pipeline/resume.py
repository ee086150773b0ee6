"""What a run still has to do: per shard, which stages to run, from the committed outputs.

A (stage, shard) output counts as done only when its completion marker exists, names the
expected fingerprint, was computed from the bytes its input holds now (the input's sha256 is
recorded in the marker), and the shard file beside it passes `output.verify`: the recorded
size and, by default (`index`), the recorded checksum of its member headers; `sha256` re-hashes
it whole, `size` checks the size only (datagen.pipeline.markers). Anything else (missing,
truncated, renamed, stale, failed) is redone.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from datagen.config import RunConfig
from datagen.pipeline.dedup import dedup_active, ranges_below, shard_ranges
from datagen.pipeline.fingerprint import stage_fingerprints
from datagen.pipeline.markers import RunMarkers
from datagen.store.paths import RunPaths

PLAN_THREADS = 8


@dataclass
class ShardJob:
    shard: int
    fingerprints: dict[str, str]
    run: list[str] = field(default_factory=list)  # stages to run, in order
    blocked: str | None = None  # why a selected stage cannot run (its input is not committed)
    # Lower shards whose prompts this run processes, as [start, stop) ranges: the final stage
    # waits for their prompt claims (datagen.pipeline.dedup).
    awaits: list[list[int]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"shard": self.shard, "fingerprints": self.fingerprints, "run": self.run, "awaits": self.awaits})

    @classmethod
    def from_json(cls, text: str) -> ShardJob:
        d = json.loads(text)
        return cls(shard=d["shard"], fingerprints=d["fingerprints"], run=d["run"], awaits=d.get("awaits", []))


def plan_shard(cfg: RunConfig, paths: RunPaths, shard: int, selected: list[str]) -> ShardJob:
    fps = stage_fingerprints(cfg, shard)
    job = ShardJob(shard=shard, fingerprints=fps)
    run_markers = RunMarkers(cfg, paths)
    order = cfg.stages.order
    markers: dict[str, dict[str, Any] | None] = {}

    def marker_of(stage: str) -> dict[str, Any] | None:
        if stage not in markers:
            markers[stage] = run_markers.counted(stage, shard, fps[stage], verify=cfg.output.verify)
        return markers[stage]

    def is_done(stage: str) -> bool:
        marker = marker_of(stage)
        pos = order.index(stage)
        if marker is None or pos == 0:
            return marker is not None
        # Made from the input as it is now? (guards against an input redone with other bytes)
        prev = marker_of(order[pos - 1])
        return prev is not None and prev.get("sha256") == marker.get("input_sha256")

    # A shard whose final output counts under the current settings (its fingerprint chains every
    # stage's) is finished: its intermediate outputs are not read at all, so a no-op resume reads
    # one tar's headers per shard, and intermediates removed to save space redo nothing.
    if selected == order and marker_of(order[-1]) is not None:
        return job
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
    # Checking committed outputs waits on storage more than on the CPU (the tars' headers
    # with output.verify: index, every byte with sha256): shards are checked a few at once, to
    # overlap those waits (reads and hashing release the GIL); 2-3x faster on a cold cache.
    with ThreadPoolExecutor(PLAN_THREADS) as pool:
        jobs = list(pool.map(lambda shard: plan_shard(cfg, paths, shard, selected), range(cfg.num_shards)))
    if dedup_active(cfg):
        prompts = shard_ranges(j.shard for j in jobs if "prompts" in j.run)
        final = cfg.stages.order[-1]
        if prompts and final in selected:
            _recheck_finals_above(cfg, paths, jobs, lowest=prompts[0][0])
        for job in jobs:
            if final in job.run:
                job.awaits = ranges_below(prompts, job.shard)
    return jobs


def _recheck_finals_above(cfg: RunConfig, paths: RunPaths, jobs: list[ShardJob], lowest: int) -> None:
    """Run the final stage again for committed shards above a prompts shard this run redoes.

    A prompts shard redone (it failed in an earlier run) claims its prompts now, and its lower
    indices take over prompts that higher final shards kept when it claimed nothing: those final
    shards settle again (the final stage alone, from its committed input). A shard that keeps
    the same samples gets the same bytes; only the final stage, never a GPU stage, runs again.
    """
    final = cfg.stages.order[-1]
    markers = RunMarkers(cfg, paths)
    for job in jobs:
        if job.shard > lowest and not job.run and job.blocked is None and markers.read(final, job.shard) is not None:
            job.run.append(final)


def clear_failures(cfg: RunConfig, paths: RunPaths, jobs: list[ShardJob]) -> None:
    """Forget earlier failures of what is about to be retried.

    Committed outputs stay in place until their replacements are committed over them: an
    interrupted rerun never loses a finished shard.
    """
    markers = RunMarkers(cfg, paths)
    for job in jobs:
        for stage in job.run:
            markers.clear_failure(stage, job.shard)
