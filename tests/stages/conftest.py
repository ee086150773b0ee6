"""Samples carried through the real stages in-process, up to a given stage."""

from __future__ import annotations

import copy

import pytest

from datagen.store.inflight import Sample
from datagen.seeds import sample_seed
from datagen.pipeline.preflight import build_stage


@pytest.fixture
def through(small_cfg):
    cache: dict[str, list] = {}

    def run(upto: str, cfg=small_cfg, n: int = 6):
        order = cfg.stages.order
        samples: list = [Sample(index=i, shard=0, seed=sample_seed(cfg.run.seed, i)) for i in range(n)]
        for name in order[: order.index(upto) + 1]:
            key = f"{name}:{n}:{id(cfg)}"
            if key in cache:
                samples = copy.deepcopy(cache[key])
                continue
            stage = build_stage(name, cfg)
            stage.setup()
            samples = [s for s in stage.process_batch(samples) if isinstance(s, Sample)]
            cache[key] = copy.deepcopy(samples)
        return samples

    return run
