"""bench/storage.py --tiny: the storage benchmark's code runs and reports every figure it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_storage_bench_runs_at_toy_size_and_meets_the_depth_goal(tmp_path):
    out = tmp_path / "storage.json"
    proc = subprocess.run([sys.executable, "bench/storage.py", "--tiny", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    png, jpg = report["png"], report["jpg"]
    assert png["kept"] > 0 and set(png["final_members_mb_per_kept_sample"]) == {"png", "json", "depth.png", "instances.png", "identities.png"}
    assert "jpg" in jpg["final_members_mb_per_kept_sample"] and "png" not in jpg["final_members_mb_per_kept_sample"]
    assert 20 < jpg["target"]["min_psnr_db"] < 99
    for kind in ("clean", "moge_like", "moge_like_smooth"):
        figures = report["depth"][kind]
        assert figures["level_9"]["mb_per_image"] <= figures["level_1"]["mb_per_image"] < figures["float32_npy_mb_per_image"]
        assert figures["unknown_pixels_exact"]
        # FORMAT.md's bound holds, give or take float32's rounding of the decoded metres (~6e-8)
        assert 0 < figures["worst_rel_err"] <= figures["bound_rel_err"] + 1e-7
        assert figures["float16_worst_rel_err"] > 1e-4  # why the stage shards do not use float16
    assert report["depth"]["end_to_end"]["worst_rel_err"] <= report["goals"]["depth_worst_rel_err"]["goal"]
    assert report["goals"]["depth_worst_rel_err"]["met"]
    assert report["plan_estimate"]["final_mb_per_kept_sample"] > 0
