"""`datagen tiny-models` then `datagen run --config configs/tiny.yaml`: every stage on its real
backend (tiny random weights), end to end through Ray, offline."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
from pathlib import Path

from helpers import _env, run_cli


def offline_env() -> dict[str, str]:
    env = _env()
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    return env


def test_tiny_models_then_tiny_config_runs_end_to_end(tmp_path: Path):
    models, run = tmp_path / "models", tmp_path / "run"
    start = time.perf_counter()
    built = run_cli("tiny-models", str(models), env=offline_env())
    assert built.returncode == 0, built.stderr
    assert time.perf_counter() - start < 60
    for model_id in (
        "Qwen/Qwen3-8B", "black-forest-labs/FLUX.1-dev", "black-forest-labs/FLUX.1-Kontext-dev",
        "IDEA-Research/grounding-dino-base", "facebook/sam-vit-huge", "facebook/sam2.1-hiera-large",
        "facebook/dinov2-base", "depth-anything/Depth-Anything-V2-Metric-Indoor-Large-hf",
    ):  # fmt: skip
        assert any((models / model_id).glob("**/*.safetensors")), model_id
    assert (models / "Ruicheng/moge-2-vitl-normal/model.pt").is_file()

    done = run_cli("run", "--config", "tiny", "--set", f"models_dir={models}", "--out", str(run), timeout=600, env=offline_env())
    assert done.returncode == 0, done.stdout + done.stderr

    status = json.loads(run_cli("status", str(run), "--json").stdout)
    assert status["final_shards"] == status["num_shards"] == 2
    assert status["kept"] > 0
    for row in status["stages"]:
        assert row["done"] == 2 and row["samples_in"] > 0, row  # every stage processed samples
    requested = status["requested_subjects_histogram"]
    assert sum(requested.values()) == 8 and set(requested) <= {"3", "4"}

    check = run_cli("validate", str(run))
    assert check.returncode == 0, check.stdout + check.stderr

    metas = []  # random-weight models keep few samples: a shard may hold none
    for shard in sorted((run / "final").glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            metas += [json.load(io.BytesIO(tar.extractfile(m).read())) for m in tar if m.name.endswith(".json")]
    meta = metas[0]
    gen = meta["generation"]
    assert gen["models"]["prompts"] == "transformers:Qwen/Qwen3-8B"
    assert gen["models"]["t2i"] == "diffusers:black-forest-labs/FLUX.1-dev"
    assert gen["models"]["repose"] == "diffusers:black-forest-labs/FLUX.1-Kontext-dev"
    assert gen["models"]["segment"] == "transformers:IDEA-Research/grounding-dino-base+facebook/sam-vit-huge"
    assert gen["models"]["depth"] == "moge:Ruicheng/moge-2-vitl-normal"
    assert gen["models"]["idcheck"] == "transformers:facebook/dinov2-base"
    assert {k: meta["depth"][k] for k in ("units", "source", "encoding")} == {"units": "m", "source": "Ruicheng/moge-2-vitl-normal", "encoding": "log16"}
    assert all("detection_score" in s["segment"] and "similarity" in s["idcheck"] for s in meta["subjects"])
    assert gen["settings"]["t2i"]["pipeline"] == "FluxPipeline" and gen["settings"]["repose"]["dtype"] == "float32"
    assert gen["settings"]["prompts"]["thinking"] is False

    again = run_cli("run", "--config", "tiny", "--set", f"models_dir={models}", "--out", str(run), env=offline_env())
    assert again.returncode == 0 and "nothing to do" in again.stdout + again.stderr

    # The paper's own segmentation stack on the same tiny run.
    gsam = tmp_path / "gsam"
    done = run_cli(
        "run", "--config", "tiny", "--set", f"models_dir={models}", "--set", "stages.segment.backend=gsam",
        "--set", "run.num_samples=4", "--out", str(gsam), timeout=600, env=offline_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(run_cli("status", str(gsam), "--json").stdout)
    segment = next(row for row in status["stages"] if row["stage"] == "segment")
    assert segment["done"] == 1 and segment["samples_in"] > 0, segment


def test_a_missing_model_is_one_line_naming_stage_and_id(tmp_path: Path):
    done = run_cli(
        "run", "--config", "tiny", "--set", f"models_dir={tmp_path / 'empty'}", "--set", "run.num_samples=4",
        "--executor", "local", "--out", str(tmp_path / "run"), env=offline_env(),
    )  # fmt: skip
    assert done.returncode != 0
    err = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    # Named before any worker starts (offline, not in models_dir nor the cache).
    assert err[-1] == (
        f"datagen: error: stages.prompts: model 'Qwen/Qwen3-8B' is not in models_dir ({tmp_path / 'empty'}), "
        "the hub cache, and HF_HUB_OFFLINE is set"
    ), done.stderr
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_a_model_that_fails_to_load_in_a_ray_worker_is_one_line(tmp_path: Path, tiny_models: Path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)  # the session's build (`datagen tiny-models` is tested above)
    broken = models / "Qwen" / "Qwen3-8B"
    shutil.rmtree(broken)
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{}")  # passes the preflight, fails in the worker
    done = run_cli(
        "run", "--config", "tiny", "--set", f"models_dir={models}", "--set", "run.num_samples=4",
        "--out", str(tmp_path / "run"), env=offline_env(),
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("datagen: error: stages.prompts: cannot load model 'Qwen/Qwen3-8B'")
