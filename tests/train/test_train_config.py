"""`datagen train`'s config: the paper's curriculum and the checks made before anything loads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datagen.train.config import CurriculumStage, TrainConfig


def test_the_paper_curriculum_by_step():
    cfg = TrainConfig()
    assert cfg.total_steps == 70_000
    assert cfg.stage_at(0) == (0, cfg.curriculum[0]) and cfg.curriculum[0].max_subjects == 4
    assert cfg.stage_at(29_999)[0] == 0 and cfg.stage_at(30_000)[0] == 1
    assert cfg.curriculum[1].min_subjects == 3 and cfg.stage_at(49_999)[0] == 1
    assert cfg.stage_at(50_000)[0] == 2 and cfg.curriculum[2].min_subjects == 5
    assert cfg.stage_at(10**6)[0] == 2
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.optimizer.name) == (128, 128, "prodigy")


def test_bad_settings_are_refused():
    with pytest.raises(ValidationError, match="rank"):
        TrainConfig(lora={"rank": 0})
    with pytest.raises(ValidationError, match="multiple of 16"):
        TrainConfig(resolution=500)
    with pytest.raises(ValidationError, match="min_subjects must not exceed"):
        CurriculumStage(steps=10, min_subjects=5, max_subjects=4)
    with pytest.raises(ValidationError, match="extra"):
        TrainConfig(lora={"rnak": 4})


def test_previews_sample_and_eval_share_one_sampling_default():
    """One default for steps and guidance (datagen.train.defaults): training previews sample
    with it, and `datagen sample` defaults to it; training's guidance embedding stays 1.0."""
    import inspect

    from datagen import cli
    from datagen.train.defaults import INFERENCE_GUIDANCE, INFERENCE_STEPS
    from datagen.train.generate import generate

    cfg = TrainConfig()
    assert (cfg.sample_steps, cfg.sample_guidance, cfg.guidance) == (INFERENCE_STEPS, INFERENCE_GUIDANCE, 1.0)
    params = inspect.signature(cli.sample).parameters
    assert (params["steps"].default, params["guidance"].default) == (INFERENCE_STEPS, INFERENCE_GUIDANCE)
    params = inspect.signature(generate).parameters
    assert (params["steps"].default, params["guidance"].default) == (INFERENCE_STEPS, INFERENCE_GUIDANCE)
    assert (INFERENCE_STEPS, INFERENCE_GUIDANCE) == (28, 2.5)
