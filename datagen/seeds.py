"""Seeds: sample i of a run has seed f(run_seed, i); each stage draws from its own stream."""

from __future__ import annotations

import zlib

import numpy as np


def sample_seed(run_seed: int, index: int) -> int:
    # SeedSequence mixes (run_seed, index) well: neighbouring indices get unrelated seeds.
    return int(np.random.SeedSequence([run_seed, index]).generate_state(1, dtype=np.uint32)[0])


def stage_rng(seed: int, stage: str, *extra: int) -> np.random.Generator:
    """An independent, reproducible stream per (sample, stage[, subject])."""
    return np.random.default_rng([seed, zlib.crc32(stage.encode()), *extra])
