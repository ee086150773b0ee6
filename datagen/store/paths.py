"""The layout of a run directory (FORMAT.md): where each stage's shards, markers and logs live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}"


def stats_beside(final_tar: Path) -> Path:
    """The stats marker committed beside a final shard (shard-N.tar -> shard-N.stats.json)."""
    return final_tar.with_suffix(".stats.json")


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
        return stats_beside(self.final_tar(shard))
