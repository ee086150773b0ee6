"""End-to-end throughput of the demo, through Ray and in one process, in the same run.

    python bench/e2e.py [--num-samples 512] [--json bench/results/e2e.json]

Reports kept samples per second:
- `ray_demo`: the demo config as shipped (64 samples), end to end, Ray start-up included;
- `ray`: the same config with --num-samples N, through Ray (its fixed cost, ~3 s to start a
  local Ray, ~2 s to start workers, ~1.3 s to shut down, amortised over a longer run), with
  consecutive CPU-only stages fused into one pool (`ray.fuse_cpu_stages`, the default);
- `ray_per_stage_pools`: the same with one pool per stage (`ray.fuse_cpu_stages=false`);
- `one_process`: the same N samples with --executor local pinned to one core (taskset);
- `ray_vs_one_process_per_core` = ray / (one_process * cores Ray used): what orchestration
  costs (1.0 = perfect scaling).
And the boxes stage against the procedural truth (keep_truth): median centre error as a
fraction of the true box's diagonal, median volume IoU, over every kept subject.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from common import datagen_cli, results_path, timed, write_json  # bench/, the script's dir


def timed_run(out: Path, extra: list[str], pin_one_core: bool = False) -> dict:
    cmd = datagen_cli("run", "--config", "demo", "--out", str(out), *extra)
    if pin_one_core:
        cmd = ["taskset", "-c", "0", *cmd]
    wall, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True))
    if proc.returncode != 0:
        raise SystemExit(f"run failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    status = json.loads(subprocess.run(datagen_cli("status", str(out), "--json"),
                                       capture_output=True, text=True, check=True).stdout)
    stage_s = {s["stage"]: round(s["wall_s"], 2) for s in status["stages"]}
    return {"kept": status["kept"], "wall_s": round(wall, 2), "kept_per_s": round(status["kept"] / wall, 3),
            "stage_wall_s": stage_s}


def boxes_vs_truth(run: Path) -> dict:
    import tarfile

    from datagen.recipe.geometry import box_volume_iou, center_error_frac

    errs, ious = [], []
    for shard in sorted((run / "final").glob("shard-*.tar")):
        with tarfile.open(shard) as t:
            for m in t.getmembers():
                if m.name.endswith(".json"):
                    meta = json.loads(t.extractfile(m).read())
                    for subj, truth in zip(meta["subjects"], meta["truth"]["subjects"], strict=True):
                        errs.append(center_error_frac(subj["box_3d"], truth["box_3d"]))
                        ious.append(box_volume_iou(subj["box_3d"], truth["box_3d"], samples=8000))
    return {"subjects": len(errs), "median_center_error_frac": round(float(np.median(errs)), 4),
            "median_volume_iou": round(float(np.median(ious)), 4),
            "p90_center_error_frac": round(float(np.percentile(errs, 90)), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-samples", type=int, default=512)
    ap.add_argument("--json", default=str(results_path("e2e")))
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="datagen-e2e-"))
    try:
        n = ["--num-samples", str(args.num_samples)]
        ray_demo = timed_run(work / "ray_demo", [])
        ray = timed_run(work / "ray", n)
        per_stage = timed_run(work / "per_stage", [*n, "--set", "ray.fuse_cpu_stages=false"])
        local = timed_run(work / "local", [*n, "--executor", "local"], pin_one_core=True)
        result = {
            "machine": {"cores": cores},
            "config": "configs/demo.yaml (procedural, 512x512, keep_truth)",
            "ray_demo": ray_demo,
            "ray": ray | {"num_samples": args.num_samples, "cores": cores},
            "ray_per_stage_pools": per_stage | {"num_samples": args.num_samples, "cores": cores},
            "one_process": local | {"num_samples": args.num_samples, "cores": 1},
            "ray_vs_one_process_per_core": round(ray["kept_per_s"] / (local["kept_per_s"] * cores), 3),
            "ray_per_stage_pools_vs_one_process_per_core": round(
                per_stage["kept_per_s"] / (local["kept_per_s"] * cores), 3
            ),
            "goals": {"kept_per_s": 4.0, "ray_vs_one_process_per_core": 0.8},
            "boxes_vs_truth": boxes_vs_truth(work / "ray"),
        }
        same = all(
            (work / run / "final" / p.name).read_bytes() == p.read_bytes()
            for p in (work / "local" / "final").glob("*.tar")
            for run in ("ray", "per_stage")
        )
        result["ray_and_one_process_final_shards_identical"] = same
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(args.json, result, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
