"""3D boxes against the procedural truth: the gravity fit (the default) and the paper's PCA fit of
the visible surface, side by side, on clean depth and under MoGe-like perturbations.

    python bench/box_truth.py            # 48 demo scenes at 512x512 -> bench/results/box_truth.json
    python bench/box_truth.py --small    # 3 scenes at 256x256, for the test (a few seconds)

Each scene is the demo config's (configs/demo.yaml: procedural world, 3-10 subjects, its filter
rules) through the real prompts, t2i, segment and depth stages; subjects the segment filters drop
are left out, so every (level, method) starts from the same subjects. Per level the depth and
masks are degraded as bench/perception_truth.py does (datagen.recipe.perturb): "clean" (exact),
"moge_like" (3% scale, 2% smooth, 1% per-pixel error, 1 px bleed) and "moge_sam_like" (that plus
masks dilated 1 px with 5% holes). Then the real boxes stage runs with the demo's fit settings and
`fit.method` set to each method; `filters.apply: last` marks what it would drop instead of
removing it.

Per (level, method), over the subjects the boxes stage keeps: median and p90 centre error as a
share of the true box's diagonal (as bench/e2e.py), median volume IoU with the true box; the
drop share; the fit actually used and the fallbacks (gravity: "no_ground" images fall back to
pca, "on_subject" / "off_ground" boxes are upright but not extended to the ground); and the same
figures over the subjects the world stacked on another ("stacked", truth: standing above z = 0),
with how often the fit saw them as standing on a subject.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import zlib

import numpy as np
from common import fill_defaults, results_path, timed, write_json  # bench/, the script's dir
from perception_truth import LEVELS, clean_sample, degrade, quantile

from datagen.config.load import resolve_config_path
from datagen.config.run import load_config
from datagen.pipeline.preflight import build_stage
from datagen.recipe.geometry import box_volume_iou, center_error_frac
from datagen.stages.base import PENDING

BOX_LEVELS = {"clean": "none", "moge_like": "depth_moge_like", "moge_sam_like": "moge_like_and_sam_like"}
METHODS = ("gravity", "pca")
IOU_SAMPLES = 8000  # as bench/e2e.py


def run_config(size: int, scenes: int, seed: int, method: str):
    overrides = [f"run.seed={seed}", f"run.num_samples={scenes}", f"run.width={size}", f"run.height={size}",
                 "filters.apply=last", f"stages.boxes.fit.method={method}"]
    return load_config(resolve_config_path("demo"), overrides)


def scene_rows(args: tuple[int, int, int]) -> list[dict]:
    size, seed, index = args
    cfgs = {m: run_config(size, index + 1, seed, m) for m in METHODS}
    s = clean_sample(cfgs[METHODS[0]], index)
    world = s.meta["truth"]["scene"]["subjects"]
    rows = []
    for level, name in BOX_LEVELS.items():
        rng = np.random.default_rng([s.seed, zlib.crc32(name.encode())])
        d = degrade(s, LEVELS[name], rng) if name != "none" else copy.deepcopy(s)
        for method, cfg in cfgs.items():
            (out,) = build_stage("boxes", cfg).process_batch([copy.deepcopy(d)])
            for subj in out.subjects:
                fit = subj["boxes"]
                row = {"level": level, "method": method, "scene": s.index, "sid": subj["sid"],
                       "stacked": float(world[subj["sid"]]["position"][2]) > 1e-6, "drop": subj.get(PENDING),
                       "used": fit.get("method"), "support": fit.get("support"), "fallback": fit.get("fallback")}
                if row["drop"] is None:
                    truth = subj["truth_box_3d"]
                    row["iou"] = box_volume_iou(subj["box_3d"], truth, samples=IOU_SAMPLES)
                    row["center_err_diag"] = center_error_frac(subj["box_3d"], truth)
                rows.append(row)
    return rows


def _counts(rows: list[dict], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        if r[key] is not None:
            out[str(r[key])] = out.get(str(r[key]), 0) + 1
    return dict(sorted(out.items()))


def summarise(rows: list[dict]) -> dict:
    kept = [r for r in rows if r["drop"] is None]
    stacked = [r for r in kept if r["stacked"]]
    return {
        "subjects": len(rows),
        "kept": len(kept),
        "drop_share": round(1 - len(kept) / len(rows), 4) if rows else None,
        "drop_reasons": _counts(rows, "drop"),
        "median_iou": quantile([r["iou"] for r in kept], 50),
        "median_center_err_diag": quantile([r["center_err_diag"] for r in kept], 50),
        "p90_center_err_diag": quantile([r["center_err_diag"] for r in kept], 90),
        "fit_used": _counts(rows, "used"),
        "fallbacks": _counts(rows, "fallback"),
        "support": _counts(kept, "support"),
        "stacked": {
            "kept": len(stacked),
            "median_iou": quantile([r["iou"] for r in stacked], 50),
            "median_center_err_diag": quantile([r["center_err_diag"] for r in stacked], 50),
            "support": _counts(stacked, "support"),
        },
    }


def table(results: dict) -> str:
    head = f"{'level':15}{'method':9}{'kept':>6}{'IoU':>8}{'ctr/diag':>10}{'p90':>8}  fallbacks"
    lines = [head, "-" * (len(head) + 20)]
    for level, per_method in results.items():
        for method, r in per_method.items():
            iou = "-" if r["median_iou"] is None else f"{r['median_iou']:.3f}"
            ctr = "-" if r["median_center_err_diag"] is None else f"{r['median_center_err_diag']:.3f}"
            p90 = "-" if r["p90_center_err_diag"] is None else f"{r['p90_center_err_diag']:.3f}"
            lines.append(f"{level:15}{method:9}{r['kept']:>6}{iou:>8}{ctr:>10}{p90:>8}  {r['fallbacks']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="3 scenes at 256x256: a test of the code, not the figures")
    ap.add_argument("--scenes", type=int, help="default 48 (3 with --small)")
    ap.add_argument("--size", type=int, help="image side in pixels; default 512, the demo's (256 with --small)")
    ap.add_argument("--seed", type=int, default=0, help="run seed: scene i has sample_seed(seed, i)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", default=None, help="default bench/results/box_truth.json (box_truth_tiny.json with --small)")
    args = ap.parse_args(argv)
    fill_defaults(args, {"scenes": 48, "size": 512}, {"scenes": 3, "size": 256}, args.small)
    if args.out is None:
        args.out = results_path("box_truth", tiny=args.small)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    jobs = [(args.size, args.seed, i) for i in range(args.scenes)]

    def run() -> list[dict]:
        if args.workers > 1:  # scenes are independent; rows come back in scene order
            with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
                return [r for scene in pool.map(scene_rows, jobs) for r in scene]
        return [r for job in jobs for r in scene_rows(job)]

    wall_s, rows = timed(run)
    results = {level: {m: summarise([r for r in rows if r["level"] == level and r["method"] == m]) for m in METHODS}
               for level in BOX_LEVELS}
    cfg = run_config(args.size, args.scenes, args.seed, "gravity")
    report = {
        "small": args.small,
        "settings": {
            "config": "configs/demo.yaml", "scenes": args.scenes, "width": args.size, "height": args.size,
            "run_seed": args.seed, "box_fit": cfg.stages.boxes.fit.model_dump(exclude={"method"}),
            "levels": {level: LEVELS[name].__dict__ for level, name in BOX_LEVELS.items()},
            "iou_samples": IOU_SAMPLES,
        },
        "goals": {"clean_gravity_median_iou": 0.6, "clean_gravity_median_center_err_diag": 0.05},
        "results": results,
        "wall_s": round(wall_s, 1),
        "workers": args.workers,
    }
    clean = results["clean"]["gravity"]
    report["goals_met"] = bool(clean["median_iou"] is not None and clean["median_iou"] >= 0.6
                               and clean["median_center_err_diag"] <= 0.05)
    write_json(args.out, report)
    print(table(results))
    print(f"{len(rows) // (len(BOX_LEVELS) * len(METHODS))} subjects in {args.scenes} scenes, {report['wall_s']} s; "
          f"goals met: {report['goals_met']}; wrote {args.out}")


if __name__ == "__main__":
    main()
