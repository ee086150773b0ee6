"""datagen.recipe.perturb, bench/perception_truth.py --small and bench/gpu_perception.py --tiny."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datagen.recipe import perturb

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str, timeout: float = 300) -> None:
    proc = subprocess.run([sys.executable, f"bench/{script}", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)  # stderr shown below
    assert proc.returncode == 0, proc.stderr[-3000:]


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


# ---------------------------------------------------------------- perturb: depth


def test_scale_depth_multiplies_and_keeps_unknown_depth_unknown() -> None:
    depth = np.array([[1.0, 2.0], [np.nan, 4.0]], dtype=np.float32)
    out = perturb.scale_depth(depth, -0.1)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, depth * 0.9, rtol=1e-6)
    assert np.isnan(out[1, 0])


def test_smooth_field_is_unit_low_frequency_and_seeded() -> None:
    field = perturb.smooth_field((64, 80), 4, np.random.default_rng(0))
    assert field.shape == (64, 80)
    assert abs(field.mean()) < 1e-9 and field.std() == pytest.approx(1.0)
    # Neighbouring pixels nearly equal: the error bends surfaces, it does not roughen them.
    assert np.corrcoef(field[:, :-1].ravel(), field[:, 1:].ravel())[0, 1] > 0.95
    np.testing.assert_array_equal(field, perturb.smooth_field((64, 80), 4, np.random.default_rng(0)))


def test_pixel_noise_has_the_relative_std_asked_for() -> None:
    depth = np.full((200, 200), 3.0, dtype=np.float32)
    out = perturb.pixel_noise(depth, 0.02, np.random.default_rng(0))
    assert (out / depth - 1).std() == pytest.approx(0.02, rel=0.05)
    assert perturb.pixel_noise(depth, 0.0, np.random.default_rng(0)) is depth


def test_discontinuities_find_steps_not_slopes() -> None:
    slope = np.tile(np.linspace(2.0, 3.0, 50, dtype=np.float32), (20, 1))  # 1% apart: one surface
    assert not perturb.discontinuities(slope).any()
    step = np.where(np.arange(50) < 25, 2.0, 5.0).astype(np.float32)[None].repeat(20, axis=0)
    cols = np.flatnonzero(perturb.discontinuities(step).any(axis=0))
    assert cols.tolist() == [24, 25]  # both sides of the step


def test_bleed_edges_ramps_across_a_step_and_leaves_the_rest() -> None:
    step = np.where(np.arange(50) < 25, 2.0, 5.0).astype(np.float32)[None].repeat(20, axis=0)
    out = perturb.bleed_edges(step, 2)
    row = out[10]
    assert np.all(np.diff(row) >= 0)  # a monotone ramp from the near to the far depth
    assert 2.0 < row[24] < row[25] < 5.0  # flying pixels between object and background
    np.testing.assert_array_equal(out[:, :21], step[:, :21])  # beyond px of the band: untouched
    np.testing.assert_array_equal(out[:, 29:], step[:, 29:])
    assert perturb.bleed_edges(step, 0) is step


def test_bleed_edges_ignores_unknown_depth() -> None:
    depth = np.full((10, 10), 2.0, dtype=np.float32)
    depth[:, 5:] = np.nan
    out = perturb.bleed_edges(depth, 2)
    np.testing.assert_array_equal(out[:, :5], depth[:, :5])  # no NaN leaks into the mean
    assert np.isnan(out[:, 5:]).all()


# ---------------------------------------------------------------- perturb: masks


def square(size: int = 40, lo: int = 10, hi: int = 20) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[lo:hi, lo:hi] = True
    return mask


def test_erode_and_dilate_move_the_boundary_by_px() -> None:
    mask = square()
    assert perturb.dilate(mask, 2).sum() == 14 * 14
    assert perturb.erode(mask, 2).sum() == 6 * 6
    np.testing.assert_array_equal(perturb.dilate(mask, 0), mask)
    # At the image border the mask grows inwards only, and nothing wraps around.
    corner = square(lo=0, hi=5)
    grown = perturb.dilate(corner, 3)
    assert grown.sum() == 8 * 8 and not grown[-1].any() and not grown[:, -1].any()


def test_punch_holes_removes_about_frac_of_the_mask_inside_it() -> None:
    mask = square(80, 10, 60)
    out = perturb.punch_holes(mask, 0.15, 2, np.random.default_rng(0))
    assert not (out & ~mask).any()
    removed = 1 - out.sum() / mask.sum()
    assert 0.15 <= removed < 0.15 + 13 / mask.sum()  # stops within one disk (13 px) of the target
    np.testing.assert_array_equal(out, perturb.punch_holes(mask, 0.15, 2, np.random.default_rng(0)))
    np.testing.assert_array_equal(perturb.punch_holes(mask, 0.0, 2, np.random.default_rng(0)), mask)


# ---------------------------------------------------------------- bench/perception_truth.py

LEVEL_KEYS = {
    "subjects", "kept", "boxes_drop_share", "boxes_drop_reasons", "segment_filter_drop_share", "median_center_err_m",
    "p90_center_err_m", "median_center_err_rel_depth", "p90_center_err_rel_depth", "median_center_err_diag",
    "median_extent_err_rel", "median_iou", "median_iou_vs_clean_fit",
}


def test_perception_truth_small_run(tmp_path: Path) -> None:
    out = tmp_path / "truth.json"
    run_bench("perception_truth.py", "--small", "--workers", "1", "--out", str(out), timeout=300)
    report = json.loads(out.read_text())

    assert report["small"] is True and report["settings"]["scenes"] == 4
    levels = report["levels"]
    assert list(levels) == list(report["settings"]["levels"])
    assert {"none", "depth_scale_10pct", "mask_dilate_3px", "worst"} <= set(levels)
    subjects = levels["none"]["subjects"]
    assert subjects >= 4 * 3  # at least 3 subjects per scene survive the segment filters here
    for name, res in levels.items():
        assert set(res) == LEVEL_KEYS, name
        assert res["subjects"] == subjects, name  # every level starts from the same subjects
        assert 0 <= res["boxes_drop_share"] <= 1 and 0 <= res["segment_filter_drop_share"] <= 1, name
        assert res["kept"] == subjects - sum(res["boxes_drop_reasons"].values()), name
        assert positive(res["median_center_err_m"]) and 0 < res["median_iou"] <= 1, name

    # The exact inputs give back the exact-input fit; every perturbation moves it, and the
    # strongest ones move the centre further from the truth.
    none = levels["none"]
    assert none["median_iou_vs_clean_fit"] == 1.0
    for name, res in levels.items():
        if name != "none":
            assert res["median_iou_vs_clean_fit"] < 1.0, name
    for name in ("depth_scale_10pct", "mask_dilate_3px", "worst"):
        assert levels[name]["median_center_err_m"] > none["median_center_err_m"], name
    assert levels["depth_scale_10pct"]["median_center_err_rel_depth"] > levels["depth_scale_3pct"]["median_center_err_rel_depth"]


# ---------------------------------------------------------------- bench/gpu_perception.py

PER_BATCH_TIMINGS = {
    "grounding_dino": {"pass_s", "forward_s", "s_per_pair", "s_per_image", "images_per_s"},
    "sam": {"call_s", "encoder_forward_s", "s_per_image", "images_per_s"},
    "moge": {"call_s", "forward_s", "s_per_image", "images_per_s"},
    "dinov2": {"call_s", "forward_s", "s_per_crop", "s_per_image", "images_per_s"},
}


def test_gpu_perception_tiny_run(tmp_path: Path) -> None:
    # MoGe comes with its own extra ([moge]); without it the benchmark says so and the rest runs.
    models = [m for m in PER_BATCH_TIMINGS if m != "moge" or importlib.util.find_spec("moge") is not None]
    out = tmp_path / "perception.json"
    run_bench("gpu_perception.py", "--tiny", "--only", ",".join(models), "--out", str(out), timeout=180)
    report = json.loads(out.read_text())

    assert report["tiny"] is True and report["device"] and report["subjects_per_image"] == 4
    assert {"torch", "transformers"} <= set(report["versions"])
    assert "random weights" in report["notes"][0]
    for name in models:
        res = report[name]
        assert positive(res["params"]) and positive(res["params_published"]), name
        assert str(res["default_batch_size"]) in res["batches"], name  # the goal's batch is always measured
        for b, row in res["batches"].items():
            assert isinstance(row, dict), f"{name} batch {b}: {row}"
            assert PER_BATCH_TIMINGS[name] <= set(row), (name, b)
            assert all(positive(row[k]) for k in PER_BATCH_TIMINGS[name]), (name, b, row)
        assert positive(res["s_per_image_at_default"]) and res["best_batch_size"] in {int(b) for b in res["batches"]}
    gd = report["grounding_dino"]["batches"]["16"]
    assert math.isclose(gd["s_per_image"], 4 * gd["pass_s"] / 16, rel_tol=1e-3)  # 4 captions, one pair each

    goals = report["goals"]
    assert set(goals) == set(models)
    for name, g in goals.items():
        assert {"goal", "measured", "met"} <= set(g) and isinstance(g["met"], bool), name
        assert g["comparable"] is False, name  # tiny figures must never pass for the real ones
    assert report["every_model_met"] is False
