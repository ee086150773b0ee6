"""What imperfect perception costs the 3D boxes: the boxes stage against the procedural truth,
fed depth and masks degraded the way real models err.

    python bench/perception_truth.py            # 48 scenes at 256x256 -> bench/results/perception_truth.json
    python bench/perception_truth.py --small    # 4 scenes, for the test (a few seconds)

Each scene goes through the real prompts, t2i, segment and depth stages (procedural backends:
exact masks and depth); subjects the segment filters drop on the exact masks are left out, so
every level starts from the same subjects. Then, per perturbation level (LEVELS), the masks and
depth are degraded (datagen.recipe.perturb) and the real boxes stage runs with its default fit
(BoxFitConfig()) and the default filter rules. `filters.apply: last` makes the boxes stage mark
a subject it would drop instead of removing it, so every subject's verdict is seen; what it fits
and what it drops are the same as with the default `early`.

Per level, over the subjects the boxes stage keeps: centre error (metres, as a share of the true
centre's depth, and as a share of the true box's diagonal like bench/e2e.py), extent error
(mean relative error of the sorted extents), volume IoU with the true box, and volume IoU with
the box fitted on exact inputs (which isolates the perturbation's cost from the fit's own limit:
only the visible surface is seen, so even exact inputs give a median IoU near 0.4). And the share
of subjects the boxes stage drops, by reason, and the share the segment filters would drop on the
degraded masks. The errors are over kept subjects only: read them with the drop share beside.

Pixel figures are at the benchmark's 256x256: 1 px here is 4 px of a 1024x1024 image. The box
fit's own `edge_erode_px` (2) is in pixels too, so at 1024 it strips a quarter of the band it
strips here: mask and depth edge errors of the same relative size cost more at full resolution
than these figures say.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from common import fill_defaults, results_path, timed, write_json  # bench/, the script's dir

from datagen.recipe import perturb
from datagen.config import RunConfig, build_config
from datagen.recipe.filters import subject_rejections
from datagen.recipe.geometry import box_volume_iou, center_error_frac, mask_box_2d
from datagen.store.inflight import Sample
from datagen.seeds import sample_seed
from datagen.stages.base import PENDING
from datagen.pipeline.preflight import build_stage

CLEAN_STAGES = ("prompts", "t2i", "segment", "depth")
IOU_SAMPLES = 8000  # as bench/e2e.py
SMOOTH_CELLS = 4  # the low-frequency depth error varies over about a quarter of the image
HOLE_RADIUS_PX = 2


@dataclass(frozen=True)
class Level:
    """One degradation of the exact inputs; zero fields leave that input alone."""

    depth_scale: float = 0.0  # global scale error, its sign drawn per scene and level
    depth_smooth: float = 0.0  # std of the low-frequency relative error
    depth_pixel: float = 0.0  # std of the per-pixel relative error
    depth_bleed_px: int = 0  # depth ramps across discontinuities over this many pixels each side
    mask_erode_px: int = 0
    mask_dilate_px: int = 0
    mask_holes: float = 0.0  # share of each mask punched out in round holes


# MoGe-2-like depth: a few percent of scale error, smooth relative error of a few percent, a
# little per-pixel noise and a ramp at silhouettes; segmenter-like masks: off by a pixel or
# three at the boundary, occasional holes. One factor at a time, then combinations.
LEVELS: dict[str, Level] = {
    "none": Level(),
    "depth_scale_3pct": Level(depth_scale=0.03),
    "depth_scale_10pct": Level(depth_scale=0.10),
    "depth_smooth_2pct": Level(depth_smooth=0.02),
    "depth_smooth_5pct": Level(depth_smooth=0.05),
    "depth_pixel_1pct": Level(depth_pixel=0.01),
    "depth_pixel_3pct": Level(depth_pixel=0.03),
    "depth_bleed_1px": Level(depth_bleed_px=1),
    "depth_bleed_3px": Level(depth_bleed_px=3),
    "mask_erode_1px": Level(mask_erode_px=1),
    "mask_erode_3px": Level(mask_erode_px=3),
    "mask_dilate_1px": Level(mask_dilate_px=1),
    "mask_dilate_3px": Level(mask_dilate_px=3),
    "mask_holes_5pct": Level(mask_holes=0.05),
    "mask_holes_15pct": Level(mask_holes=0.15),
    "depth_moge_like": Level(depth_scale=0.03, depth_smooth=0.02, depth_pixel=0.01, depth_bleed_px=1),
    "moge_like_and_sam_like": Level(depth_scale=0.03, depth_smooth=0.02, depth_pixel=0.01, depth_bleed_px=1,
                                    mask_dilate_px=1, mask_holes=0.05),
    "worst": Level(depth_scale=0.10, depth_smooth=0.05, depth_pixel=0.03, depth_bleed_px=3,
                   mask_dilate_px=3, mask_holes=0.15),
}


def run_config(size: int, scenes: int, seed: int) -> RunConfig:
    """Procedural stages, the default boxes fit and filter rules, filters marked not dropped."""
    return build_config({
        "run": {"name": "perception-truth", "seed": seed, "num_samples": scenes, "width": size, "height": size},
        "filters": {"apply": "last"},
        "stages": {
            "prompts": {"backend": "procedural", "num_subjects": [3, 10]},
            "t2i": {"backend": "procedural"}, "segment": {"backend": "procedural"},
            "depth": {"backend": "procedural"},
        },
    }, "bench/perception_truth.py")


# ---------------------------------------------------------------- one scene


def clean_sample(cfg: RunConfig, index: int) -> Sample:
    """The scene through the exact-perception stages, minus what the segment filters drop."""
    s = Sample(index=index, shard=0, seed=sample_seed(cfg.run.seed, index))
    for name in CLEAN_STAGES:
        (s,) = build_stage(name, cfg).process_batch([s])
    s.drop_subjects({i: subj[PENDING] for i, subj in enumerate(s.subjects) if PENDING in subj}, "segment")
    return s


def degrade(s: Sample, level: Level, rng: np.random.Generator) -> Sample:
    """A copy of s with degraded depth and masks, and box_2d re-read from the degraded masks (a
    real segmenter's box_2d is its own mask's)."""
    out = copy.deepcopy(s)
    depth = s.arrays["depth"]
    sign = 1.0 if rng.random() < 0.5 else -1.0
    depth = perturb.scale_depth(depth, sign * level.depth_scale)
    depth = perturb.smooth_noise(depth, level.depth_smooth, SMOOTH_CELLS, rng)
    depth = perturb.bleed_edges(depth, level.depth_bleed_px)
    depth = perturb.pixel_noise(depth, level.depth_pixel, rng)
    masks = []
    for mask in s.arrays["masks"]:
        mask = perturb.erode(mask, level.mask_erode_px)
        mask = perturb.dilate(mask, level.mask_dilate_px)
        masks.append(perturb.punch_holes(mask, level.mask_holes, HOLE_RADIUS_PX, rng))
    out.set_array("depth", depth)
    out.set_array("masks", np.stack(masks) if masks else s.arrays["masks"])
    for subj, mask in zip(out.subjects, masks, strict=True):
        subj["box_2d"] = mask_box_2d(mask)
    return out


def box_errors(box: dict, truth: dict, clean: dict | None) -> dict:
    """Errors of one fitted box against the true box (and the box fitted on exact inputs)."""
    c, ct = np.asarray(box["center"]), np.asarray(truth["center"])
    e, et = np.sort(box["extent"])[::-1], np.sort(truth["extent"])[::-1]
    dist = float(np.linalg.norm(c - ct))
    return {
        "center_err_m": dist,
        "center_err_rel_depth": dist / float(ct[2]),
        "center_err_diag": center_error_frac(box, truth),
        "extent_err_rel": float(np.mean(np.abs(e - et) / et)),
        "iou": box_volume_iou(box, truth, samples=IOU_SAMPLES),
        "iou_vs_clean_fit": None if clean is None else box_volume_iou(box, clean, samples=IOU_SAMPLES),
    }


def level_rows(cfg: RunConfig, s: Sample, name: str, clean_boxes: dict[int, dict]) -> list[dict]:
    """One row per subject: the boxes stage's verdict on the degraded inputs and its errors."""
    rng = np.random.default_rng([s.seed, zlib.crc32(name.encode())])
    d = degrade(s, LEVELS[name], rng)
    seg_drops = subject_rejections(d.arrays["masks"], [1.0] * len(d.subjects), cfg.filters)
    (out,) = build_stage("boxes", cfg).process_batch([d])
    rows = []
    for i, subj in enumerate(out.subjects):
        row = {"level": name, "scene": s.index, "sid": subj["sid"], "segment_drop": i in seg_drops,
               "boxes_drop": subj.get(PENDING)}
        if row["boxes_drop"] is None:
            row |= box_errors(subj["box_3d"], subj["truth_box_3d"], clean_boxes.get(subj["sid"]))
        rows.append(row)
    return rows


