"""Deterministic prompt dedup: the lowest sample index keeps a duplicated prompt.

The prompts stage claims each sample's normalised prompt (datagen.store.claims) in whatever
order shards reach it, and rejects a sample at once when a lower index already holds its
prompt. A claim only ever adds a claimant and the lowest one owns the prompt, so a sample's
fate is settled once every lower index has claimed, that is once the prompts stage of every
lower shard is committed (or failed: then it claims nothing this run). The final stage of
shard s settles it: it runs once the prompts of every lower shard this run processes are
settled (the others claimed in an earlier run, or claim nothing), and rejects as
`duplicate_prompt` each kept sample whose prompt a lower index took over.

A final stage that finds lower prompts still running does not wait, since its worker may hold
the very shard it would wait for (Ray Data queues several shards per actor, in no promised
order): it is deferred, and the runner runs it again once the pass is over, when every prompts
shard is settled. Shards flow roughly in order, so most final stages run on time; only the
GPU-free last stage of a few shards runs late. Which stage counts a duplicate (prompts, or the
final stage) depends on timing; which samples reach the final shards does not.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from datagen.config import RunConfig
from datagen.pipeline.fingerprint import stage_fingerprints
from datagen.pipeline.markers import RunMarkers
from datagen.store.claims import PromptRegistry
from datagen.store.inflight import Rejected, Sample
from datagen.store.paths import RunPaths

Ranges = list[list[int]]  # [start, stop) shard ranges, sorted


def dedup_active(cfg: RunConfig) -> bool:
    return "prompts" in cfg.stages.order and cfg.stages.stage("prompts").dedup


def shard_ranges(shards: Iterable[int]) -> Ranges:
    """Sorted shard numbers as [start, stop) ranges (a fresh run's are one range)."""
    out: Ranges = []
    for s in shards:
        if out and out[-1][1] == s:
            out[-1][1] = s + 1
        else:
            out.append([s, s + 1])
    return out


def ranges_below(ranges: Ranges, shard: int) -> Ranges:
    """The part of `ranges` below `shard`."""
    cut = bisect.bisect_left([r[0] for r in ranges], shard)
    out = [list(r) for r in ranges[:cut]]
    if out and out[-1][1] > shard:
        out[-1][1] = shard
    return out


class ClaimCheck:
    """The final stage's side of dedup: is it time to settle, and which samples lost their prompt."""

    def __init__(self, cfg: RunConfig, paths: RunPaths) -> None:
        from datagen.stages.prompts import claims_root

        self.cfg = cfg
        self.markers = RunMarkers(cfg, paths)
        self.registry = PromptRegistry(claims_root(cfg, paths.root))
        self.settled: set[int] = set()  # shards whose prompts are committed or failed: they stay so

    @classmethod
    def for_run(cls, cfg: RunConfig, paths: RunPaths) -> ClaimCheck | None:
        return cls(cfg, paths) if dedup_active(cfg) else None

    def ready(self, awaits: Sequence[Sequence[int]]) -> bool:
        """Whether the prompts stage of every shard in `awaits` is committed or failed."""
        return all(k in self.settled or self._settled(k) for start, stop in awaits for k in range(start, stop))

    def _settled(self, k: int) -> bool:
        fp = stage_fingerprints(self.cfg, k)["prompts"]
        marker = self.markers.read("prompts", k)
        committed = marker is not None and marker.get("fingerprint") == fp
        done = committed or self.markers.failure("prompts", k, fp) is not None
        if done:
            self.settled.add(k)
        return done

    def apply(self, results: list[Sample | Rejected], stage: str) -> list[Sample | Rejected]:
        """Kept samples whose prompt a lower index owns become `duplicate_prompt` rejections."""
        return [
            r if not isinstance(r, Sample) or self._owns(r) else Rejected(r.key, stage, "duplicate_prompt") for r in results
        ]

    def _owns(self, s: Sample) -> bool:
        prompt = s.meta.get("prompt", {}).get("full")
        # Claiming again is harmless (idempotent) and restores a claims directory someone removed.
        return prompt is None or self.registry.claim(prompt, s.key) == s.key
