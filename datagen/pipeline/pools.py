"""How many workers each pool gets, and what each reserves, within `--workers` and the cluster.

A pool serves one stage, or, with `ray.fuse_cpu_stages`, a run of consecutive CPU-only stages
that its workers run back to back on a shard (what Ray Data's operator fusion does for
compatible operators). GPU stages always get a pool of their own.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

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

    def save(self, path: Path) -> None:
        """The plan, for benchmarks and post-mortems (utilisation per pool)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        pools = [{"stages": list(p.stages), "workers": p.workers, "cpus": p.cpus, "gpus": p.gpus} for p in self.pools]
        path.write_text(json.dumps({"pools": pools, "notice": self.notice}, indent=1))

    def describe(self) -> str:
        return ", ".join(f"{p.name}={p.workers}" + (f"x{p.gpus:g}GPU" if p.gpus else "") for p in self.pools)


def worker_cap(num_pools: int, cluster_cpus: float, cluster_gpus: float, min_gpu_share: float = 1.0) -> int:
    # One worker per CPU, and per GPU share, is what a cluster can keep busy; every pool needs one.
    return max(num_pools, int(cluster_cpus) + int(cluster_gpus / min(1.0, min_gpu_share) + 1e-9))


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
    cfg: RunConfig,
    stages: list[str],
    workers: int | None,
    cluster_cpus: float,
    cluster_gpus: float,
    needs: dict[str, float] | None = None,
) -> PoolPlan:
    """Workers per pool. With `needs` (expected worker-seconds per stage, datagen.pipeline.costs) and
    `ray.balance_pools`, GPU pools are sized so each gets GPUs in proportion to its work."""
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
        if gpus[g] == 0:
            # More workers than the cluster has CPUs only share the same cores, and every Ray
            # worker costs CPU of its own even when idle: 12 CPU workers on 2 cores took CPU
            # the GPU stages' workers needed (bench/orchestration.py).
            wanted[g] = min(wanted[g], max(1, int(cluster_cpus)))
    shares = [gpus[g] for g in groups if gpus[g] > 0]
    cap = worker_cap(len(groups), cluster_cpus, cluster_gpus, min(shares, default=1.0))
    budget = sum(wanted.values()) if workers is None else workers
    notice = None
    if budget > cap:
        notice = (
            f"--workers {budget} capped to {cap}: the cluster has {cluster_cpus:g} CPUs and "
            f"{cluster_gpus:g} GPUs (one worker per CPU or GPU share, at least one per pool)"
        )
        budget = cap
    if budget < len(groups):
        raise UserError(f"--workers {budget}: need at least one worker per pool ({len(groups)} pools to run)")
    counts = _share(wanted, budget)
    gpu_groups = [g for g in groups if gpus[g] > 0]
    if needs is not None and cfg.ray.balance_pools and gpu_groups and all(sum(needs.get(s, 0) for s in g) > 0 for g in gpu_groups):
        cpu_counts = {g: counts[g] for g in groups if gpus[g] == 0}
        total = cap if workers is None else budget
        room = max(len(gpu_groups), total - sum(cpu_counts.values()))
        counts = {**cpu_counts, **balance_gpu_pools(
            {g: gpus[g] for g in gpu_groups}, {g: sum(needs.get(s, 0) for s in g) for g in gpu_groups},
            int(cluster_gpus), room)}
    # Reserve no more CPUs than exist, so every pool can start; the OS shares the cores.
    # Rounded down: rounded to nearest, 35 x 0.0488 + 12 x 0.0244 asked 2.0008 of 2 CPUs, one
    # worker never started, and Ray, seeing a request it could not grant, ran gc.collect() in
    # every worker every 10 s (its remedy for a resource deadlock), stalling the whole run.
    asked = sum(counts[g] * cpus[g] for g in groups)
    scale = min(1.0, cluster_cpus / asked) if asked else 1.0
    pools = [Pool(g, counts[g], math.floor(cpus[g] * scale * 1e4) / 1e4, gpus[g]) for g in groups]
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


def fits_on_gpus(sizes: list[float], num_gpus: int) -> bool:
    """Whether workers asking these GPU shares fit on `num_gpus` GPUs: whole workers take
    whole GPUs; fractions go best-fit, largest first (Ray places a fraction best-fit too)."""
    free = [1.0] * num_gpus
    for size in sorted(sizes, reverse=True):
        if size >= 1:
            empty = [i for i, f in enumerate(free) if f >= 1.0 - 1e-9][: int(round(size))]
            if len(empty) < round(size):
                return False
            for i in empty:
                free[i] = 0.0
            continue
        candidates = [i for i, f in enumerate(free) if f >= size - 1e-9]
        if not candidates:
            return False
        best = min(candidates, key=lambda i: free[i] - size)
        free[best] -= size
    return True


def balance_gpu_pools(sizes: dict, needs: dict, num_gpus: int, max_workers: int) -> dict:
    """Workers per GPU pool so that the slowest pool is as fast as possible.

    `sizes`: GPUs per worker; `needs`: expected GPU-seconds of each pool's work. Starting from
    one worker each, the pool with the least GPU time per unit of work gets one more worker,
    until its next one does not fit; Ray Data's autoscaling pools instead let the cheapest
    stage grab actors first (DESIGN.md).

    Room the slowest pool cannot use is left free rather than given to a faster pool. Workers
    sharing a GPU split its time (CUDA time-slices processes), so a GPU's spare room is not
    lost: its busy co-tenant gets that time. A worker for a pool that is not the bottleneck
    adds no throughput, and quarter-GPU workers given the last room can end up alone on a
    GPU, which then idles as much as they do (with idcheck, 16 GPUs got a third segment worker
    that way, and one GPU held only segment, depth and idcheck: half of it idle).
    """
    counts = {g: 1 for g in sizes}
    while sum(counts.values()) < max_workers:
        g = min(counts, key=lambda g: counts[g] * sizes[g] / needs[g])
        trial = {**counts, g: counts[g] + 1}
        if not fits_on_gpus([sizes[k] for k in trial for _ in range(trial[k])], num_gpus):
            break
        counts = trial
    return counts
