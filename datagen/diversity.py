"""Diversity and balance of the prompts: subject counts, themes, backgrounds, near-duplicates.

The subject count N of a sample is drawn from `prompts.subject_count_weights` (uniform over
`num_subjects` by default) on its own seeded stream, so `datagen status` can recompute what
was requested for every sample without reading anything back.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

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


class PromptRegistry:
    """Run-wide claims on normalised prompts: the first sample to claim one keeps it.

    One file per prompt hash under the run directory, holding the key that claimed it. The key
    is written to a private file first, then hard-linked to the claim's name: the link either
    creates the claim complete or fails because it exists, atomically on a local or shared
    POSIX filesystem, so workers on every node agree and no one ever reads a half-made claim.
    (Creating the claim with O_EXCL and then writing it left a moment where another worker
    read it empty.) A sample that claims again (a retried shard) finds its own key and keeps it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def claim(self, text: str, key: str) -> str:
        """The key that owns this prompt: `key` itself if it is the first to claim it."""
        h = prompt_hash(text)
        path = self.root / h[:2] / h
        path.parent.mkdir(parents=True, exist_ok=True)
        mine = path.with_name(f".{h}.{key}.{os.getpid()}.tmp")
        mine.write_text(key, encoding="ascii")
        try:
            os.link(mine, path)
            return key
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
        finally:
            mine.unlink(missing_ok=True)


def requested_histogram(cfg: PromptsConfig, seeds: list[int]) -> dict[str, int]:
    counts = np.bincount([subject_count(cfg, s) for s in seeds], minlength=11)
    return {str(n): int(c) for n, c in enumerate(counts) if c}
