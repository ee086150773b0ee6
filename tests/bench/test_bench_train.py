"""bench/train_input.py --small and bench/gpu_train.py --tiny: the benchmarks' code paths end to end (CPU)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def run(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_train_input_small_times_every_mode(tmp_path: Path) -> None:
    out = tmp_path / "ti.json"
    run(["bench/train_input.py", "--small", "--out", str(out)])
    report = json.loads(out.read_text())

    assert report["small"] is True
    machine = report["machine"]
    assert machine["cpu_model"] and machine["cores"] >= 1 and machine["torch_threads"] == 1
    assert report["input"]["width"] == report["input"]["height"] == 512
    assert report["input"]["samples"] >= 1
    assert report["training"]["resolution"] == report["training"]["identity_size"] == 512
    assert set(report["modes"]) == {"masks", "boxes3d", "boxes2d"}
    for name, row in {**report["modes"], "overall": report["overall"]}.items():
        for k in ("samples_per_s", "ms_per_sample", "decode_ms", "augment_build_ms"):
            assert positive(row[k]), (name, k, row)
        assert math.isclose(row["samples_per_s"] * row["ms_per_sample"], 1000, rel_tol=1e-2), (name, row)
        # filters may drop one of the 4 prompted subjects; min_subjects keeps at least 3
        assert 3 <= row["mean_subjects"] <= 4, (name, row)
    goal = report["goal"]
    assert {"goal", "measured", "met", "comparable"} <= set(goal)
    assert isinstance(goal["met"], bool) and positive(goal["measured"])
    assert goal["comparable"] is False  # a smoke run's figure must never pass for the real one


def test_gpu_train_tiny_runs_steps_and_counts_params(tmp_path: Path) -> None:
    import diffusers

    from datagen.train.model import DEFAULT_LORA_TARGETS

    out = tmp_path / "gt.json"
    run(["bench/gpu_train.py", "--tiny", "--out", str(out)])
    report = json.loads(out.read_text())

    assert report["tiny"] is True and report["device"] == "cpu" and report["dtype"] == "float32"
    assert "random weights" in report["note"] and "VAE and text encoders skipped" in report["note"]
    assert report["timed_steps"] == len(report["step_times_s"]) >= 1
    assert all(positive(t) for t in report["step_times_s"]) and positive(report["s_per_step"])
    assert all(math.isfinite(v) for v in report["losses"])
    assert report["peak_memory_gib"] is None

    # Parameter counts against the tiny config, computed here independently of the benchmark.
    model = diffusers.FluxTransformer2DModel(**report["config"])
    rank = report["setup"]["lora_rank"]
    lora = [
        rank * (m.in_features + m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and any(name == t or name.endswith("." + t) for t in DEFAULT_LORA_TARGETS)
    ]
    assert report["params"]["base"] == sum(p.numel() for p in model.parameters())
    assert report["params"]["lora"] == sum(lora) and report["params"]["lora_tensors"] == 2 * len(lora)

    s = report["setup"]
    r, i = (s["resolution"] // 16) ** 2, (s["identity_size"] // 16) ** 2
    assert report["tokens"] == {"text": 16, "target": r, "identities": s["subjects"] * i, "control": r,
                                "total": 16 + 2 * r + s["subjects"] * i}  # fmt: skip
    goal = report["goal"]
    assert {"goal", "measured", "met", "comparable"} <= set(goal)
    assert isinstance(goal["met"], bool) and positive(goal["measured"]) and goal["comparable"] is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_gpu_train_refuses_without_cuda(tmp_path: Path) -> None:
    out = tmp_path / "gt.json"
    proc = subprocess.run([sys.executable, "bench/gpu_train.py", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode != 0 and "needs a CUDA GPU" in proc.stderr and not out.exists()
