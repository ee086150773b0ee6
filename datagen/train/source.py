"""The trainer's batches from final shards: one seeded webdataset stream per curriculum stage,
loaded by `loader_workers` processes, fast-forwarded on resume so the run continues exactly
where an uninterrupted one would be."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from datagen.models.hub import require
from datagen.train.config import CurriculumStage, TrainConfig
from datagen.train.data import DataStats, training_batches
from datagen.train.step import Batch


class ShardSource:
    def __init__(self, urls: list[str], cfg: TrainConfig) -> None:
        self.urls, self.cfg = urls, cfg
        self.stats = DataStats()  # summed from every loader worker's batches

    def batches(self, stage_index: int, stage: CurriculumStage, rank: int, world: int, skip: int) -> Iterator[Batch]:
        """Stage `stage_index`'s stream; rank and world come from torch.distributed through
        webdataset's node splitter. Skipped batches are decoded and dropped: the stream is a
        function of (seed, stage, node, worker), so this replays an interrupted run exactly."""
        wds = require("webdataset", "train")
        pipeline = training_batches(self.urls, self.cfg, stage, epoch=stage_index)
        loader = wds.WebLoader(pipeline, batch_size=None, num_workers=self.cfg.loader_workers)
        for i, raw in enumerate(loader):
            self.stats.add(raw.get("stats", {}))
            if i >= skip:
                yield to_batch(raw)


def to_batch(raw: dict[str, Any]) -> Batch:
    return Batch(target=raw["target"], control=raw["control"], identities=raw["identities"], prompts=list(raw["prompts"]))
