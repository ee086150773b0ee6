"""The trainer's batches from final shards: one seeded webdataset stream per curriculum stage,
loaded by `loader_workers` processes, fast-forwarded on resume so the run continues exactly
where an uninterrupted one would be. Several data sources are mixed per stage by its weights
(TrainConfig.mix); one source streams alone, as it always has."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from datagen.models.hub import require
from datagen.train.config import CurriculumStage, DataSource, TrainConfig
from datagen.train.data import DataStats, training_batches
from datagen.train.mix import WeightedShards, drawn, mixed_examples
from datagen.train.step import Batch


class ShardSource:
    def __init__(self, data: list[str] | list[tuple[DataSource, list[str]]], cfg: TrainConfig) -> None:
        """data: one source's shard URLs, or (source, its shard URLs) pairs."""
        if data and isinstance(data[0], str):
            data = [(DataSource(path="data"), list(data))]
        self.sources: list[tuple[DataSource, list[str]]] = list(data)  # type: ignore[arg-type]
        self.cfg = cfg
        self.stats = DataStats()  # summed from every loader worker's batches
        for stage in cfg.curriculum:  # a stage naming an unknown source fails now, not hours in
            cfg.mix(stage, [s for s, _ in self.sources])

    def _pipeline(self, stage: CurriculumStage, epoch: int) -> Any:
        if len(self.sources) == 1:
            return training_batches(self.sources[0][1], self.cfg, stage, epoch=epoch)
        mix = self.cfg.mix(stage, [s for s, _ in self.sources])
        parts = [WeightedShards(s.label, urls, p) for (s, urls), (_, p) in zip(self.sources, mix, strict=True)]
        return training_batches(parts, self.cfg, stage, epoch=epoch, examples=mixed_examples)  # type: ignore[arg-type]

    def batches(self, stage_index: int, stage: CurriculumStage, rank: int, world: int, skip: int) -> Iterator[Batch]:
        """Stage `stage_index`'s stream; rank and world come from torch.distributed through
        webdataset's node splitter. Skipped batches are decoded and dropped: the stream is a
        function of (seed, stage, node, worker), so this replays an interrupted run exactly."""
        wds = require("webdataset", "train")
        pipeline = self._pipeline(stage, stage_index)
        loader = wds.WebLoader(pipeline, batch_size=None, num_workers=self.cfg.loader_workers)
        for i, raw in enumerate(loader):
            self.stats.add(raw.get("stats", {}))
            if i >= skip:
                yield to_batch(raw)

    def drawn(self) -> dict[str, int]:
        """Samples drawn so far per source (several sources only)."""
        return drawn(self.stats.as_dict())


def to_batch(raw: dict[str, Any]) -> Batch:
    return Batch(target=raw["target"], control=raw["control"], identities=raw["identities"], prompts=list(raw["prompts"]))
