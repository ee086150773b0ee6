"""Storage of sigma-set/2 on the demo (issue I): bytes per kept sample in final/ and per sample
in stages/, the log16 depth's worst relative error (clean depth and MoGe-like depth), a JPEG
target's size and error, and `datagen plan`'s estimate beside the measured figures.

    python bench/storage.py            # the demo at 1024², 16 samples -> bench/results/storage.json
    python bench/storage.py --tiny     # 128², 4 samples: a test of the code, not the figures

The demo runs once with PNG targets, then resumes a copy with `output.image_format: jpg`, which
redoes only the filter stage. The depth error is measured on the renderer's float depth of the
same scenes, before anything quantised it: the codec alone (clean, and after the MoGe-like
perturbation of bench/perception_truth.py, whose per-pixel noise is what compresses worst),
and end to end (the final shard's depth.png against that float depth).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from common import datagen_cli, fill_defaults, results_path, timed, write_json  # bench/, the script's dir
from perception_truth import LEVELS, SMOOTH_CELLS

from datagen.config import RunConfig, load_run_config
from datagen.final.read import iter_final_samples
from datagen.pipeline.costs import estimated_bytes_per_sample
from datagen.pipeline.preflight import build_stage
from datagen.recipe import perturb
from datagen.store.depth_png import decode_depth_png, encode_depth_png
from datagen.store.inflight import Sample
from datagen.store.paths import stats_beside

GOALS = {"final_mb_per_kept_sample": 1.2, "stages_mb_per_sample": 3.0, "depth_worst_rel_err": 1e-4}
JPEG_QUALITY = 95


def run_demo(run_dir: Path, size: int, samples: int, *extra: str) -> float:
    args = ["run", "--config", "configs/demo.yaml", "--out", str(run_dir), "--executor", "local",
            "--set", f"run.width={size}", "--set", f"run.height={size}", "--set", f"run.num_samples={samples}",
            "--set", f"run.shard_size={samples}", *extra]  # fmt: skip
    seconds, proc = timed(lambda: subprocess.run(datagen_cli(*args), capture_output=True, text=True, check=False))
    if proc.returncode != 0:
        raise SystemExit(f"datagen run failed:\n{proc.stderr[-3000:]}")
    return seconds


def member_kind(name: str) -> str:
    """'000000_000003.depth.png' -> 'depth.png'; per-subject numbers folded ('mask_NN.png')."""
    field = name.split(".", 1)[1]
    stem, dot, ext = field.partition(".")
    if "_" in stem and stem.rsplit("_", 1)[1].isdigit():
        stem = stem.rsplit("_", 1)[0] + "_NN"
    return stem + dot + ext


def tar_bytes(tars: list[Path]) -> tuple[int, dict[str, int]]:
    """(bytes on disk, member bytes by kind) of some tar files."""
    kinds: Counter[str] = Counter()
    for path in tars:
        with tarfile.open(path) as tar:
            for member in tar:
                kinds[member_kind(member.name)] += member.size
    return sum(p.stat().st_size for p in tars), dict(sorted(kinds.items()))


def sizes(run_dir: Path, samples: int) -> dict:
    final_tars = sorted((run_dir / "final").glob("shard-*.tar"))
    kept = sum(json.loads(stats_beside(p).read_text())["samples_written"] for p in final_tars)
    final_total, final_kinds = tar_bytes(final_tars)
    per_stage = {}
    stages_total = 0
    for stage_dir in sorted((run_dir / "stages").iterdir()):
        total, kinds = tar_bytes(sorted(stage_dir.glob("shard-*.tar")))
        stages_total += total
        per_stage[stage_dir.name] = {"mb_per_sample": mb(total / samples), "members_mb_per_sample": {k: mb(v / samples) for k, v in kinds.items()}}
    return {
        "kept": kept,
        "final_mb_per_kept_sample": mb(final_total / max(kept, 1)),
        "final_members_mb_per_kept_sample": {k: mb(v / max(kept, 1)) for k, v in final_kinds.items()},
        "stages_mb_per_sample": mb(stages_total / samples),
        "stages": per_stage,
    }


def mb(n: float) -> float:
    return round(n / 1e6, 4)


# ---------------------------------------------------------------- depth


def float_depths(cfg: RunConfig, samples: int) -> dict[int, np.ndarray]:
    """The renderer's float32 depth of each demo scene, before any stage quantised it."""
    from datagen.world.render import render_scene

    prompts = build_stage("prompts", cfg)
    out = {}
    for i in range(samples):
        (s,) = prompts.process_batch([Sample(index=i, shard=0, seed=cfg.sample_seed(i))])
        out[i] = render_scene(s.meta["truth"]["scene"]).depth.astype(np.float32)
    return out


