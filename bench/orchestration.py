"""Orchestration benchmark: the real runner on N fake GPUs, with simulated GPU stages.

    python bench/orchestration.py                # 16 fake GPUs, 1,200 samples: the figures
    python bench/orchestration.py --tiny         # 2 fake GPUs, 16 samples: a test of the code

Runs `datagen run` (Ray, the real stage order and pool planning) with `simulate.enabled`:
every GPU stage runs its procedural backend, then holds its GPU share for the cost its config
gives (`configs/sigma_set27k.yaml` by default, times --time-scale) and rejects at the cost
model's rates. It does so twice on the same reject model: the config's cheap-first order and
the paper's order of the same stages (`paper_order`, derived by `paper_order()` from the
paper's preset, `configs/sigma_set27k_paper.yaml`, with every filter applied last as there).
Reports per order:
- gpu_seconds_per_kept: modelled GPU-seconds (unscaled) per kept sample, from what each stage
  actually received;
- efficiency: kept samples per second against the limit N / gpu_seconds_per_kept, i.e. the
  modelled GPU time done over N x the time, while every GPU pool has work (steady state);
  efficiency_whole_run: the same over the whole span, first task start to last commit;
- per-stage GPU utilisation (GPU time over the pool's GPUs x span; `utilisation_steady`: in
  the steady window) and the bottleneck; over 1 where a pool's workers got the time their
  idle co-tenants on a GPU left (workers sharing a GPU split its time, as CUDA does);
- the machine's load while it ran (other processes share the cores and skew the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# bench/, the script's dir; before datagen: it puts the checkout on sys.path.
from common import ROOT, datagen_cli, fill_defaults, results_path, timed, write_json

from datagen.config import load_config, resolve_config_path

PAPER_PRESET = "sigma_set27k_paper"
DEFAULTS = {"gpus": 16, "samples": 1200, "shard_size": 4, "time_scale": 0.1, "size": 96}
TINY = {"gpus": 2, "samples": 16, "shard_size": 4, "time_scale": 0.01, "size": 48}


def paper_order(order: list[str], paper: list[str]) -> list[str]:
    """The configured stages in the paper's order: the stages the paper has in its order
    (`paper`, its preset's), and each stage beyond the paper (idcheck) right after the stage
    it follows in `order`, so it still comes after what it reads (idcheck after repose)."""
    out = [s for s in paper if s in order]
    for i, stage in enumerate(order):
        if stage not in out:
            out.insert(out.index(order[i - 1]) + 1 if i else 0, stage)
    return out


def paper_variant(config: Path) -> tuple[list[str], list[str]]:
    """The paper's order of `config`'s stages, and the overrides that run it so."""
    order = load_config(config).stages.order
    paper = load_config(resolve_config_path(PAPER_PRESET))
    stages = paper_order(order, paper.stages.order)
    return stages, [f"stages.order=[{','.join(stages)}]", f"filters.apply={paper.filters.apply}"]


class LoadSampler:
    """The 1-minute load average every few seconds while a run goes: what else used the cores."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s, self.samples = every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples or [os.getloadavg()[0]]
        return {"load_avg_1min_mean": round(sum(s) / len(s), 2), "load_avg_1min_max": round(max(s), 2)}


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
    with LoadSampler() as load:
        total, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT))
    if proc.returncode != 0:
        sys.exit(f"{name}: datagen run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {**measure(load_config(out / "run.yaml"), out, args, total), "machine": load.summary()}


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
    for stage, figures in per_stage.items():
        figures["utilisation_steady"] = steady["utilisation"].get(stage)
    return {
        "order": cfg.stages.order,
        "filters_apply": cfg.filters.apply,
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
        return {"efficiency": None, "window_s": 0.0, "utilisation": {}}
    done = dict.fromkeys(gpu_stages, 0.0)
    for stage, a, b, work in tasks:
        overlap = max(0.0, min(b, end) - max(a, begin))
        done[stage] += work * overlap / (b - a) if b > a else 0.0
    window = end - begin
    return {
        "efficiency": round(sum(done.values()) / (args.gpus * window), 4),
        "window_s": round(window, 2),
        "utilisation": {s: round(done[s] / (pool_gpus[s] * window), 4) for s in gpu_stages},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="2 fake GPUs, 16 samples: a test of the code, not the figures")
    ap.add_argument("--gpus", type=int, help="fake GPUs (default 16; 2 with --tiny)")
    ap.add_argument("--json", type=Path, help="default bench/results/orchestration.json (_tiny.json with --tiny)")
    ap.add_argument("--config", default="sigma_set27k")
    ap.add_argument("--samples", type=int, help="default 1200; 16 with --tiny")
    ap.add_argument("--shard-size", type=int, help="default 4")
    ap.add_argument("--time-scale", type=float, help="1 modelled GPU-second lasts this many seconds (default 0.1; 0.01 with --tiny)")
    ap.add_argument("--size", type=int, help="procedural image size (default 96; 48 with --tiny)")
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--only", choices=["cheap_first", "paper_order"])
    args = ap.parse_args()
    fill_defaults(args, DEFAULTS, TINY, args.tiny)
    args.json = args.json or results_path("orchestration", tiny=args.tiny)
    config = resolve_config_path(args.config)
    variants = {"cheap_first": [], "paper_order": paper_variant(config)[1]}
    results = {}
    with tempfile.TemporaryDirectory(prefix="datagen-orch-") as tmp:
        for name, extra in variants.items():
            if args.only and name != args.only:
                continue
            results[name] = run_variant(name, config, extra, args, Path(tmp))
            print(name, json.dumps({k: v for k, v in results[name].items() if k != "stages"}), flush=True)
    report = {
        "tiny": args.tiny,
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
