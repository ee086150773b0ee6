"""`datagen eval model` end to end on tiny random-weight models (CPU, local Ray): a LoRA from
`datagen train` and the base model judged on a held-out split in the paper's three modes,
results.json / results.md / scores.parquet / grids, resume after kill -9, one-line bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from datagen.final.read import iter_final_samples
from helpers import SMALL, _env, run_cli

METRICS = ("dino_i", "siglip_i", "siglip_t", "depth_mse", "clip_iqa", "musiq")
MODES = ("masks_depth", "boxes2d", "boxes3d")


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory) -> Path:
    """A procedural held-out split: 6 samples, 1 to 3 subjects, two shards."""
    root = tmp_path_factory.mktemp("eval-run")
    config = {
        **SMALL,
        "run": {**SMALL["run"], "name": "heldout", "split": "eval", "num_samples": 6, "shard_size": 3, "width": 64, "height": 64},
        "filters": {"min_subjects": 1, "min_box_area_frac": 0.0},
        "stages": {**SMALL["stages"], "prompts": {"num_subjects": [1, 3], "subject_count_weights": {1: 0.5, 2: 0.25, 3: 0.25}}},
    }
    (root / "eval.yaml").write_text(yaml.safe_dump(config))
    done = run_cli("run", "--config", str(root / "eval.yaml"), "--out", str(root / "run"), "--executor", "local")
    assert done.returncode == 0, done.stderr
    return root / "run"


@pytest.fixture(scope="module")
def lora(tmp_path_factory, tiny_models, finished_run) -> Path:
    out = tmp_path_factory.mktemp("lora") / "train"
    done = run_cli("train", "--config", "train_tiny", "--data", str(finished_run), "--out", str(out),
                   "--set", f"models_dir={tiny_models}", "--set", "checkpoint_every=100", timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lora_dir = json.loads(done.stdout.strip().splitlines()[-1])["lora"]
    assert lora_dir, done.stdout
    return Path(lora_dir)


def eval_args(tiny_models: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "model", "--config", "eval_model_tiny", "--set", f"models_dir={tiny_models}",
            "--data", str(data), "--out", str(out), *extra]  # fmt: skip


def test_eval_model_writes_all_six_metrics_for_both_rows_and_resumes_after_kill(tmp_path, tiny_models, eval_run, lora):
    out = tmp_path / "eval"
    args = eval_args(tiny_models, eval_run, out, "--lora", str(lora), "--base")
    # Killed (-9, the whole process group) once the first sample is committed.
    proc = subprocess.Popen([sys.executable, "-m", "datagen.cli", *args], env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 420
    while time.time() < deadline and proc.poll() is None and not list(out.glob("generated/*/*/done.json")):
        time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(5)  # Ray's workers outlive their driver by a moment: one may still commit
    first = {p: p.stat().st_mtime_ns for p in out.glob("generated/*/*/done.json")}
    assert first and not (out / "results.json").exists()

    done = run_cli(*args, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    n = len(list(iter_final_samples(eval_run)))
    assert n >= 4 and summary["pairs"] == 2 * n and summary["generated"] == 2 * n - len(first)  # nothing finished is redone
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in first.items())

    results = json.loads((out / "results.json").read_text())
    assert results["samples"] == n and set(results["rows"]) == {"base", str(lora)}
    assert results["models"]["dino"] == "facebook/dinov2-base" and results["models"]["siglip"].startswith("google/siglip")
    for row in results["rows"].values():
        assert set(row) == set(MODES)
        for figures in row.values():
            for metric in METRICS:
                assert figures[metric] is not None and np.isfinite(figures[metric]), (metric, figures)
            assert -100 <= figures["dino_i"] <= 100 and 0 <= figures["clip_iqa"] <= 100 and figures["depth_mse"] >= 0
            assert figures["single"]["samples"] + figures["multi"]["samples"] == n
    assert set(results["seconds_per_image"]["base"]) <= {"1", "2", "3"}
    text = (out / "results.md").read_text()
    assert "/ 81.04" in text and "| base | masks_depth |" in text  # beside the paper's Table 1

    import pandas as pd

    table = pd.read_parquet(out / "scores.parquet")
    assert len(table) == 2 * n * 3 and set(table["mode"]) == set(MODES)
    assert {"dino_i", "siglip_t", "depth_mse_8bit", "musiq", "seconds"} <= set(table.columns)
    for mode in MODES:
        assert (out / f"grid_{mode}.png").is_file()

    again = run_cli(*args, timeout=600)  # all committed: nothing generated or judged again
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["generated"] == 0


def one_line_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_eval_model_bad_input_is_one_line(tmp_path, tiny_models, eval_run, finished_run):
    from safetensors.numpy import save_file

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a lora at all")
    one_line_error(run_cli(*eval_args(tiny_models, eval_run, tmp_path / "o1", "--lora", str(junk))), "not a LoRA")

    other = tmp_path / "other.safetensors"
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": np.zeros((4, 999), np.float32),
               "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": np.zeros((32, 4), np.float32)}, str(other))  # fmt: skip
    one_line_error(run_cli(*eval_args(tiny_models, eval_run, tmp_path / "o2", "--lora", str(other))), "another base model")

    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    one_line_error(run_cli(*eval_args(tiny_models, not_a_run, tmp_path / "o3", "--base")), "not a datagen run")
    one_line_error(run_cli(*eval_args(tiny_models, finished_run, tmp_path / "o4", "--base")), "training run")
    one_line_error(run_cli(*eval_args(tiny_models, eval_run, tmp_path / "o5")), "--base")
    one_line_error(run_cli(*eval_args(tiny_models, eval_run, tmp_path / "o6", "--base", "--modes", "masks,boxes2d")), "modes")
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3, 4, 5))  # nothing half-written
