"""bench/exports.py --tiny: the exports benchmark's code runs and reports every figure it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_exports_bench_runs_at_toy_size(tmp_path):
    out = tmp_path / "exports.json"
    proc = subprocess.run([sys.executable, "bench/exports.py", "--tiny", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tiny"] and report["settings"]["width"] == 128 and report["run_seconds"] > 0
    assert report["final_shards"]["mb"] > 0
    assert set(report["exports"]) == {"hf", "sigma", "omnigen2", "uno_pairs", "uno_samples"}
    for name, figures in report["exports"].items():
        assert figures["seconds"] > 0 and figures["cpu_seconds"] > 0 and figures["mb"] > 0 and figures["files"] >= 2, name
        assert figures["wrote"].startswith("wrote ") and figures["mb_vs_final"] > 0
    samples = report["exports"]["uno_samples"]["wrote"].split()[1]
    assert report["exports"]["omnigen2"]["wrote"].startswith(f"wrote {samples} lines")
    assert f"from {samples} samples" in report["exports"]["sigma"]["wrote"]