def scene_rows(args: tuple[RunConfig, int]) -> list[dict]:
    """Every level's rows for one scene; first the fit on exact inputs, iou_vs_clean_fit's reference."""
    cfg, index = args
    s = clean_sample(cfg, index)
    (fitted,) = build_stage("boxes", cfg).process_batch([copy.deepcopy(s)])
    clean = {subj["sid"]: subj["box_3d"] for subj in fitted.subjects if PENDING not in subj}
    return [row for name in LEVELS for row in level_rows(cfg, s, name, clean)]


# ---------------------------------------------------------------- summary


def quantile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None


def summarise(rows: list[dict]) -> dict:
    """Per-level figures over the subjects the boxes stage keeps, drop shares over all."""
    kept = [r for r in rows if r["boxes_drop"] is None]
    reasons: dict[str, int] = {}
    for r in rows:
        if r["boxes_drop"]:
            reasons[r["boxes_drop"]] = reasons.get(r["boxes_drop"], 0) + 1

    def col(key: str) -> list[float]:
        return [r[key] for r in kept if r[key] is not None]

    return {
        "subjects": len(rows),
        "kept": len(kept),
        "boxes_drop_share": round(1 - len(kept) / len(rows), 4),
        "boxes_drop_reasons": dict(sorted(reasons.items())),
        "segment_filter_drop_share": round(sum(r["segment_drop"] for r in rows) / len(rows), 4),
        "median_center_err_m": quantile(col("center_err_m"), 50),
        "p90_center_err_m": quantile(col("center_err_m"), 90),
        "median_center_err_rel_depth": quantile(col("center_err_rel_depth"), 50),
        "p90_center_err_rel_depth": quantile(col("center_err_rel_depth"), 90),
        "median_center_err_diag": quantile(col("center_err_diag"), 50),
        "median_extent_err_rel": quantile(col("extent_err_rel"), 50),
        "median_iou": quantile(col("iou"), 50),
        "median_iou_vs_clean_fit": quantile(col("iou_vs_clean_fit"), 50),
    }


