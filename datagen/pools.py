"""How many workers each stage gets, and what each reserves, within `--workers` and the cluster."""

from __future__ import annotations

from dataclasses import dataclass

from datagen.config import RunConfig
from datagen.errors import UserError


@dataclass(frozen=True)
class Pool:
    stage: str
    workers: int
    cpus: float  # per worker, as requested from Ray
    gpus: float


@dataclass(frozen=True)
class PoolPlan:
    pools: list[Pool]
    cap: int
    notice: str | None  # one line for the user when a request was cut down


def worker_cap(num_stages: int, cluster_cpus: float, cluster_gpus: float) -> int:
    # One worker per CPU or GPU is what a cluster can keep busy; every stage needs one.
    return max(num_stages, int(cluster_cpus) + int(cluster_gpus))


def plan_pools(
    cfg: RunConfig, stages: list[str], workers: int | None, cluster_cpus: float, cluster_gpus: float
) -> PoolPlan:
    wanted = {s: cfg.stages.stage(s).exec.concurrency for s in stages}
    for s in stages:
        need = cfg.stages.stage(s).exec.gpus
        if need > 0 and need > cluster_gpus:
            raise UserError(
                f"stages.{s}.exec.gpus: {need} GPU(s) per worker, but the cluster has {cluster_gpus:g}"
            )
    cap = worker_cap(len(stages), cluster_cpus, cluster_gpus)
    budget = sum(wanted.values()) if workers is None else workers
    notice = None
    if budget > cap:
        notice = (
            f"--workers {budget} capped to {cap}: the cluster has {cluster_cpus:g} CPUs and "
            f"{cluster_gpus:g} GPUs (one worker per CPU or GPU, at least one per stage)"
        )
        budget = cap
    if budget < len(stages):
        raise UserError(f"--workers {budget}: need at least one worker per stage ({len(stages)} stages to run)")
    counts = _share(wanted, budget)
    # Reserve no more CPUs than exist, so every pool can start; the OS shares the cores.
    asked = sum(counts[s] * cfg.stages.stage(s).exec.cpus for s in stages)
    scale = min(1.0, cluster_cpus / asked) if asked else 1.0
    pools = [
        Pool(s, counts[s], round(cfg.stages.stage(s).exec.cpus * scale, 4), cfg.stages.stage(s).exec.gpus)
        for s in stages
    ]
    return PoolPlan(pools, cap, notice)


def _share(wanted: dict[str, int], budget: int) -> dict[str, int]:
    """Split `budget` workers in proportion to `wanted`, at least one each, never above wanted
    when the budget is smaller than the total wanted."""
    total = sum(wanted.values())
    if budget >= total:
        return dict(wanted)
    counts = {s: 1 for s in wanted}
    left = budget - len(wanted)
    # Largest remainder over what each stage wants beyond its first worker.
    extra = {s: (w - 1) * left / max(1, total - len(wanted)) for s, w in wanted.items()}
    for s in wanted:
        counts[s] += int(extra[s])
    rest = budget - sum(counts.values())
    for s in sorted(wanted, key=lambda s: -(extra[s] - int(extra[s])))[:rest]:
        counts[s] += 1
    return counts
