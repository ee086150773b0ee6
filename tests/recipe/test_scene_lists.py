"""The prompts stage's scene lists (theme x background x condition): large enough that a
paper-scale run rarely repeats a seed, the old small lists one flag away, and old runs drawing
the scenes they drew."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from datagen.config import DEFAULT_BACKGROUNDS, DEFAULT_THEMES, PromptsConfig, build_config, dump_config, load_config
from datagen.config.run import load_run_config
from datagen.errors import UserError
from datagen.recipe import diversity, scene_lists
from datagen.recipe.diversity import draw_theme, drawn_scenes, expected_repeat_share, scene_combinations
from datagen.seeds import sample_seed, stage_rng

ROOT = Path(__file__).resolve().parents[2]
PAPER_DRAWS = 41_000  # configs/sigma_set27k.yaml's run.num_samples
LISTS = {"themes": scene_lists.THEMES, "backgrounds": scene_lists.BACKGROUNDS, "conditions": scene_lists.CONDITIONS}


@pytest.mark.parametrize("name", list(LISTS))
def test_lists_are_large_distinct_and_plain(name):
    items = LISTS[name]
    assert len(items) >= {"themes": 200, "backgrounds": 300, "conditions": 20}[name]
    assert len(set(items)) == len(items), [i for i in items if items.count(i) > 1]
    for item in items:
        # Lower case ascii words: no proper names, brands or markup reach the LLM.
        assert re.fullmatch(r"[a-z][a-z' ,.-]*[a-z]", item), item
        assert item == item.strip() and "  " not in item and len(item) <= 48, item


def test_time_and_light_come_from_the_conditions_only():
    """A background or theme naming a time of day would contradict half the conditions."""
    clock = re.compile(r"\b(morning|afternoon|evening|night|dusk|dawn|sunset|sunrise|midday|noon)\b")
    assert [x for x in (*scene_lists.BACKGROUNDS, *scene_lists.THEMES) if clock.search(x)] == []


def test_the_small_lists_are_the_first_draws_of_the_large_ones():
    assert set(DEFAULT_THEMES) <= set(scene_lists.THEMES) and set(DEFAULT_BACKGROUNDS) <= set(scene_lists.BACKGROUNDS)
    assert list(scene_lists.THEMES[:15]) == DEFAULT_THEMES


def test_the_docstrings_quote_the_lists_sizes_and_rates():
    t, b, c = len(scene_lists.THEMES), len(scene_lists.BACKGROUNDS), len(scene_lists.CONDITIONS)
    assert f"{b} backgrounds x {t} themes x {c} conditions = {t * b * c:,} combinations" in scene_lists.__doc__
    doc = diversity.__doc__
    assert f"{t * b:,}   {100 * expected_repeat_share(t * b, PAPER_DRAWS):.1f}%" in doc
    assert f"{t * b * c:,}    {100 * expected_repeat_share(t * b * c, PAPER_DRAWS):.2f}%" in doc
    assert f"225   {100 * expected_repeat_share(225, PAPER_DRAWS):.1f}%" in doc


def test_expected_repeat_share_by_hand():
    assert expected_repeat_share(1, 4) == pytest.approx(3 / 4)  # one value: every draw after the first
    assert expected_repeat_share(2, 2) == pytest.approx(1 / 4)  # the second draw repeats half the time
    assert expected_repeat_share(3, 3) == pytest.approx(1 - (3 * (1 - (2 / 3) ** 3)) / 3)
    assert expected_repeat_share(10**9, 10) == pytest.approx(45 / 10**9 / 10, rel=1e-3)  # ~ n / 2K, not 0
    assert expected_repeat_share(225, PAPER_DRAWS) > 0.99
    assert expected_repeat_share(50, 0) == 0.0


def test_paper_scale_draws_repeat_as_expected():
    """41,000 real draws (the config's lists, the run's seeds) against the closed form."""
    cfg = load_config(ROOT / "configs" / "sigma_set27k.yaml")
    prompts, seeds = cfg.stages.prompts, [cfg.sample_seed(i) for i in range(cfg.run.num_samples)]
    assert cfg.run.num_samples == PAPER_DRAWS and prompts.scene_lists == "large"
    assert scene_combinations(prompts) == len(scene_lists.THEMES) * len(scene_lists.BACKGROUNDS) * len(scene_lists.CONDITIONS)
    full = drawn_scenes(prompts, seeds)
    assert full["expected_repeat_share"] < 0.01  # rarely
    assert full["repeat_share"] == pytest.approx(full["expected_repeat_share"], abs=0.002)
    assert full["distinct_backgrounds"] > 5000  # background x condition
    # Pairs alone (no conditions) repeat far more often, and as the closed form says.
    pairs = drawn_scenes(prompts.model_copy(update={"conditions": []}), seeds)
    assert pairs["distinct_backgrounds"] == len(scene_lists.BACKGROUNDS)
    assert 0.15 < pairs["repeat_share"] == pytest.approx(pairs["expected_repeat_share"], abs=0.005)


def test_the_small_lists_are_one_flag_away():
    small = build_config({"stages": {"prompts": {"scene_lists": "small"}}}, "x.yaml").stages.prompts
    assert (small.themes, small.backgrounds, small.conditions) == (DEFAULT_THEMES, DEFAULT_BACKGROUNDS, [])
    assert scene_combinations(small) == 225
    large = PromptsConfig()
    assert (large.scene_lists, len(large.conditions)) == ("large", len(scene_lists.CONDITIONS))
    with pytest.raises(UserError, match="scene_lists"):
        build_config({"stages": {"prompts": {"scene_lists": "huge"}}}, "x.yaml")
    # A config's own lists win; its own backgrounds come without conditions unless it names some.
    own = PromptsConfig(backgrounds=["a red room"])
    assert own.themes == list(scene_lists.THEMES) and own.conditions == []
    assert PromptsConfig(backgrounds=["a red room"], conditions=["at dusk"]).conditions == ["at dusk"]
    assert draw_theme(PromptsConfig(themes=["x"], backgrounds=["a red room"], conditions=["at dusk"]), 3) == ("x", "a red room at dusk")


def test_a_run_yaml_keeps_its_lists():
    """run.yaml holds the lists themselves: it reloads to the same config whatever the defaults."""
    cfg = load_config(ROOT / "configs" / "sigma_set27k.yaml")
    dumped = yaml.safe_load(dump_config(cfg))
    assert dumped["stages"]["prompts"]["backgrounds"] == list(scene_lists.BACKGROUNDS)
    assert build_config(dumped, "run.yaml") == cfg
    small = build_config({"stages": {"prompts": {"scene_lists": "small"}}}, "x.yaml")
    assert build_config(yaml.safe_load(dump_config(small)), "run.yaml") == small


def test_a_run_made_before_conditions_draws_the_same_scenes():
    """The committed v1 run names its 15 x 15 lists and no conditions: the draws are those of
    the old rng.choice(themes), rng.choice(backgrounds)."""
    old = load_run_config(ROOT / "tests" / "fixtures" / "v1_run").stages.prompts
    assert old.conditions == [] and old.themes == DEFAULT_THEMES and old.backgrounds == DEFAULT_BACKGROUNDS
    for i in range(300):
        seed, attempt = sample_seed(0, i), i % 3
        rng = stage_rng(seed, "prompts:theme", attempt)
        assert draw_theme(old, seed, attempt) == (str(rng.choice(old.themes)), str(rng.choice(old.backgrounds)))


def test_every_entry_can_be_drawn():
    cfg = PromptsConfig(themes=list(scene_lists.BACKGROUNDS), backgrounds=["b"], conditions=[])
    drawn = {draw_theme(cfg, sample_seed(7, i))[0] for i in range(6000)}
    assert drawn == set(scene_lists.BACKGROUNDS)  # 318 values, 6000 draws: each ~19 times