def moge_like(depth: np.ndarray, rng: np.random.Generator, pixel_noise: bool = True) -> np.ndarray:
    """bench/perception_truth.py's MoGe-like depth; without its per-pixel noise, the smooth
    error a network's upsampled output has (what a real depth map's texture is closer to)."""
    level = LEVELS["depth_moge_like"]
    depth = perturb.scale_depth(depth, level.depth_scale)
    depth = perturb.smooth_noise(depth, level.depth_smooth, SMOOTH_CELLS, rng)
    depth = perturb.bleed_edges(depth, level.depth_bleed_px)
    return perturb.pixel_noise(depth, level.depth_pixel, rng) if pixel_noise else depth


def depth_error(depth: np.ndarray, back: np.ndarray) -> tuple[float, bool]:
    """(worst relative error on known pixels, unknown pixels exactly unknown)."""
    known = np.isfinite(depth) & (depth > 0)
    err = float(np.max(np.abs(back[known].astype(np.float64) / depth[known] - 1))) if known.any() else 0.0
    return err, bool(np.array_equal(np.isnan(back), ~known))


def codec_figures(depths: list[np.ndarray], levels: tuple[int, ...]) -> dict:
    """log16's error (the same at every PNG level) and its size and encode time per level."""
    errs, exact, spans = [], True, []
    by_level = {}
    for level in levels:
        sizes_, seconds = [], 0.0
        for depth in depths:
            t, (data, rng) = timed(lambda depth=depth: encode_depth_png(depth, level))
            seconds += t
            sizes_.append(len(data))
            if level == levels[0]:
                err, unknown_exact = depth_error(depth, decode_depth_png(data, rng))
                errs.append(err)
                exact &= unknown_exact
                spans.append(rng.log_max - rng.log_min)
        by_level[f"level_{level}"] = {"mb_per_image": mb(float(np.mean(sizes_))), "encode_s_per_image": round(seconds / len(depths), 4)}
    f16 = [np.abs(d.astype(np.float16).astype(np.float64) / d - 1)[np.isfinite(d) & (d > 0)].max() for d in depths]
    return {
        **by_level,
        "float32_npy_mb_per_image": mb(depths[0].nbytes),
        "worst_rel_err": float(max(errs)),
        "bound_rel_err": float(max(spans) / 131068),  # FORMAT.md: (log_max - log_min) / 131068
        "unknown_pixels_exact": exact,
        "float16_worst_rel_err": float(max(f16)),  # the alternative for intermediate shards, not taken
    }


def end_to_end_error(run_dir: Path, depths: dict[int, np.ndarray]) -> dict:
    errs, exact = [], True
    for sample in iter_final_samples(run_dir):
        index = int(sample.key.split("_")[1])
        err, unknown_exact = depth_error(depths[index], sample.depth)
        errs.append(err)
        exact &= unknown_exact
    return {"worst_rel_err": max(errs) if errs else None, "unknown_pixels_exact": exact, "samples": len(errs)}


# ---------------------------------------------------------------- the target as JPEG


def jpeg_figures(png_run: Path, jpg_run: Path) -> dict:
    diffs, psnrs = [], []
    targets = {s.key: s.image for s in iter_final_samples(png_run)}
    for sample in iter_final_samples(jpg_run):
        a, b = targets[sample.key].astype(np.float64), sample.image.astype(np.float64)
        mse = float(np.mean((a - b) ** 2))
        psnrs.append(99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse))
        diffs.append(float(np.mean(np.abs(a - b))))
    return {"quality": JPEG_QUALITY, "mean_abs_err_8bit": round(float(np.mean(diffs)), 3),
            "min_psnr_db": round(float(min(psnrs)), 2), "mean_psnr_db": round(float(np.mean(psnrs)), 2)}  # fmt: skip


