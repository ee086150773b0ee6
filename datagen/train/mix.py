"""Several data sources in one training stream, drawn by a stage's weights (issue K: ingested
one- and two-subject data only in curriculum stage 1, as the paper trains).

Each source is its own seeded shard stream (datagen.train.data.shard_stream, the source's
index as its salt); a seeded draw picks the source of every next sample, and the draw is
counted per source (`drawn:<name>` in DataStats) so the mix actually drawn can be logged.
webdataset's RandomMix draws from the global `random` module, which nothing seeds per worker:
this one seeds from (seed, epoch, rank and worker), like the rest of the stream.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import webdataset as wds
from torch.utils.data import IterableDataset

from datagen.train.data import DataStats, augmenter, shard_stream

DRAWN = "drawn:"


@dataclass(frozen=True)
class WeightedShards:
    name: str
    urls: list[str]
    probability: float


class SeededMix(IterableDataset):
    """An iterable over the sources' streams; the source of each sample drawn by probability."""

    def __init__(self, streams: list[Any], names: list[str], probabilities: list[float], seed: int, stats: DataStats) -> None:
        self.streams, self.names, self.probabilities, self.seed, self.stats = streams, names, probabilities, seed, stats

    def __iter__(self) -> Iterator[dict]:
        rng = random.Random(self.seed * 1_000_003 + wds.utils.pytorch_worker_seed())
        live = [i for i, p in enumerate(self.probabilities) if p > 0]
        iterators = {i: iter(self.streams[i]) for i in live}
        weights = [self.probabilities[i] for i in live]
        while True:
            i = rng.choices(live, weights)[0]
            self.stats.count(DRAWN + self.names[i])
            yield next(iterators[i])


def mixed_examples(
    sources: list[WeightedShards], cfg: Any, stats: DataStats, keep: Callable[[dict], bool] | None = None, epoch: int = 0
) -> Any:
    """training_examples over several sources: mix, then augment (seeded per sample as ever)."""
    streams = [shard_stream(s.urls, cfg, stats, keep, epoch, salt=i) for i, s in enumerate(sources)]
    mix = SeededMix(streams, [s.name for s in sources], [s.probability for s in sources], int(cfg.seed) + int(epoch), stats)
    return wds.DataPipeline(mix, augmenter(cfg, stats, epoch))


def drawn(counts: dict[str, int]) -> dict[str, int]:
    """The per-source draw counts in a DataStats dict."""
    return {k[len(DRAWN) :]: v for k, v in sorted(counts.items()) if k.startswith(DRAWN)}
