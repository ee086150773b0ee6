"""Configuration: YAML and `--set` loading (load), every stage's settings (stages), and the run
that gathers them (run). Import from here; the submodules say where each piece lives."""

from datagen.config.base import *  # noqa: F403
from datagen.config.base import __all__ as _base_names
from datagen.config.load import apply_overrides, read_yaml, resolve_config_path, validate_as
from datagen.config.run import (
    FilterRules,
    OutputConfig,
    RayConfig,
    RunConfig,
    RunSection,
    SimulateConfig,
    build_config,
    dump_config,
    load_config,
    load_run_config,
    sha256_json,
)
from datagen.config.stages import *  # noqa: F403 - every <Stage>Config, one import away
from datagen.config.stages import __all__ as _stage_names

__all__ = [
    "FilterRules", "OutputConfig", "RayConfig", "RunConfig", "RunSection", "SimulateConfig", "apply_overrides",
    "build_config", "dump_config", "load_config", "load_run_config", "read_yaml", "resolve_config_path",
    "sha256_json", "validate_as", *_base_names, *_stage_names,
]  # fmt: skip
