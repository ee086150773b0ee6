"""Shared fixtures: a small procedural config."""

from __future__ import annotations

import os

# Tests never reach a model hub. huggingface_hub reads HF_HUB_OFFLINE once, at import: set it
# before anything imports it, or a test that sets it later still waits out ~45 s of retries
# for each missing model (and every subprocess inherits it through helpers._env).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest
import yaml

from datagen.config import RunConfig, build_config
from datagen.resources import bundled_config_dir
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


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """Tiny random-weight Qwen3, FLUX.1 [dev] and FLUX.1 Kontext, built offline once per session."""
    from datagen.models.tiny.build import build_tiny_models

    root = tmp_path_factory.mktemp("tiny-models")
    build_tiny_models(root, say=lambda _: None)
    return root


@pytest.fixture
def tiny_cfg(tiny_models) -> RunConfig:
    data = yaml.safe_load((bundled_config_dir() / "tiny.yaml").read_text())
    data["models_dir"] = str(tiny_models)
    return build_config(data, "tiny.yaml")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A finished procedural run (SMALL: 12 samples in 3 shards at 128x128), built once per
    session without Ray. Read it, never write into it: copy it first (shutil.copytree)."""
    from helpers import run_cli

    root = tmp_path_factory.mktemp("finished")
    config = root / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    run_dir = root / "run"
    done = run_cli("run", "--config", str(config), "--out", str(run_dir), "--executor", "local")
    assert done.returncode == 0, done.stderr
    return run_dir
