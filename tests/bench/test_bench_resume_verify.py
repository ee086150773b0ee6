"""bench/resume_verify.py --tiny: the resume-check benchmark's code runs and reports every check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_resume_verify_bench_runs_at_toy_size(tmp_path):
    out = tmp_path / "resume_verify.json"
    proc = subprocess.run([sys.executable, "bench/resume_verify.py", "--tiny", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["checks"]) == {"resume_index", "resume_size", "resume_sha256", "datagen_verify"}
    assert all(f["warm_s"] > 0 and f["cold_s"] > 0 for f in report["checks"].values())
    assert report["run"]["tar_members"] > 0 and report["paper_scale_estimate"]["samples"] == 41_000
