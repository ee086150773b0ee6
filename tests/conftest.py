"""Shared fixtures: a small procedural config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from datagen.config import RunConfig, build_config
from datagen.paths import bundled_config_dir
from helpers import SMALL


@pytest.fixture
def small_config_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


@pytest.fixture
def small_cfg() -> RunConfig:
    return build_config(yaml.safe_load(yaml.safe_dump(SMALL)), "small")


@pytest.fixture
def demo_cfg() -> RunConfig:
    return build_config(yaml.safe_load((bundled_config_dir() / "demo.yaml").read_text()), "demo.yaml")
