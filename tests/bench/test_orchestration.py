"""bench/orchestration.py --tiny: both orders of the orchestration benchmark run on the real Ray
runner (2 fake GPUs, 16 samples), so a config change that breaks either order, or a figure the
report promises, fails here rather than at the next full run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from orchestration import paper_order  # noqa: E402

from datagen.config import load_config, resolve_config_path  # noqa: E402

PAPER = ["prompts", "t2i", "segment", "depth", "repose", "boxes", "filter"]


def test_paper_order_is_derived_from_the_configured_stages():
    cheap = load_config(resolve_config_path("sigma_set27k")).stages.order
    assert paper_order(cheap, PAPER) == ["prompts", "t2i", "segment", "depth", "repose", "idcheck", "boxes", "filter"]
    # A config without idcheck gets the paper's order itself; a stage beyond the paper follows
    # the stage it follows in the config.
    assert paper_order([s for s in cheap if s != "idcheck"], PAPER) == PAPER
    assert paper_order(["a", "prompts", "t2i", "b"], ["t2i", "prompts"]) == ["a", "t2i", "b", "prompts"]


def test_orchestration_bench_runs_both_orders_at_toy_size(tmp_path):
    out = tmp_path / "orchestration.json"
    proc = subprocess.run([sys.executable, "bench/orchestration.py", "--tiny", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tiny"] is True and (report["gpus"], report["samples"]) == (2, 16)
    cheap, paper = report["cheap_first"], report["paper_order"]
    order = load_config(resolve_config_path("sigma_set27k")).stages.order
    assert cheap["order"] == order and sorted(paper["order"]) == sorted(order)
    assert paper["order"] == paper_order(order, PAPER) and paper["filters_apply"] == "last"
    # Same reject model, same kept samples; cheap-first spends fewer GPU-seconds on them.
    assert report["same_kept_count"] and cheap["kept"] > 0
    assert 0 < report["gpu_seconds_saved_share"] < 1
    for figures in (cheap, paper):
        assert figures["samples"] == 16
        assert 0 < figures["efficiency_whole_run"] <= 1.05
        assert figures["efficiency"] is None or 0 < figures["efficiency"] <= 1.05
        assert figures["machine"]["load_avg_1min_mean"] >= 0
        stages = figures["stages"]
        assert {"t2i", "repose", "idcheck"} <= set(stages) and figures["bottleneck"] in stages
        for stage in stages.values():
            # Over 1 where a pool's workers get the time of idle co-tenants on their GPUs (a
            # quarter-GPU worker alone on a GPU: up to 4).
            assert stage["pool_gpus"] > 0 and 0 <= stage["utilisation"] <= 4
            assert "utilisation_steady" in stage
