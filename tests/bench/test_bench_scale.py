"""bench/scale.py --small: a run sampled for memory and open files, then every tool timed; then
--tools-only times some again on the kept run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scale_small_run(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    work = ["--work", str(tmp_path / "work"), "--out", str(out)]
    missing = _scale("--tools-only", *work)
    assert missing.returncode != 0 and "--tools-only needs a run kept by --keep" in missing.stderr
    proc = _scale("--small", "--keep", *work)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    report = json.loads(out.read_text())
    assert report["small"] is True and report["settings"]["samples"] == 32
    run = report["run"]
    assert 0 < run["kept"] <= 32 and run["kept_per_s"] > 0
    # The driver and Ray's processes were sampled: the driver, GCS, raylet and workers.
    assert run["processes"] >= 3 and 0 < run["driver_rss_mb"] <= run["total_rss_mb"]
    assert run["largest_worker_rss_mb"] > 0 and run["most_open_files_one_process"] >= run["driver_open_files"] > 0
    tools = {"resume_nothing_to_do", "status", "status_report", "validate", "verify", "show", "browse", "export_hf"}
    assert set(report["tools_wall_s"]) == set(report["tools_rss_mb"]) == tools
    assert all(t > 0 for t in report["tools_wall_s"].values())
    assert all(mb > 0 for mb in report["tools_rss_mb"].values()), report["tools_rss_mb"]
    assert report["tools_rss_mb"]["browse"] > 60, "a tool that runs a while is sampled in full"
    assert report["disk"]["final_bytes_per_kept"] > 0 and report["browse_index_pages"] >= 1
    assert "--address" in report["cluster_command"]

    again = _scale("--tools-only", "--tool", "status", "--tool", "verify", "--tool", "show", "--tool", "browse", *work)
    assert again.returncode == 0, again.stderr[-3000:]
    retimed = json.loads(out.read_text())
    assert retimed["run"] == report["run"] and retimed["tools_wall_s"]["validate"] == report["tools_wall_s"]["validate"]
    assert any(retimed["tools_wall_s"][t] != report["tools_wall_s"][t] for t in ("status", "verify"))
    bad = _scale("--tools-only", "--tool", "nope", *work)
    assert bad.returncode != 0 and "--tool: unknown nope" in bad.stderr


def _scale(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/scale.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)
