"""`datagen train` and `datagen sample` end to end on the CPU: the tiny Kontext on procedural
shards, a LoRA written and used, exact resume through the shard pipeline, two processes, and
bad input as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from helpers import _env, run_cli

KONTEXT = "black-forest-labs/FLUX.1-Kontext-dev"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    made = run_cli(
        "run", "--config", "demo", "--set", "run.num_samples=8", "--set", "run.shard_size=4", "--set", "run.width=128",
        "--set", "run.height=128", "--executor", "local", "--out", str(root / "run"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert run_cli("tiny-models", str(root / "models"), "--only", KONTEXT, "--only", "black-forest-labs/FLUX.1-dev").returncode == 0
    return root


def _train(world: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("train", "--config", "train_tiny", "--data", str(world / "run" / "final"), "--out", str(out),
                   "--set", f"models_dir={world / 'models'}", *extra)  # fmt: skip


def _one_line(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("datagen: error:")]
    assert len(errors) == 1 and needle in errors[0], r.stderr


def test_train_writes_a_lora_that_sample_uses_deterministically(world, tmp_path):
    # AdamW at 1e-2: Prodigy's first steps move the LoRA by ~1e-6, which an 8-bit PNG cannot show
    r = _train(world, tmp_path / "out", "--set", "optimizer.name=adamw", "--set", "optimizer.lr=0.01")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["steps"] == 4 and report["last_loss"] is not None
    tensors = load_file(report["lora"])
    assert tensors and all("lora" in k for k in tensors)
    assert max(t.abs().max().item() for k, t in tensors.items() if "lora_B" in k) > 1e-3  # the LoRA moved
    shard = str(world / "run" / "final" / "shard-000000.tar")
    common = ["--lora", str(tmp_path / "out" / "lora"), "--from", shard, "--config", "train_tiny",
              "--set", f"models_dir={world / 'models'}", "--steps", "2", "--seed", "5"]  # fmt: skip
    images = {}
    runs = {"a": common, "b": common, "boxes3d": [*common, "--mode", "boxes3d"], "base": common[2:],
            "mixed": [*common, "--mode", "mixed", "--prompt-template", "background"]}  # fmt: skip
    for name, args in runs.items():
        done = run_cli("sample", *args, "--out", str(tmp_path / f"{name}.png"))
        assert done.returncode == 0, done.stderr
        images[name] = (tmp_path / f"{name}.png").read_bytes()
    assert images["a"] == images["b"]  # a fixed seed gives the same image
    assert images["boxes3d"] != images["a"] and images["base"] != images["a"] and images["mixed"] != images["a"]


def test_resume_through_the_shard_pipeline_gives_the_uninterrupted_lora(world, tmp_path):
    assert _train(world, tmp_path / "full").returncode == 0
    assert _train(world, tmp_path / "part", "--max-steps", "3").returncode == 0
    again = _train(world, tmp_path / "part", "--resume")
    assert again.returncode == 0, again.stderr
    assert "resumed from" in again.stderr and "step 3" in again.stderr
    full, part = (load_file(tmp_path / d / "lora" / "pytorch_lora_weights.safetensors") for d in ("full", "part"))
    assert full.keys() == part.keys()
    for k in full:
        assert (full[k] - part[k]).abs().max() < 1e-5, k


def test_two_processes_train_as_one_gloo_group(world, tmp_path):
    env = _env()
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000),
         "-m", "datagen.cli", "train", "--config", "train_tiny", "--data", str(world / "run" / "final"), "--out",
         str(tmp_path / "ddp"), "--set", f"models_dir={world / 'models'}"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training on 2 process(es)" in done.stderr
    assert len(done.stdout.strip().splitlines()) == 1  # only the main process reports
    assert (tmp_path / "ddp" / "lora" / "pytorch_lora_weights.safetensors").is_file()


def test_ray_train_runs_the_same_two_process_training(world, tmp_path):
    """TorchTrainer with 2 CPU workers forms the same gloo group torchrun does: the same LoRA."""
    env = _env()
    env["OMP_NUM_THREADS"] = "1"
    args = ["--config", "train_tiny", "--data", str(world / "run" / "final"), "--set", f"models_dir={world / 'models'}"]
    torchrun = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(30500 + os.getpid() % 1000),
         "-m", "datagen.cli", "train", *args, "--out", str(tmp_path / "torchrun")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert torchrun.returncode == 0, torchrun.stderr[-3000:]
    on_ray = run_cli("train", *args, "--out", str(tmp_path / "ray"), "--ray-workers", "2", "--cpu", env=env)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert "training on 2 process(es)" in on_ray.stderr
    report = json.loads(on_ray.stdout.strip().splitlines()[-1])
    assert report["steps"] == 4 and report["lora"] == str(tmp_path / "ray" / "lora" / "pytorch_lora_weights.safetensors")
    a, b = (load_file(tmp_path / d / "lora" / "pytorch_lora_weights.safetensors") for d in ("torchrun", "ray"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-6, k
    again = run_cli("train", *args, "--out", str(tmp_path / "ray"), "--ray-workers", "2", "--cpu", env=env)
    _one_line(again, "holds checkpoints")


def test_bad_input_is_one_line(world, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line(run_cli("train", "--config", "train_tiny", "--data", str(empty), "--out", str(tmp_path / "o")), str(empty))
    _one_line(_train(world, tmp_path / "o", "--set", "lora.rank=0"), "lora.rank")
    _one_line(_train(world, tmp_path / "o", "--set", "model=black-forest-labs/FLUX.1-dev"), "not a FLUX.1 Kontext pipeline")
    assert _train(world, tmp_path / "twice", "--max-steps", "2").returncode == 0
    _one_line(_train(world, tmp_path / "twice"), "--resume")
    _one_line(run_cli("sample", "--config", "train_tiny", "--out", str(tmp_path / "x.png")), "--from")
    shard = str(world / "run" / "final" / "shard-000000.tar")
    bad_lora = run_cli("sample", "--from", shard, "--lora", str(empty), "--config", "train_tiny",
                       "--set", f"models_dir={world / 'models'}", "--out", str(tmp_path / "x.png"))  # fmt: skip
    _one_line(bad_lora, "--lora")
    assert not (tmp_path / "x.png").exists()


def test_sample_from_a_json_layout(world, tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, size in (("a.png", 40), ("b.png", 24)):  # identities of any size
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(tmp_path / name)
    layout = {
        "width": 96, "height": 64, "prompt": "Place these subjects on a table",
        "subjects": [{"identity": "a.png", "box_2d": [4, 4, 40, 40]}, {"identity": "b.png", "box_2d": [30, 20, 90, 60]}],
    }  # fmt: skip
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    args = ["sample", "--layout", str(tmp_path / "layout.json"), "--config", "train_tiny", "--set", f"models_dir={world / 'models'}",
            "--steps", "2"]  # fmt: skip
    done = run_cli(*args, "--mode", "boxes2d", "--out", str(tmp_path / "out.png"))
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (64, 64)  # train_tiny's resolution
    _one_line(run_cli(*args, "--out", str(tmp_path / "m.png")), "--mode masks: the layout lacks masks, depth")
    del layout["subjects"][1]["identity"]
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    _one_line(run_cli(*args, "--mode", "boxes2d", "--out", str(tmp_path / "x.png")), "subjects[1]: needs identity")
    assert not (tmp_path / "m.png").exists() and not (tmp_path / "x.png").exists()
