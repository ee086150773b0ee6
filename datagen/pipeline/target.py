"""`--target-kept N`: run until N samples are kept, then keep exactly the first N in index order.

Rounds. Round 1 processes `run.target_first_share` (default half) of `run.num_samples`, the
first estimate, in whole shards, so a pessimistic estimate is not all spent. Each later
round adds the shards the survival measured so far says are missing: per bucket, the shortfall
divided by the bucket's kept rate, plus two binomial standard deviations, so a round rarely falls
short and never overshoots by much. A round is sized only from the stats of the shards before
it, all committed, so the shards a run ends with depend on the data alone, never on timing or
the worker count; a resumed run replays the same rounds from its committed stats.

The cut (datagen.pipeline.target_cut) then keeps, per bucket, the first samples in index order:
shards past the last one needed move to `surplus/` (kept, not lost: a larger target moves them
back), over-target samples are removed from the shards that hold them (counted as the final
stage's `over_target` rejections), and `run.num_samples` ends at the last shard kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datagen.config import RunConfig
from datagen.errors import UserError
from datagen.pipeline.kept_target import Target, kept_histogram
from datagen.pipeline.markers import final_shards
from datagen.pipeline.target_cut import apply_cut, restore_surplus, uncut_other_targets
from datagen.store.paths import RunPaths

Z = 2.0  # binomial standard deviations a round adds to its expected shortfall
MAX_ROUNDS = 12


def shards_to_add(target: Target, kept: list[int], processed: int, shard_size: int) -> int:
    """Shards the next round adds: 0 once every bucket has its samples."""
    extra = 0.0
    for need, k in zip(target.short(kept), kept):
        if need == 0:
            continue
        if k == 0:  # nothing kept yet in this bucket: no rate to go by, double the run
            extra = max(extra, float(processed))
            continue
        rate = k / processed
        extra = max(extra, (need + Z * math.sqrt(need * (1 - rate))) / rate)
    return math.ceil(extra / shard_size)


def with_shards(cfg: RunConfig, shards: int) -> RunConfig:
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"num_samples": shards * cfg.run.shard_size})})


RoundRunner = Callable[[RunConfig], bool]  # runs the shards of cfg; False when any failed


def reach_target(cfg: RunConfig, paths: RunPaths, run_round: RoundRunner, say: Callable[[str], None],
                 resuming: bool = False) -> RunConfig:
    """Run rounds until the target is kept, then cut. Returns the config of the run as it ends
    (its num_samples the last shard kept), or of the round that failed. `resuming`: cfg is the
    run's own run.yaml, whose num_samples is where the run got to (not a first estimate)."""
    target = Target.of(cfg)
    assert target is not None
    first = cfg.run.num_samples * (1.0 if resuming else cfg.run.target_first_share)
    shards = max(1, math.ceil(first / cfg.run.shard_size))
    uncut_other_targets(paths, target)
    for round_no in range(1, MAX_ROUNDS + 1):
        current = with_shards(cfg, shards)
        restore_surplus(paths, range(shards))
        if not run_round(current):
            return current
        kept_by_shard = _kept_by_shard(current, paths, target)
        kept = [sum(k[b] for k in kept_by_shard) for b in range(len(target.buckets))]
        processed = shards * cfg.run.shard_size
        add = shards_to_add(target, kept, processed, cfg.run.shard_size)
        survival = sum(sum(k) for k in kept_by_shard) / processed
        if add == 0:
            last = apply_cut(cfg.stages.order[-1], paths, target, kept_by_shard)
            final = with_shards(cfg, last + 1)
            say(f"target reached: {target.total} kept from the first {(last + 1) * cfg.run.shard_size} samples "
                f"(survival {survival:.3f} over {processed}); {shards - last - 1} shard(s) past the cut moved to surplus/")
            return final
        say(f"round {round_no}: {sum(kept)} of {target.total} kept (survival {survival:.3f}); "
            f"adding {add} shard(s) of {cfg.run.shard_size}")
        shards += add
    raise UserError(f"run.target_kept: not reached after {MAX_ROUNDS} rounds ({shards} shards); "
                    f"short by {target.short(kept)} per bucket {target.spec()}")


def _kept_by_shard(cfg: RunConfig, paths: RunPaths, target: Target) -> list[list[int]]:
    markers = dict(final_shards(cfg, paths))
    missing = [s for s in range(cfg.num_shards) if s not in markers]
    if missing:  # a round that returned without failures committed every final shard
        raise UserError(f"{paths.final_dir}: final shard {missing[0]} missing after its round; run again to resume")
    return [target.per_bucket(kept_histogram(markers[s])) for s in range(cfg.num_shards)]
