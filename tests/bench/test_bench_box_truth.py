"""bench/box_truth.py --small: both fits against the procedural truth, clean and perturbed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = {"subjects", "kept", "drop_share", "drop_reasons", "median_iou", "median_center_err_diag",
                "p90_center_err_diag", "fit_used", "fallbacks", "support", "stacked"}


def test_box_truth_small_run(tmp_path: Path) -> None:
    out = tmp_path / "box_truth.json"
    proc = subprocess.run([sys.executable, "bench/box_truth.py", "--small", "--workers", "1", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["small"] is True and report["settings"]["scenes"] == 3
    results = report["results"]
    assert list(results) == ["clean", "moge_like", "moge_sam_like"]
    subjects = results["clean"]["gravity"]["subjects"]
    assert subjects >= 3 * 3
    for level, per_method in results.items():
        assert list(per_method) == ["gravity", "pca"], level
        for method, r in per_method.items():
            assert set(r) == SUMMARY_KEYS, (level, method)
            assert r["subjects"] == subjects, (level, method)  # same subjects everywhere
            assert r["kept"] == subjects - sum(r["drop_reasons"].values())
            assert 0 < r["median_iou"] <= 1 and r["median_center_err_diag"] > 0
    # The pca fit is recorded as such, never with a support or a fallback.
    pca = results["clean"]["pca"]
    assert pca["fit_used"] == {"pca": subjects} and pca["fallbacks"] == {} and pca["support"] == {}
    # The procedural world always has a ground: every gravity box is a gravity fit, and each one
    # that is not standing on the ground is counted as a fallback.
    grav = results["clean"]["gravity"]
    assert grav["fit_used"] == {"gravity": subjects}
    assert sum(grav["support"].values()) == grav["kept"]
    not_on_ground = sum(n for k, n in grav["support"].items() if k != "ground")
    assert sum(grav["fallbacks"].values()) >= not_on_ground
    # The point of the gravity fit: closer to the whole object than the visible-surface box.
    for level in results:
        assert results[level]["gravity"]["median_iou"] > results[level]["pca"]["median_iou"], level
    assert grav["median_center_err_diag"] < pca["median_center_err_diag"]
    assert isinstance(report["goals_met"], bool)
