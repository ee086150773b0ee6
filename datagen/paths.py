"""Where things live: bundled resources, and the layout of a run directory (FORMAT.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datagen


def _resource_dir(name: str) -> Path:
    # datagen.__path__ holds the package and, in a checkout, the repository root (see __init__).
    for base in datagen.__path__:
        candidate = Path(base) / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"datagen resource directory {name!r} is missing from the installation")


def bundled_config_dir() -> Path:
    return _resource_dir("configs")


def data_cards_dir() -> Path:
    return _resource_dir("data_cards")


def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def run_yaml(self) -> Path:
        return self.root / "run.yaml"

    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    @property
    def stages_dir(self) -> Path:
        return self.root / "stages"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def stage_dir(self, stage: str) -> Path:
        return self.stages_dir / stage

    def stage_tar(self, stage: str, shard: int) -> Path:
        return self.stage_dir(stage) / f"{shard_name(shard)}.tar"

    def stage_done(self, stage: str, shard: int) -> Path:
        return self.stage_dir(stage) / f"{shard_name(shard)}.done.json"

    def failed_marker(self, stage: str, shard: int) -> Path:
        return self.stage_dir(stage) / f"{shard_name(shard)}.failed.json"

    def final_tar(self, shard: int) -> Path:
        return self.final_dir / f"{shard_name(shard)}.tar"

    def final_stats(self, shard: int) -> Path:
        return self.final_dir / f"{shard_name(shard)}.stats.json"

    def output_tar(self, stage: str, shard: int, final_stage: str) -> Path:
        return self.final_tar(shard) if stage == final_stage else self.stage_tar(stage, shard)

    def output_marker(self, stage: str, shard: int, final_stage: str) -> Path:
        return self.final_stats(shard) if stage == final_stage else self.stage_done(stage, shard)