TABLE = [("median_center_err_m", "ctr m"), ("median_center_err_rel_depth", "ctr/z"),
         ("p90_center_err_rel_depth", "p90 ctr/z"), ("median_extent_err_rel", "ext rel"),
         ("median_iou", "IoU"), ("median_iou_vs_clean_fit", "IoU clean"), ("boxes_drop_share", "drop")]


def table(levels: dict[str, dict]) -> str:
    head = f"{'level':24}" + "".join(f"{label:>10}" for _, label in TABLE)
    lines = [head, "-" * len(head)]
    for name, res in levels.items():
        cells = "".join(f"{'-' if res[k] is None else f'{res[k]:.3f}':>10}" for k, _ in TABLE)
        lines.append(f"{name:24}{cells}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="4 scenes: a test of the code, not the figures")
    ap.add_argument("--scenes", type=int, help="default 48 (4 with --small)")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--seed", type=int, default=0, help="run seed: scene i has sample_seed(seed, i)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path, default=results_path("perception_truth"))
    args = ap.parse_args(argv)
    fill_defaults(args, {"scenes": 48}, {"scenes": 4}, args.small)
    return args


def all_rows(cfg: RunConfig, scenes: int, workers: int) -> list[dict]:
    jobs = [(cfg, i) for i in range(scenes)]
    if workers > 1:
        # Scenes are independent and rows come back in scene order: the same JSON for any count.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            per_scene = pool.map(scene_rows, jobs)
    else:
        per_scene = [scene_rows(job) for job in jobs]
    return [r for scene in per_scene for r in scene]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = run_config(args.size, args.scenes, args.seed)
    wall_s, rows = timed(lambda: all_rows(cfg, args.scenes, args.workers))
    levels = {name: summarise([r for r in rows if r["level"] == name]) for name in LEVELS}
    report = {
        "small": args.small,
        "settings": {
            "scenes": args.scenes, "width": args.size, "height": args.size, "run_seed": args.seed,
            "subjects_per_scene": [3, 10], "stages": "procedural prompts/t2i/segment/depth, then the boxes stage",
            "box_fit": cfg.stages.boxes.fit.model_dump(), "filters": cfg.filters.model_dump(exclude={"apply"}),
            "smooth_noise_cells": SMOOTH_CELLS, "hole_radius_px": HOLE_RADIUS_PX, "iou_samples": IOU_SAMPLES,
            "levels": {name: asdict(level) for name, level in LEVELS.items()},
        },
        "levels": levels,
        "wall_s": round(wall_s, 1),
        "workers": args.workers,
    }
    write_json(args.out, report)
    print(table(levels))
    print(f"{len(rows) // len(LEVELS)} subjects in {args.scenes} scenes, {report['wall_s']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
