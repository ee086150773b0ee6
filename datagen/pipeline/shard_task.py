"""Run one stage over one shard and commit its output: the unit of work of every runner.

Plain Python, used by the Ray runner's actors and by the one-process local runner alike.
A sample that raises becomes a rejection `error:<stage>:<Type>` with its traceback in the
log; a shard where too many samples raise, or whose input cannot be read, fails loudly.
"""

from __future__ import annotations

import copy
import logging
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen.config import RunConfig
from datagen.final.writer import final_members
from datagen.pipeline.dedup import ClaimCheck
from datagen.store.paths import RunPaths
from datagen.pipeline.resume import ShardJob
from datagen.pipeline.markers import RunMarkers
from datagen.store.inflight import Rejected, Sample, read_stage_samples, write_members
from datagen.store.shards import commit_tar, tar_index_sha256
from datagen.pipeline.preflight import build_stage

log = logging.getLogger("datagen.shard")


class StageShardFailed(Exception):
    """A (stage, shard) that cannot complete: the run marks it failed and goes on."""


@dataclass
class Outcome:
    stage: str
    shard: int
    status: str  # "done", "failed" or "deferred" (a final stage run again later: see run)
    samples_in: int = 0
    samples_out: int = 0
    error: str | None = None
    sha256: str | None = None  # of the committed output
    # The kept samples, in memory, for the next stage when one worker runs both (never sent
    # over Ray: see to_dict).
    samples: list[Sample] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "samples"}

    def handoff(self) -> Handoff | None:
        """What the next stage can start from without reading the shard back."""
        if self.status != "done" or self.samples is None or self.sha256 is None:
            return None
        return Handoff(self.stage, self.samples, self.sha256)


@dataclass
class Handoff:
    stage: str  # the stage that made these samples (and committed them with this sha256)
    samples: list[Sample]
    sha256: str