def plan_estimate(cfg: RunConfig, subjects: float) -> dict:
    stages = sum(estimated_bytes_per_sample(cfg, name, subjects) for name in cfg.stages.order[:-1])
    final = estimated_bytes_per_sample(cfg, cfg.stages.order[-1], subjects)
    return {"final_mb_per_kept_sample": mb(final), "stages_mb_per_sample": mb(stages), "mean_subjects": round(subjects, 2)}


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="128², 4 samples: a test of the code, not the figures")
    ap.add_argument("--size", type=int, help="image side in pixels (default 1024; 128 with --tiny)")
    ap.add_argument("--samples", type=int, help="demo samples (default 16; 4 with --tiny)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    fill_defaults(args, {"size": 1024, "samples": 16}, {"size": 128, "samples": 4}, args.tiny)
    args.out = args.out or results_path("storage", args.tiny)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp:
        png_run, jpg_run = Path(tmp) / "png", Path(tmp) / "jpg"
        png_s = run_demo(png_run, args.size, args.samples)
        shutil.copytree(png_run, jpg_run)
        jpg_s = run_demo(jpg_run, args.size, args.samples, "--set", "output.image_format=jpg",
                         "--set", f"output.jpeg_quality={JPEG_QUALITY}")  # fmt: skip
        cfg = load_run_config(png_run)
        png, jpg = sizes(png_run, args.samples), sizes(jpg_run, args.samples)
        depths = list(float_depths(cfg, args.samples).values())
        rng = np.random.default_rng(0)
        level = cfg.output.png_compress_level
        levels = tuple(sorted({level, 1, 6, 9}))
        kinds = {
            "clean": depths,
            "moge_like": [moge_like(d, rng) for d in depths],
            "moge_like_smooth": [moge_like(d, rng, pixel_noise=False) for d in depths],
        }
        depth = {kind: codec_figures(maps, levels) for kind, maps in kinds.items()}
        kept_subjects = sum(len(sample.subjects) for sample in iter_final_samples(png_run))
        # What a kept sample would weigh with each kind of depth (the rest as measured).
        stored = png["final_members_mb_per_kept_sample"]["depth.png"]
        for figures in depth.values():
            figures["final_mb_per_kept_sample"] = round(png["final_mb_per_kept_sample"] - stored + figures[f"level_{level}"]["mb_per_image"], 4)
        depth["end_to_end"] = end_to_end_error(png_run, dict(enumerate(depths)))
        report = {
            "tiny": args.tiny,
            "settings": {"config": "configs/demo.yaml", "width": args.size, "height": args.size, "samples": args.samples,
                         "png_compress_level": level, "stage_depth_png_level": 1, "moge_like": LEVELS["depth_moge_like"].__dict__},  # fmt: skip
            "png": png,
            "jpg": {**jpg, "target": jpeg_figures(png_run, jpg_run)},
            "depth": depth,
            "plan_estimate": plan_estimate(cfg, kept_subjects / max(png["kept"], 1)),
            "wall_s": {"png_run": round(png_s, 1), "jpg_resume": round(jpg_s, 1)},
        }
    worst = max(report["depth"][k]["worst_rel_err"] for k in ("clean", "moge_like", "moge_like_smooth"))
    end_to_end = report["depth"]["end_to_end"]["worst_rel_err"] or 0.0
    final_goal, stages_goal = GOALS["final_mb_per_kept_sample"], GOALS["stages_mb_per_sample"]
    report["goals"] = {
        "final_mb_per_kept_sample": {
            "goal": final_goal, "png": png["final_mb_per_kept_sample"], "met": png["final_mb_per_kept_sample"] <= final_goal,
            **{f"with_{k}_depth": depth[k]["final_mb_per_kept_sample"] for k in ("moge_like", "moge_like_smooth")},
        },
        "stages_mb_per_sample": {"goal": stages_goal, "png": png["stages_mb_per_sample"], "met": png["stages_mb_per_sample"] <= stages_goal},
        "depth_worst_rel_err": {"goal": GOALS["depth_worst_rel_err"], "worst": worst, "end_to_end": end_to_end,
                                "met": max(worst, end_to_end) <= GOALS["depth_worst_rel_err"]},
    }  # fmt: skip
    write_json(args.out, report)
    for name, goal in report["goals"].items():
        print(f"{name}: {goal}")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
