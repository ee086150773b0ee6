"""bench/scale.py --small: a run sampled for memory and open files, then every tool timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scale_small_run(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, "bench/scale.py", "--small", "--work", str(tmp_path / "work"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    report = json.loads(out.read_text())
    assert report["small"] is True and report["settings"]["samples"] == 32
    run = report["run"]
    assert 0 < run["kept"] <= 32 and run["kept_per_s"] > 0
    # The driver and Ray's processes were sampled: the driver, GCS, raylet and workers.
    assert run["processes"] >= 3 and 0 < run["driver_rss_mb"] <= run["total_rss_mb"]
    assert run["largest_worker_rss_mb"] > 0 and run["most_open_files_one_process"] >= run["driver_open_files"] > 0
    assert set(report["tools_wall_s"]) == {"resume_nothing_to_do", "status", "status_report", "validate", "show",
                                           "browse", "export_hf"}
    assert all(t > 0 for t in report["tools_wall_s"].values())
    assert report["disk"]["final_bytes_per_kept"] > 0 and report["browse_index_pages"] >= 1
    assert "--address" in report["cluster_command"]
    assert not (tmp_path / "work").exists(), "the run is removed unless --keep"
