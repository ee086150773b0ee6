"""Seeds: sample i of a run has seed f(run_seed, i); each stage draws from its own stream."""

from __future__ import annotations

import zlib

import numpy as np


# A held-out evaluation run draws its sample seeds from its own namespace, [2^32, 2^33), above
# every training seed ([0, 2^32)): no evaluation scene can ever be a training scene, whatever
# the two runs' seeds.
EVAL_SEED_BASE = 2**32
_EVAL_TAG = zlib.crc32(b"datagen-eval")


def sample_seed(run_seed: int, index: int, split: str = "train") -> int:
    """Sample `index`'s seed: in [0, 2^32) for a training run, in [2^32, 2^33) for an eval run."""
    # SeedSequence mixes (run_seed, index) well: neighbouring indices get unrelated seeds.
    if split == "eval":
        state = np.random.SeedSequence([run_seed, index, _EVAL_TAG]).generate_state(1, dtype=np.uint32)[0]
        return EVAL_SEED_BASE + int(state)
    if split != "train":
        raise ValueError(f"split {split!r}: expected train or eval")
    return int(np.random.SeedSequence([run_seed, index]).generate_state(1, dtype=np.uint32)[0])


def stage_rng(seed: int, stage: str, *extra: int) -> np.random.Generator:
    """An independent, reproducible stream per (sample, stage[, subject])."""
    return np.random.default_rng([seed, zlib.crc32(stage.encode()), *extra])
