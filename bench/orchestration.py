"""Orchestration benchmark: the real runner on N fake GPUs, with simulated GPU stages.

    python bench/orchestration.py --gpus 16 --json bench/results/orchestration.json

Runs `datagen run` (Ray, the real stage order and pool planning) with `simulate.enabled`:
every GPU stage runs its procedural backend, then holds its GPU share for the cost its config
gives (`configs/sigma_set27k.yaml` by default, times --time-scale) and rejects at the cost
model's rates. It does so twice on the same reject model: the config's cheap-first order and
the paper's order (`paper_order`: prompts, t2i, segment, depth, repose, boxes, filter, with
every filter applied last). Reports per order:
- gpu_seconds_per_kept: modelled GPU-seconds (unscaled) per kept sample, from what each stage
  actually received;
- efficiency: kept samples per second against the limit N / gpu_seconds_per_kept, i.e. the
  modelled GPU time done over N x the time, while every GPU pool has work (steady state);
  efficiency_whole_run: the same over the whole span, first task start to last commit;
- per-stage GPU utilisation (GPU time over the pool's GPUs x span) and the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# bench/, the script's dir; before datagen: it puts the checkout on sys.path.
from common import ROOT, datagen_cli, results_path, timed, write_json

from datagen.config import load_config, resolve_config_path

PAPER_ORDER = ["prompts", "t2i", "segment", "depth", "repose", "boxes", "filter"]


def overrides(args: argparse.Namespace) -> list[str]:
    return [
        "simulate.enabled=true",
        f"simulate.time_scale={args.time_scale}",
        f"ray.num_gpus={args.gpus}",
        f"ray.num_cpus={args.cpus}",
        f"run.num_samples={args.samples}",
        f"run.shard_size={args.shard_size}",
        # The procedural stand-ins are cheap at this size, so the 2-core machine is not the limit.
        f"run.width={args.size}",
        f"run.height={args.size}",
        "stages.repose.identity_size=32",
        "stages.boxes.fit.max_points=500",
        "output.png_compress_level=1",
    ]


def run_variant(name: str, config: Path, extra: list[str], args: argparse.Namespace, work: Path) -> dict:
    out = work / name
    sets = [x for o in overrides(args) + extra for x in ("--set", o)]
    env = dict(os.environ, DATAGEN_SIM_SESSION=f"{os.getpid()}-{name}")
    env.pop("RAY_ADDRESS", None)
    cmd = datagen_cli("run", "--config", str(config), "--out", str(out), *sets)
    total, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT))
    if proc.returncode != 0:
        sys.exit(f"{name}: datagen run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return measure(load_config(out / "run.yaml"), out, args, total)


def measure(cfg, out: Path, args: argparse.Namespace, total_s: float) -> dict:
    stats = [json.loads(p.read_text()) for p in sorted((out / "final").glob("shard-*.stats.json"))]
    pools = json.loads((out / "logs" / "pools.json").read_text())["pools"]
    pool_gpus = {s: p["workers"] * p["gpus"] for p in pools for s in p["stages"]}
    kept = sum(s["samples_written"] for s in stats)
    start = min(f["started_at"] for s in stats for f in s["stages"].values())
    end = max(f["finished_at"] for s in stats for f in s["stages"].values())
    span = end - start
    per_stage = {}
    gpu_s_model = 0.0
    for stage in cfg.stages.order:
        if cfg.stages.stage(stage).exec.gpus <= 0:
            continue
        cost = cfg.stages.stage(stage).cost
        samples = sum(s["stages"][stage]["samples_in"] for s in stats)
        subjects = sum(s["stages"][stage]["subjects_in"] for s in stats)
        gpu_s = cost.seconds(samples, subjects)
        gpu_s_model += gpu_s
        per_stage[stage] = {
            "samples_in": samples,
            "subjects_in": subjects,
            "gpu_seconds": round(gpu_s, 1),
            "pool_gpus": pool_gpus[stage],
            "utilisation": round(gpu_s * args.time_scale / (pool_gpus[stage] * span), 4),
        }
    per_kept = gpu_s_model / kept
    limit = args.gpus / (per_kept * args.time_scale)
    steady = steady_state(cfg, stats, pool_gpus, args)
    return {
        "samples": sum(s["samples_in"] for s in stats),
        "kept": kept,
        "span_s": round(span, 2),
        "wall_s_with_startup": round(total_s, 2),
        "gpu_seconds_per_kept": round(per_kept, 3),
        "kept_per_s": round(kept / span, 3),
        "limit_kept_per_s": round(limit, 3),
        "efficiency": steady["efficiency"],
        "efficiency_whole_run": round(kept / span / limit, 4),
        "steady_window_s": steady["window_s"],
        "bottleneck": max(per_stage, key=lambda s: per_stage[s]["utilisation"]),
        "workers": ", ".join(f"{'+'.join(p['stages'])}={p['workers']}x{p['gpus']:g}GPU" for p in pools),
        "stages": per_stage,
    }


def steady_state(cfg, stats: list[dict], pool_gpus: dict[str, float], args: argparse.Namespace) -> dict:
    """GPU time done over N x the time while the big GPU pools (a GPU or more each) all have
    work: from when the last of them starts its first shard to when the first of them finishes
    its last. Small pools share GPUs and run ahead, so their co-tenants absorb their idle time.
    What is left out, the run's start (actor boot, pipeline fill) and end (drain), shrinks with
    the run's length against one shard's time; `efficiency_whole_run` includes it."""
    gpu_stages = [s for s in cfg.stages.order if cfg.stages.stage(s).exec.gpus > 0]
    big = [s for s in gpu_stages if pool_gpus[s] >= 1] or gpu_stages
    tasks = []
    for st in stats:
        for stage in gpu_stages:
            f = st["stages"][stage]
            cost = cfg.stages.stage(stage).cost
            work = cost.seconds(f["samples_in"], f["subjects_in"]) * args.time_scale
            tasks.append((stage, f["started_at"], f["finished_at"], work))
    begin = max(min(t[1] for t in tasks if t[0] == s) for s in big)
    end = min(max(t[2] for t in tasks if t[0] == s) for s in big)
    if end <= begin:
        return {"efficiency": None, "window_s": 0.0}
    done = 0.0
    for _, a, b, work in tasks:
        overlap = max(0.0, min(b, end) - max(a, begin))
        done += work * overlap / (b - a) if b > a else 0.0
    return {"efficiency": round(done / (args.gpus * (end - begin)), 4), "window_s": round(end - begin, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=16)
    ap.add_argument("--json", type=Path, default=results_path("orchestration"))
    ap.add_argument("--config", default="sigma_set27k")
    ap.add_argument("--samples", type=int, default=2400)
    ap.add_argument("--shard-size", type=int, default=4)
    ap.add_argument("--time-scale", type=float, default=0.1, help="1 modelled GPU-second lasts this many seconds")
    ap.add_argument("--size", type=int, default=96, help="procedural image size")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--only", choices=["cheap_first", "paper_order"])
    args = ap.parse_args()
    config = resolve_config_path(args.config)
    variants = {
        "cheap_first": [],
        "paper_order": [f"stages.order=[{','.join(PAPER_ORDER)}]", "filters.apply=last"],
    }
    results = {}
    with tempfile.TemporaryDirectory(prefix="datagen-orch-") as tmp:
        for name, extra in variants.items():
            if args.only and name != args.only:
                continue
            results[name] = run_variant(name, config, extra, args, Path(tmp))
            print(name, json.dumps({k: v for k, v in results[name].items() if k != "stages"}), flush=True)
    report = {
        "gpus": args.gpus,
        "config": str(args.config),
        "samples": args.samples,
        "shard_size": args.shard_size,
        "time_scale": args.time_scale,
        "cpu_cores": os.cpu_count(),
        **results,
    }
    if len(results) == 2:
        a, b = results["cheap_first"]["gpu_seconds_per_kept"], results["paper_order"]["gpu_seconds_per_kept"]
        report["gpu_seconds_saved_share"] = round(1 - a / b, 4)
        report["same_kept_count"] = results["cheap_first"]["kept"] == results["paper_order"]["kept"]
    write_json(args.json, report)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