class ShardTask:
    """Holds one stage (its model loaded once) and runs it over shards."""

    def __init__(self, stage_name: str, cfg: RunConfig, run_dir: str) -> None:
        self.cfg = cfg
        self.paths = RunPaths(Path(run_dir))
        self.stage = build_stage(stage_name, cfg)
        self.stage.bind_run(self.paths.root)
        self.order = cfg.stages.order
        self.markers = RunMarkers(cfg, self.paths)
        # The final stage settles prompt dedup (lowest index wins) before it writes.
        self.claims = ClaimCheck.for_run(cfg, self.paths) if stage_name == self.markers.final else None
        self._ready = False

    def setup(self) -> None:
        if not self._ready:
            self.stage.setup()
            self._ready = True

    # --- one (stage, shard) -------------------------------------------------------------

    def run(
        self, shard: int, fingerprints: dict[str, str], given: Handoff | None = None, awaits: list[list[int]] | None = None
    ) -> Outcome:
        """Process and commit, retrying; never raises for a failing shard.

        `given`: the previous stage's kept samples and committed sha256, when this worker just
        made them; they spare reading and decoding the shard again. A retry reads from disk.
        `awaits`: lower shards whose prompt claims the final stage needs (ShardJob.awaits); while
        any of them is still in prompts, the stage is "deferred" (datagen.pipeline.dedup).
        """
        self.setup()
        name = self.stage.name
        if self.claims is not None and not self.claims.ready(awaits or []):
            log.info("%s shard %d deferred: lower shards are still in prompts (prompt dedup)", name, shard)
            return Outcome(name, shard, "deferred")
        pos = self.order.index(name)
        if given is not None and (pos == 0 or given.stage != self.order[pos - 1]):
            given = None  # only the stage right before this one makes its input
        attempts = self.stage.cfg.exec.retries + 1
        error = ""
        for attempt in range(1, attempts + 1):
            try:
                return self._run_once(shard, fingerprints, given if attempt == 1 else None)
            except Exception as e:  # noqa: BLE001 - a failing shard must not stop the run
                error = f"{e.__class__.__name__}: {e}"
                log.error("%s shard %d attempt %d/%d failed:\n%s", name, shard, attempt, attempts, traceback.format_exc())
        marker = {"stage": name, "shard": shard, "fingerprint": fingerprints[name], "error": error, "attempts": attempts}
        try:
            self.markers.commit_failure(name, shard, marker)
        except OSError:  # a full disk can refuse the marker too; the outcome still reports it
            log.exception("%s shard %d: could not write the failure marker", name, shard)
        return Outcome(name, shard, "failed", error=error)

    def _run_once(self, shard: int, fingerprints: dict[str, str], given: Handoff | None) -> Outcome:
        name = self.stage.name
        start, cpu_start, started_at = time.perf_counter(), time.process_time(), time.time()
        if given is not None:
            samples, input_sha = given.samples, given.sha256
            for s in samples:
                s.changed.clear()  # committed by the previous stage already
        else:
            samples, input_sha = self._read_input(shard, fingerprints)
        subjects_in = sum(len(s.subjects) for s in samples)
        results = self._process_all(samples)
        if self.claims is not None:
            results = self.claims.apply(results, name)
        kept = [r for r in results if isinstance(r, Sample)]
        rejected = [r for r in results if isinstance(r, Rejected)]
        errors = sum(r.reason.startswith("error:") for r in rejected)
        if samples and errors / len(samples) > self.stage.cfg.exec.max_error_share:
            raise StageShardFailed(
                f"{errors} of {len(samples)} samples raised (more than exec.max_error_share="
                f"{self.stage.cfg.exec.max_error_share}); see the run log for tracebacks"
            )
        model, settings = self.stage.model_name(), self.stage.generation_settings()
        for s in kept:
            if self.stage.passes_over(s):  # the stage left it as it was: its models made nothing of it
                continue
            generation = s.meta.setdefault("generation", {})
            generation.setdefault("models", {})[name] = model
            if settings:
                generation.setdefault("settings", {})[name] = settings
        marker: dict[str, Any] = {
            "stage": name,
            "shard": shard,
            "fingerprint": fingerprints[name],
            "input_sha256": input_sha,
            "samples_in": len(samples),
            "samples_out": len(kept),
            "subjects_in": subjects_in,
            "subjects_out": sum(len(s.subjects) for s in kept),
            "rejected": dict(sorted(Counter(r.reason for r in rejected).items())),
            "rejected_keys": [[r.key, r.reason] for r in sorted(rejected, key=lambda r: r.key)],
            "rejected_subjects": dict(sorted(Counter(_subject_rejects(samples, name)).items())),
            **self.stage.shard_figures(samples),  # a stage's own counts (idcheck: identity_repair)
        }
        out = self.markers.output_tar(name, shard)
        sha, size = commit_tar(out, self._members(kept))
        marker.update(
            sha256=sha,
            size=size,
            index_sha256=tar_index_sha256(out),  # what a resume checks by default (output.verify)
            wall_s=round(time.perf_counter() - start, 4),
            cpu_s=round(time.process_time() - cpu_start, 4),  # all threads of this worker
            # Wall-clock span, for utilisation over a run (benchmarks, `datagen plan --from`).
            started_at=round(started_at, 3),
            finished_at=round(time.time(), 3),
        )
        final = name == self.markers.final
        if final:
            marker = self.markers.final_stats(shard, marker, (len(s.subjects) for s in kept))
        # The marker goes last: a shard without one is not done (FORMAT.md).
        self.markers.commit(name, shard, marker)
        return Outcome(name, shard, "done", len(samples), len(kept), sha256=sha, samples=None if final else kept)

    def _members(self, kept: list[Sample]) -> Iterator[tuple[str, bytes]]:
        """The last stage writes sigma-set samples (final/); the others, the in-flight members."""
        if self.stage.name == self.markers.final:
            return (m for s in kept for m in final_members(s, self.cfg))
        return iter(write_members(kept))

    def _read_input(self, shard: int, fingerprints: dict[str, str]) -> tuple[list[Sample], str | None]:
        pos = self.order.index(self.stage.name)
        if pos == 0:
            return [
                Sample(index=i, shard=shard, seed=self.cfg.sample_seed(i)) for i in self.cfg.shard_indices(shard)
            ], None
        prev = self.order[pos - 1]
        marker = self.markers.read(prev, shard)
        if marker is None or marker.get("fingerprint") != fingerprints[prev]:
            raise StageShardFailed(f"input of {self.stage.name}: {prev} is not committed for shard {shard}")
        tars = [self.paths.stage_tar(stage, shard) for stage in self.order[:pos]]
        return read_stage_samples(tars, shard), marker["sha256"]

    def _process_all(self, samples: list[Sample]) -> list[Sample | Rejected]:
        size = self.stage.cfg.exec.batch_size
        out: list[Sample | Rejected] = []
        for i in range(0, len(samples), size):
            out.extend(self._process(samples[i : i + size]))
        return out

    def _process(self, batch: list[Sample]) -> list[Sample | Rejected]:
        """A batch that raises is retried sample by sample, from a clean copy, to isolate the culprit."""
        saved = [(copy.deepcopy(s.meta), dict(s.arrays), set(s.changed), dict(s.log16)) for s in batch]
        try:
            results = self.stage.process_batch(batch)
            if len(results) != len(batch):
                raise RuntimeError(f"{self.stage.name} returned {len(results)} results for {len(batch)} samples")
            return results
        except Exception as e:  # noqa: BLE001 - a bad sample becomes a rejection, not a crash
            for s, (meta, arrays, changed, log16) in zip(batch, saved, strict=True):
                s.meta, s.arrays, s.changed, s.log16 = meta, arrays, changed, log16
            if len(batch) > 1:
                return [r for s in batch for r in self._process([s])]
            log.error("%s: sample %s raised:\n%s", self.stage.name, batch[0].key, traceback.format_exc())
            return [Rejected(batch[0].key, self.stage.name, f"error:{self.stage.name}:{e.__class__.__name__}")]


