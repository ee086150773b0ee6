"""Diversity and balance of the prompts: subject counts, themes, backgrounds, and the normal
form under which two prompts are duplicates (store/claims.py keeps the run-wide claims).

The subject count N of a sample is drawn from `prompts.subject_count_weights` (uniform over
`num_subjects` by default) on its own seeded stream, so `datagen status` can recompute what
was requested for every sample without reading anything back.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

from datagen.config import PromptsConfig
from datagen.seeds import stage_rng


def count_distribution(cfg: PromptsConfig) -> dict[int, float]:
    """N -> probability."""
    lo, hi = cfg.num_subjects
    weights = cfg.subject_count_weights or {n: 1.0 for n in range(lo, hi + 1)}
    total = sum(weights.values())
    return {n: weights[n] / total for n in sorted(weights) if weights[n] > 0}


def subject_count(cfg: PromptsConfig, seed: int) -> int:
    dist = count_distribution(cfg)
    counts = list(dist)
    return int(stage_rng(seed, "prompts:count").choice(counts, p=list(dist.values())))


def draw_theme(cfg: PromptsConfig, seed: int, attempt: int = 0) -> tuple[str, str]:
    """(theme, background) for a sample; a retry draws afresh."""
    rng = stage_rng(seed, "prompts:theme", attempt)
    return str(rng.choice(cfg.themes)), str(rng.choice(cfg.backgrounds))


def normalise_prompt(text: str) -> str:
    """Case, accents, punctuation and spacing removed: prompts equal up to those are duplicates."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", text.lower())
    # Articles carry no content ("a red cube" vs "the red cube").
    return " ".join(w for w in words if w not in {"a", "an", "the"})


def prompt_hash(text: str) -> str:
    return hashlib.sha256(normalise_prompt(text).encode()).hexdigest()


def requested_histogram(cfg: PromptsConfig, seeds: list[int]) -> dict[str, int]:
    counts = np.bincount([subject_count(cfg, s) for s in seeds], minlength=11)
    return {str(n): int(c) for n, c in enumerate(counts) if c}
