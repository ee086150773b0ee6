"""`datagen plan`: what a run will cost before it is paid for.

From the cost model (config estimates, or a finished run's measurements): per stage the
samples and subjects in and out, GPU-hours and storage; the worker split that balances the
pipeline on a given number of GPUs (the one the runner would use), its bottleneck and the
wall-clock time it implies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datagen.config import RunConfig
from datagen.recipe.paper_rules import beyond_paper
from datagen.pipeline.costs import expected_flow, gpu_seconds_per_kept, measured_costs
from datagen.errors import UserError
from datagen.pipeline.pools import plan_pools


def forecast(cfg: RunConfig, num_samples: int, gpus: int, cpus: int, measured_run: Path | None = None) -> dict[str, Any]:
    measured = measured_costs(measured_run, cfg) if measured_run else None
    flows = expected_flow(cfg, num_samples, measured)
    needs = {f.stage: f.seconds for f in flows}
    if gpus < 1 and any(f.gpus > 0 for f in flows):
        raise UserError("--gpus: the config has GPU stages; plan for at least one GPU")
    pools = plan_pools(cfg, cfg.stages.order, None, cpus, gpus, needs)
    by_stage = {s: p for p in pools.pools for s in p.stages}
    stages = []
    hours_per_pool: dict[str, float] = {}
    for f in flows:
        pool = by_stage[f.stage]
        # A pool's throughput: its GPUs (GPU stages) or its workers (CPU stages, one CPU each).
        capacity = pool.workers * pool.gpus if pool.gpus > 0 else pool.workers
        pool_seconds = sum(needs[s] for s in pool.stages)
        hours_per_pool[pool.name] = pool_seconds / capacity / 3600 if capacity else 0.0
        # One shard's trip through this stage on one worker: the pipeline's fill and drain.
        per_sample = f.seconds / f.samples_in if f.samples_in else 0.0
        stages.append(
            {
                "stage": f.stage,
                "gpus_per_worker": f.gpus,
                "workers": pool.workers,
                "samples_in": round(f.samples_in, 1),
                "samples_out": round(f.samples_out, 1),
                "subjects_in": round(f.subjects_in, 1),
                "subjects_out": round(f.subjects_out, 1),
                "gpu_hours": round(f.gpu_seconds / 3600, 3),
                "cpu_hours": round(0.0 if f.gpus > 0 else f.seconds / 3600, 3),
                "storage_gb": round(f.bytes_out / 1e9, 3),
                "shard_trip_s": round(per_sample * cfg.run.shard_size / (f.gpus if 0 < f.gpus < 1 else 1), 1),
                "source": f.source,
            }
        )
    bottleneck = max(hours_per_pool, key=hours_per_pool.get)
    wall_h = hours_per_pool[bottleneck]
    fill_h = sum(s["shard_trip_s"] for s in stages) / 3600
    kept = flows[-1].samples_out
    total_gpu_h = sum(f.gpu_seconds for f in flows) / 3600
    return {
        "config_sha256": cfg.config_sha256(),
        "num_samples": num_samples,
        "gpus": gpus,
        "cpus": cpus,
        "order": cfg.stages.order,
        "filters_apply": cfg.filters.apply,
        "stages": stages,
        "workers": pools.describe(),
        "total_gpu_hours": round(total_gpu_h, 2),
        "gpu_seconds_per_kept": round(gpu_seconds_per_kept(flows), 3),
        "expected_kept": round(kept, 1),
        "storage_gb": round(sum(f.bytes_out for f in flows) / 1e9, 2),
        "final_storage_gb": round(flows[-1].bytes_out / 1e9, 2),
        "bottleneck": bottleneck,
        "wall_hours": round(wall_h, 2),
        # While the first shard crosses the pipeline later pools wait, and at the end earlier ones
        # do: about one trip each, on part of the GPUs.
        "fill_drain_hours": round(fill_h, 2),
        "gpu_utilisation": round(total_gpu_h / (gpus * (wall_h + fill_h)), 3) if gpus and wall_h else None,
        "estimated_stages": [s["stage"] for s in stages if s["source"] == "estimate" and (s["gpu_hours"] or s["cpu_hours"])],
        "measured_from": str(measured_run) if measured_run else None,
        "beyond_paper": beyond_paper(cfg),
        "target": _target_shards(cfg, num_samples, kept),
    }


def _target_shards(cfg: RunConfig, num_samples: int, kept: float) -> dict[str, Any] | None:
    """With `run.target_kept`: the shards the expected survival needs against the first estimate."""
    target = cfg.run.kept_target
    if target is None or kept <= 0:
        return None
    size = cfg.run.shard_size
    first = -(-num_samples // size)
    expected = -(-round(target * num_samples / kept) // size)
    return {"target_kept": target, "expected_survival": round(kept / num_samples, 4), "first_shards": first,
            "expected_shards": expected, "expected_extra_shards": expected - first, "shard_size": size}


def render(report: dict[str, Any]) -> list[str]:
    head = f"{'stage':<9}{'workers':>12}{'samples in':>12}{'out':>10}{'subjects in':>13}{'out':>10}{'GPU-h':>10}{'storage':>10}  cost"
    lines = [
        f"plan: {report['num_samples']} samples on {report['gpus']} GPUs, {report['cpus']} CPUs; "
        f"order {', '.join(report['order'])} (filters {report['filters_apply']})",
        head,
    ]
    for s in report["stages"]:
        share = f"x{s['gpus_per_worker']:g}GPU" if s["gpus_per_worker"] else " CPU"
        source = "ESTIMATE" if s["source"] == "estimate" else s["source"]
        lines.append(
            f"{s['stage']:<9}{str(s['workers']) + share:>12}{s['samples_in']:>12.0f}{s['samples_out']:>10.0f}"
            f"{s['subjects_in']:>13.0f}{s['subjects_out']:>10.0f}{s['gpu_hours']:>10.1f}{s['storage_gb']:>8.1f}GB  {source}"
        )
    lines += [
        f"total: {report['total_gpu_hours']:.1f} GPU-hours ({report['gpu_seconds_per_kept']:.1f} GPU-s per kept sample), "
        f"{report['expected_kept']:.0f} samples kept, {report['storage_gb']:.1f} GB on disk "
        f"({report['final_storage_gb']:.1f} GB final shards)",
        f"bottleneck: {report['bottleneck']}; about {report['wall_hours']:.1f} h of wall clock on {report['gpus']} GPUs "
        f"plus ~{report['fill_drain_hours']:.2f} h of pipeline fill and drain (shard_size sets it)",
    ]
    if t := report.get("target"):
        extra = t["expected_extra_shards"]
        more = (f"about {extra} shard(s) of {t['shard_size']} added in rounds"
                if extra > 0 else f"the first estimate holds {-extra} shard(s) more than needed: they end in surplus/")
        lines.append(f"target: {t['target_kept']} kept at the expected survival {t['expected_survival']:.2f} needs about "
                     f"{t['expected_shards']} shards against the first estimate's {t['first_shards']}: {more}")
    beyond = report.get("beyond_paper", [])
    lines.append(f"beyond the paper: {len(beyond)} rule(s)" + (" (configs/sigma_set27k_paper.yaml has none)" if beyond else ": the paper's recipe"))
    lines += [f"  - {rule}" for rule in beyond]
    if report["estimated_stages"]:
        lines.append(
            f"estimates, not measurements: {', '.join(report['estimated_stages'])} "
            "(`datagen plan --from RUN` uses a finished run's figures)"
        )
    return lines
