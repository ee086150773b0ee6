"""How many workers each pool gets, and what each reserves, within `--workers` and the cluster.

A pool serves one stage, or, with `ray.fuse_cpu_stages`, a run of consecutive CPU-only stages
that its workers run back to back on a shard (what Ray Data's operator fusion does for
compatible operators). GPU stages always get a pool of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from datagen.config import RunConfig
from datagen.errors import UserError


@dataclass(frozen=True)
class Pool:
    stages: tuple[str, ...]
    workers: int
    cpus: float  # per worker, as requested from Ray
    gpus: float

    @property
    def name(self) -> str:
        return "+".join(self.stages)


@dataclass(frozen=True)
class PoolPlan:
    pools: list[Pool]
    cap: int
    notice: str | None  # one line for the user when a request was cut down

    def describe(self) -> str:
        return ", ".join(f"{p.name}={p.workers}" for p in self.pools)


def worker_cap(num_pools: int, cluster_cpus: float, cluster_gpus: float) -> int:
    # One worker per CPU or GPU is what a cluster can keep busy; every pool needs one.
    return max(num_pools, int(cluster_cpus) + int(cluster_gpus))


def group_stages(cfg: RunConfig, stages: list[str]) -> list[tuple[str, ...]]:
    """Pools' stages: one each, or consecutive CPU-only stages together when fusing."""
    groups: list[list[str]] = []
    for s in stages:
        cpu_only = cfg.stages.stage(s).exec.gpus == 0
        prev_cpu_only = bool(groups) and all(cfg.stages.stage(x).exec.gpus == 0 for x in groups[-1])
        if cfg.ray.fuse_cpu_stages and cpu_only and prev_cpu_only:
            groups[-1].append(s)
        else:
            groups.append([s])
    return [tuple(g) for g in groups]


def plan_pools(
    cfg: RunConfig, stages: list[str], workers: int | None, cluster_cpus: float, cluster_gpus: float
) -> PoolPlan:
    for s in stages:
        need = cfg.stages.stage(s).exec.gpus
        if need > 0 and need > cluster_gpus:
            raise UserError(f"stages.{s}.exec.gpus: {need:g} GPU(s) per worker, but the cluster has {cluster_gpus:g}")
    groups = group_stages(cfg, stages)
    execs = {g: [cfg.stages.stage(s).exec for s in g] for g in groups}
    cpus = {g: max(e.cpus for e in execs[g]) for g in groups}
    gpus = {g: max(e.gpus for e in execs[g]) for g in groups}
    wanted = {g: max(e.concurrency for e in execs[g]) for g in groups}
    # A fused CPU group is data-parallel: it takes one worker per CPU the GPU pools leave.
    gpu_reserved = sum(wanted[g] * cpus[g] for g in groups if gpus[g] > 0)
    for g in groups:
        if len(g) > 1:
            wanted[g] = max(wanted[g], int(max(cluster_cpus - gpu_reserved, 1) // cpus[g]))
    cap = worker_cap(len(groups), cluster_cpus, cluster_gpus)
    budget = sum(wanted.values()) if workers is None else workers
    notice = None
    if budget > cap:
        notice = (
            f"--workers {budget} capped to {cap}: the cluster has {cluster_cpus:g} CPUs and "
            f"{cluster_gpus:g} GPUs (one worker per CPU or GPU, at least one per pool)"
        )
        budget = cap
    if budget < len(groups):
        raise UserError(f"--workers {budget}: need at least one worker per pool ({len(groups)} pools to run)")
    counts = _share(wanted, budget)
    # Reserve no more CPUs than exist, so every pool can start; the OS shares the cores.
    asked = sum(counts[g] * cpus[g] for g in groups)
    scale = min(1.0, cluster_cpus / asked) if asked else 1.0
    pools = [Pool(g, counts[g], round(cpus[g] * scale, 4), gpus[g]) for g in groups]
    return PoolPlan(pools, cap, notice)


def _share(wanted: dict, budget: int) -> dict:
    """Split `budget` workers in proportion to `wanted`, at least one each; never more than
    wanted."""
    total = sum(wanted.values())
    if budget >= total:
        return dict(wanted)
    counts = {k: 1 for k in wanted}
    left = budget - len(wanted)
    # Largest remainder over what each pool wants beyond its first worker.
    extra = {k: (w - 1) * left / max(1, total - len(wanted)) for k, w in wanted.items()}
    for k in wanted:
        counts[k] += int(extra[k])
    rest = budget - sum(counts.values())
    for k in sorted(wanted, key=lambda k: -(extra[k] - int(extra[k])))[:rest]:
        counts[k] += 1
    return counts