def run_job_stages(tasks: dict[str, ShardTask], job: ShardJob) -> list[Outcome]:
    """Run the stages of `job` that `tasks` hold, in order, each starting from the previous
    one's samples in memory; stop at the first failure (later stages have no input)."""
    outcomes: list[Outcome] = []
    handoff: Handoff | None = None
    for stage in job.run:
        if stage not in tasks:
            continue  # another pool's stage
        outcome = tasks[stage].run(job.shard, job.fingerprints, handoff, job.awaits)
        outcomes.append(outcome)
        handoff = outcome.handoff()
        if outcome.status != "done":
            break
    return outcomes


def deferred_jobs(jobs: list[ShardJob], outcomes: list[Outcome], final: str) -> list[ShardJob]:
    """Jobs to run again, their final stage only, once every prompts shard of the pass is
    committed or failed: those whose final stage was deferred (datagen.pipeline.dedup)."""
    later = {o.shard for o in outcomes if o.status == "deferred"}
    return [ShardJob(j.shard, j.fingerprints, run=[final], awaits=j.awaits) for j in jobs if j.shard in later]


def settled(first: list[Outcome], second: list[Outcome]) -> list[Outcome]:
    """A pass's outcomes with its deferred final stages replaced by the second pass's; one still
    deferred then (a lower prompts shard that neither finished nor failed) counts as failed."""
    out = [o for o in first if o.status != "deferred"]
    for o in second:
        if o.status == "deferred":
            o = Outcome(o.stage, o.shard, "failed", error="prompt dedup: the prompts of lower shards did not finish")
        out.append(o)
    return out


def _subject_rejects(samples: list[Sample], stage: str) -> list[str]:
    return [r["reason"] for s in samples for r in s.meta.get("rejected_subjects", []) if r["stage"] == stage]
