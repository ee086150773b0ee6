"""Models are checked before any worker starts; a worker that cannot load one fails in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from datagen.config import build_config
from datagen.errors import UserError
from datagen.models.hub import model_problem
from datagen.pipeline.ray_runner import user_error_message
from datagen.pipeline.preflight import validate_pipeline


def test_offline_a_model_missing_from_models_dir_and_cache_is_named(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    msg = model_problem("t2i", "diffusers", "black-forest-labs/FLUX.1-dev", None, str(tmp_path))
    assert msg == f"stages.t2i: model 'black-forest-labs/FLUX.1-dev' is not in models_dir ({tmp_path}), the hub cache, and HF_HUB_OFFLINE is set"


def test_a_local_model_dir_passes_and_a_missing_path_is_named(tmp_path: Path):
    (tmp_path / "org" / "m").mkdir(parents=True)
    assert model_problem("prompts", "transformers", "org/m", None, str(tmp_path)) is None
    assert model_problem("prompts", "transformers", str(tmp_path / "org" / "m"), None, None) is None
    assert "no such directory" in model_problem("prompts", "transformers", "/no/such/model", None, None)


def test_validate_pipeline_checks_models_of_real_backends_only(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    cfg = build_config({"stages": {"t2i": {"backend": "procedural", "model": "nobody/nothing"}}}, "x.yaml")
    validate_pipeline(cfg)  # procedural: the model field is not used
    cfg = build_config({"stages": {"prompts": {"backend": "transformers", "layout": "procedural"}}}, "x.yaml")
    with pytest.raises(UserError, match=r"^stages.prompts: model 'Qwen/Qwen3-8B' is not in the hub cache"):
        validate_pipeline(cfg)


def test_procedural_oracles_need_a_layout_after_an_llm():
    cfg = build_config({"stages": {"prompts": {"backend": "transformers"}}}, "x.yaml")
    with pytest.raises(UserError, match="stages.t2i.backend procedural reads the procedural world's scene"):
        validate_pipeline(cfg)


def test_diffusers_t2i_needs_sizes_in_multiples_of_16():
    cfg = build_config({"run": {"width": 100}, "stages": {"t2i": {"backend": "diffusers"}}}, "x.yaml")
    with pytest.raises(UserError, match="multiples of 16"):
        validate_pipeline(cfg)


def test_a_user_error_inside_a_ray_worker_comes_out_as_its_one_line():
    class ActorDiedError(Exception):
        pass

    worker = ActorDiedError(
        "The actor died ...\nTraceback (most recent call last):\n  File x\n"
        "datagen.errors.UserError: stages.repose: cannot load model 'a/b': not found\n"
    )
    try:
        try:
            raise worker
        except ActorDiedError as inner:
            raise RuntimeError("SystemException") from inner
    except RuntimeError as outer:
        assert user_error_message(outer) == "stages.repose: cannot load model 'a/b': not found"
    assert user_error_message(RuntimeError("something else")) is None
