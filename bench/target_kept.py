"""`--target-kept` against a fixed run size: GPU-hours to reach 27,000 kept samples.

    python bench/target_kept.py            # -> bench/results/target_kept.json
    python bench/target_kept.py --small    # toy size, for the test

For each survival rate (50%, 65%, 80%) sample i is kept with that probability (one seeded draw
per index), and the runner's own round sizing (datagen.pipeline.target.shards_to_add) and cut
(datagen.pipeline.target_cut.plan_cut) run on those draws from `configs/sigma_set27k.yaml`'s
first estimate (41,000 samples; the first round runs `run.target_first_share` of it) and shard
size, until the target is kept. The fixed policy runs the 41,000 and keeps what survives.

GPU-hours per processed sample are the config's cost model (`datagen plan`: its GPU-seconds
over the samples it starts, at the survival the model gives); a sample rejected early costs
less in the cheap-first order, so every figure scales the same way and the ratios hold. Each
round ends with the pipeline draining; the plan's fill-and-drain time per round on 16 GPUs is
reported as the wall-clock price of the rounds.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from common import fill_defaults, results_path, timed, write_json  # bench/, the script's dir

from datagen.config import load_config, resolve_config_path
from datagen.pipeline.forecast import forecast
from datagen.pipeline.kept_target import Target
from datagen.pipeline.target import shards_to_add
from datagen.pipeline.target_cut import plan_cut

SURVIVAL = (0.50, 0.65, 0.80)
GPUS = 16


def run_target(keep: np.ndarray, target: int, first: int, shard: int) -> dict:
    """The rounds a `--target-kept` run makes on these keep draws."""
    t = Target([(1, 10**6, target)])
    shards, rounds = max(1, math.ceil(first / shard)), 1
    while True:
        per_shard = keep[: shards * shard].reshape(shards, shard).sum(axis=1)
        add = shards_to_add(t, [int(per_shard.sum())], shards * shard, shard)
        if add == 0:
            break
        shards, rounds = shards + add, rounds + 1
    last, _ = plan_cut(t, [[int(k)] for k in per_shard])
    return {"processed": shards * shard, "rounds": rounds, "dataset_samples": (last + 1) * shard,
            "surplus_samples": (shards - last - 1) * shard, "kept": target}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a 270-sample target: a test of the code, not the figures")
    ap.add_argument("--target", type=int, help="kept samples wanted (default 27,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    fill_defaults(args, {"target": 27000}, {"target": 270}, args.small)
    out = args.out or results_path("target_kept", tiny=args.small)

    cfg = load_config(resolve_config_path("sigma_set27k"))
    fixed = round(cfg.run.num_samples * args.target / 27000)  # the config's 41,000 for 27,000
    shard = cfg.run.shard_size if not args.small else 4
    plan = forecast(cfg, cfg.run.num_samples, GPUS, 64)
    gpu_s_per_sample = plan["total_gpu_hours"] * 3600 / cfg.run.num_samples
    drain_h = plan["fill_drain_hours"]

    def compare() -> list[dict]:
        rows = []
        for r in SURVIVAL:
            keep = np.random.default_rng([args.seed, int(r * 1000)]).random(fixed * 4) < r
            t = run_target(keep, args.target, fixed * cfg.run.target_first_share, shard)
            fixed_kept = int(keep[:fixed].sum())
            rows.append({
                "survival": r,
                "fixed": {"processed": fixed, "kept": fixed_kept, "short": max(0, args.target - fixed_kept),
                          "surplus": max(0, fixed_kept - args.target),
                          "gpu_hours": round(fixed * gpu_s_per_sample / 3600, 2)},
                "target_kept": {**t, "gpu_hours": round(t["processed"] * gpu_s_per_sample / 3600, 2),
                                "drain_wall_hours": round(t["rounds"] * drain_h, 3)},
            })
        return rows

    wall_s, rows = timed(compare)
    for row in rows:
        f, t = row["fixed"], row["target_kept"]
        row["gpu_hours_saved"] = round(f["gpu_hours"] - t["gpu_hours"], 2)
        print(f"survival {row['survival']:.2f}: fixed {f['processed']} -> {f['kept']} kept, {f['gpu_hours']} GPU-h | "
              f"target {t['processed']} in {t['rounds']} rounds -> {t['kept']} kept, {t['gpu_hours']} GPU-h, "
              f"{t['surplus_samples']} surplus")
    write_json(out, {
        "small": args.small,
        "settings": {"config": "configs/sigma_set27k.yaml", "target": args.target, "fixed_samples": fixed,
                     "shard_size": shard, "first_share": cfg.run.target_first_share, "seed": args.seed,
                     "gpu_seconds_per_processed_sample": round(gpu_s_per_sample, 3),
                     "fill_drain_hours_per_round_on_16_gpus": drain_h},
        "results": rows,
        "wall_s": round(wall_s, 2),
    })
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
