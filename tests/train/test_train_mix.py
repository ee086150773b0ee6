"""Several data sources in one training run, mixed per curriculum stage (issue K, part 4): the
weights a stage names are the ones drawn, deterministically, and the mix drawn is reported. The
end-to-end train on a real ingested run is test_train_ingested.py."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from datagen.errors import UserError
from datagen.train import data as D
from datagen.train.config import CurriculumStage, DataSource, TrainConfig
from datagen.train.mix import WeightedShards, drawn, mixed_examples
from helpers import SMALL, run_cli


@pytest.fixture(scope="module")
def other_run(tmp_path_factory) -> Path:
    """A second small procedural run (another seed, 4 samples): the 'ingested' source."""
    root = tmp_path_factory.mktemp("other")
    config = {**SMALL, "run": {**SMALL["run"], "name": "other", "seed": 99, "num_samples": 4, "shard_size": 2}}
    (root / "other.yaml").write_text(yaml.safe_dump(config))
    done = run_cli("run", "--config", str(root / "other.yaml"), "--out", str(root / "run"), "--executor", "local")
    assert done.returncode == 0, done.stderr
    return root / "run"


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"seed": 0, "resolution": 64, "identity_size": 32, "batch_size": 2, "shuffle_buffer": 4, **kw})


def test_a_stages_weights_choose_the_sources():
    sources = [DataSource(path="runs/sigma/final"), DataSource(path="runs/ins", name="anyinsertion", weight=3)]
    assert [s.label for s in sources] == ["sigma", "anyinsertion"]
    c = cfg(data=sources)
    own = CurriculumStage(steps=1)
    assert [round(p, 3) for _, p in c.mix(own)] == [0.25, 0.75]
    only_sigma = CurriculumStage(steps=1, data_weights={"sigma": 1})
    assert [p for _, p in c.mix(only_sigma)] == [1.0, 0.0]
    with pytest.raises(UserError, match="'musar', not a data source"):
        c.mix(CurriculumStage(steps=1, data_weights={"musar": 1}))
    with pytest.raises(ValueError, match="at least one > 0"):
        CurriculumStage(steps=1, data_weights={"sigma": 0})


def test_data_flags_name_sources_and_replace_the_configs():
    c = cfg(data=[DataSource(path="a")])
    assert [s.label for s in D.data_sources(c, None)] == ["a"]
    given = D.data_sources(c, ["gen=runs/x", "runs/y/final"])
    assert [(s.label, s.path) for s in given] == [("gen", "runs/x"), ("y", "runs/y/final")]
    with pytest.raises(UserError, match="two sources are called 'x'"):
        D.data_sources(c, ["runs/x", "other/x"])
    with pytest.raises(UserError, match="no training data"):
        D.data_sources(cfg(), None)


def _draws(urls_a, urls_b, probabilities, n=40):
    stats = D.DataStats()
    sources = [WeightedShards("gen", urls_a, probabilities[0]), WeightedShards("ing", urls_b, probabilities[1])]
    keys = [e["key"] for e in itertools.islice(mixed_examples(sources, cfg(), stats), n)]
    return drawn(stats.as_dict()), keys


def test_the_mix_draws_by_weight_and_is_reproducible(finished_run, other_run):
    a, b = D.list_shards(finished_run), D.list_shards(other_run)
    only_a, _ = _draws(a, b, (1.0, 0.0))
    assert set(only_a) == {"gen"} and only_a["gen"] >= 40
    both, keys = _draws(a, b, (0.5, 0.5))
    assert set(both) == {"gen", "ing"} and min(both.values()) >= 8  # 40 draws at 1/2: both well present
    again, keys_again = _draws(a, b, (0.5, 0.5))
    assert (again, keys_again) == (both, keys)  # seeded: the same mix every time
