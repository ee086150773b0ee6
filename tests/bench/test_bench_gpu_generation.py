"""bench/gpu_generation.py --tiny: the H100 benchmark's code path end to end on toy configs (CPU)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PER_ITEM = {"flux": "s_per_image", "kontext": "s_per_identity", "llm": "s_per_prompt"}


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_tiny_run_writes_every_section_and_the_goals(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    proc = subprocess.run(
        [sys.executable, "bench/gpu_generation.py", "--tiny", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,  # stderr shown below
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["tiny"] is True
    assert report["device"] and report["dtype"] and set(report["versions"]) == {"torch", "diffusers", "transformers"}
    assert "random weights" in report["note"]
    expected = {"flux": ["1", "2", "4"], "kontext": ["1", "2", "4"], "llm": ["1", "8", "32"]}
    for section, key in PER_ITEM.items():
        res = report[section]
        assert sorted(res["batches"], key=int) == expected[section], section
        for b, row in res["batches"].items():
            assert isinstance(row, dict), f"{section} batch {b}: {row}"
            assert positive(row[key]), (section, b, row)
            timings = {k: v for k, v in row.items() if k.endswith("_s")}
            assert timings and all(positive(v) for v in timings.values()), (section, b, row)
        assert res["best_batch_size"] in {int(b) for b in expected[section]}
        assert positive(res[f"best_{key}"])
    llm = report["llm"]["batches"]["8"]
    assert positive(llm["tokens_per_s"])
    assert math.isclose(llm["s_per_prompt"] * 8, llm["generate_s"], rel_tol=1e-2)

    goals = report["goals"]
    assert set(goals) == {"flux_s_per_image", "kontext_s_per_identity", "llm_s_per_prompt"}
    for name, g in goals.items():
        assert {"goal", "measured", "met"} <= set(g), name
        assert isinstance(g["met"], bool) and positive(g["measured"]), name
        assert g["comparable"] is False, name  # tiny figures must never pass for the real ones
