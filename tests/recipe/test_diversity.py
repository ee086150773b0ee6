"""Subject counts, themes and near-duplicate prompts."""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter
from pathlib import Path

import pytest

from datagen.config import PromptsConfig, build_config
from datagen.errors import UserError
from datagen.store.claims import PromptRegistry
from datagen.recipe.diversity import count_distribution, draw_theme, normalise_prompt, subject_count
from datagen.store.inflight import Rejected, Sample
from datagen.seeds import sample_seed
from datagen.pipeline.preflight import build_stage


def test_default_counts_are_uniform_over_3_to_10():
    cfg = PromptsConfig()
    counts = Counter(subject_count(cfg, sample_seed(0, i)) for i in range(8000))
    assert set(counts) == set(range(3, 11))
    assert all(abs(c / 8000 - 1 / 8) < 0.02 for c in counts.values())


def test_weights_shape_the_distribution_and_are_checked():
    cfg = PromptsConfig(num_subjects=(3, 10), subject_count_weights={3: 0, 8: 1, 9: 1, 10: 2})
    assert count_distribution(cfg) == {8: 0.25, 9: 0.25, 10: 0.5}
    counts = Counter(subject_count(cfg, sample_seed(1, i)) for i in range(4000))
    assert set(counts) == {8, 9, 10} and abs(counts[10] / 4000 - 0.5) < 0.03
    with pytest.raises(UserError, match="subject_count_weights: count 2 is outside"):
        build_config({"stages": {"prompts": {"subject_count_weights": {2: 1.0}}}}, "x.yaml")


def test_themes_are_seeded_and_a_retry_draws_afresh():
    cfg = PromptsConfig()
    assert draw_theme(cfg, 42) == draw_theme(cfg, 42)
    draws = {draw_theme(cfg, 42, attempt) for attempt in range(8)}
    assert len(draws) > 1
    assert len({draw_theme(cfg, sample_seed(0, i)) for i in range(200)}) > 50


def test_normalisation_ignores_case_punctuation_accents_and_articles():
    assert normalise_prompt("A Red cube, and THE café!") == normalise_prompt("a red  cube and a cafe")
    assert normalise_prompt("a red cube") != normalise_prompt("a blue cube")


def test_the_lowest_index_owns_a_prompt_whoever_claims_first(tmp_path: Path):
    reg = PromptRegistry(tmp_path)
    assert reg.claim("A red cube.", "000003_000007") == "000003_000007"
    assert reg.claim("a RED cube", "000000_000001") == "000000_000001"  # a lower index takes it over
    assert reg.claim("A red cube.", "000003_000007") == "000000_000001"  # a retry does not win it back
    assert reg.owner("the red cube") == "000000_000001" and reg.owner("a blue cube") is None
    # Indices rank as numbers, not text: past a million samples the field widens.
    assert reg.claim("A red cube.", "100000_1000000") == "000000_000001"


def _claim(args):
    root, key = args
    return PromptRegistry(Path(root)).claim("the same prompt", key)


def test_concurrent_claims_agree_on_the_lowest_index(tmp_path: Path):
    keys = [f"000000_{i:06d}" for i in range(64)]
    with mp.get_context("spawn").Pool(8) as pool:
        pool.map(_claim, [(str(tmp_path), k) for k in reversed(keys)], chunksize=1)
    assert PromptRegistry(tmp_path).owner("the same prompt") == keys[0]
    # One complete claim per sample and no leftovers.
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == keys


def test_prompts_stage_rejects_a_duplicate_of_another_shard(small_cfg, tmp_path: Path):
    stage = build_stage("prompts", small_cfg)
    stage.bind_run(tmp_path)
    stage.setup()
    first = stage.process_batch([Sample(index=0, shard=0, seed=sample_seed(0, 0))])[0]
    assert isinstance(first, Sample)
    twin = stage.process_batch([Sample(index=5, shard=1, seed=sample_seed(0, 0))])[0]  # same seed, same prompt
    assert isinstance(twin, Rejected) and twin.reason == "duplicate_prompt"
    again = stage.process_batch([Sample(index=0, shard=0, seed=sample_seed(0, 0))])[0]  # a retried shard
    assert isinstance(again, Sample)
    # The first to claim keeps its prompt for now; a lower index claiming later keeps it too
    # (the final stage drops the higher one: tests/pipeline/test_dedup.py).
    early = stage.process_batch([Sample(index=9, shard=2, seed=sample_seed(0, 1))])[0]
    assert isinstance(early, Sample)
    assert isinstance(stage.process_batch([Sample(index=1, shard=0, seed=sample_seed(0, 1))])[0], Sample)
    assert stage.registry.owner(early.meta["prompt"]["full"]) == "000000_000001"
