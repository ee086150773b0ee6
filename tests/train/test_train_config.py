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
