"""Diversity and balance of the prompts: subject counts, themes, backgrounds, and the normal
form under which two prompts are duplicates (store/claims.py keeps the run-wide claims).

The subject count N of a sample is drawn from `prompts.subject_count_weights` (uniform over
`num_subjects` by default) on its own seeded stream, so `datagen status` can recompute what
was requested for every sample without reading anything back.

The LLM backends seed each sample's scene with a theme, a background and, when the config has
conditions, a condition appended to the background ("a fishing pier on a foggy day"), drawn
uniformly on the sample's own stream. How often do 41,000 draws (configs/sigma_set27k.yaml)
repeat a combination? Among n uniform draws over K combinations, the expected number of
distinct ones is K * (1 - (1 - 1/K)^n), so the expected share of draws whose combination an
earlier draw already had is 1 - K * (1 - (1 - 1/K)^n) / n (expected_repeat_share):

    lists (scene_lists)                   combinations K   repeat share at n = 41,000
    small: 15 themes x 15 backgrounds                225   99.5%
    large, (theme, background) pairs             85,860   20.5%
    large, with the 30 conditions            2,575,800    0.79%

(For K >> n the share is about n / 2K.) A repeated seed is not a duplicate prompt: the LLM
samples (temperature 0.7) another scene from it, and the run-wide dedup rejects exact
duplicates; the seeds only keep settings and topics from bunching up.
"""

from __future__ import annotations

import hashlib
import math
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
    """(theme, background) for a sample, the background with its drawn condition when the config
    has conditions; a retry draws afresh. Without conditions the draws are those of the lists
    alone (a run made before conditions draws the same scenes)."""
    rng = stage_rng(seed, "prompts:theme", attempt)
    theme, background = _pick(rng, cfg.themes), _pick(rng, cfg.backgrounds)
    if cfg.conditions:
        background = f"{background} {_pick(rng, cfg.conditions)}"
    return theme, background


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    """rng.choice(items), the same draw, without turning the list into an array each time."""
    return items[int(rng.integers(len(items)))]


def scene_combinations(cfg: PromptsConfig) -> int:
    """How many distinct (theme, background[, condition]) seeds the config can draw."""
    return len(set(cfg.themes)) * len(set(cfg.backgrounds)) * max(1, len(set(cfg.conditions)))


def expected_repeat_share(combinations: int, draws: int) -> float:
    """The expected share of `draws` uniform draws over `combinations` equally likely values
    whose value an earlier draw already had: 1 - E[distinct] / draws (the module docstring)."""
    if draws <= 0:
        return 0.0
    if combinations == 1:
        return (draws - 1) / draws
    distinct = -combinations * math.expm1(draws * math.log1p(-1.0 / combinations))
    return 1.0 - distinct / draws


def drawn_scenes(cfg: PromptsConfig, seeds: list[int]) -> dict[str, float | int]:
    """The first-attempt scene seeds of `seeds`, counted: how many distinct, and the share of
    draws that repeat an earlier one, against the expected share."""
    drawn = [draw_theme(cfg, s) for s in seeds]
    distinct = len(set(drawn))
    return {
        "combinations": scene_combinations(cfg),
        "draws": len(drawn),
        "distinct": distinct,
        "distinct_backgrounds": len({b for _, b in drawn}),
        "repeat_share": 1.0 - distinct / len(drawn) if drawn else 0.0,
        "expected_repeat_share": expected_repeat_share(scene_combinations(cfg), len(drawn)),
    }


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
