"""bench/gpu_eval.py --tiny: the eval benchmark's code path end to end on the CPU (generation
through datagen's sampler, every metric through datagen.eval.judging's calls)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("dino_i", "siglip_i", "siglip_t", "clip_iqa", "musiq", "depth_mse")


def test_gpu_eval_tiny_times_generation_and_every_metric_per_subject_count(tmp_path: Path) -> None:
    out = tmp_path / "ge.json"
    proc = subprocess.run([sys.executable, "bench/gpu_eval.py", "--tiny", "--subjects", "1,3", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["tiny"] is True and report["device"] == "cpu"
    gen, metrics = report["generation"], report["metrics"]
    assert set(gen["per_subjects"]) == set(metrics["per_subjects"]) == {"1", "3"}
    # More subjects, more identity tokens in the one sequence.
    assert gen["per_subjects"]["3"]["tokens"] > gen["per_subjects"]["1"]["tokens"]
    for n, row in metrics["per_subjects"].items():
        assert all(row[m] > 0 and math.isfinite(row[m]) for m in METRICS), (n, row)
        assert row["s_per_image"] == pytest.approx(sum(row[m] for m in METRICS), rel=1e-3)
    assert all(v > 0 for v in metrics["params"].values()) and gen["transformer_params"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_gpu_eval_refuses_full_size_without_cuda(tmp_path: Path) -> None:
    out = tmp_path / "ge.json"
    proc = subprocess.run([sys.executable, "bench/gpu_eval.py", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode != 0 and "needs a CUDA GPU" in proc.stderr and not out.exists()
