"""Several data sources in one training run, mixed per curriculum stage (issue K, part 4): the
weights a stage names are the ones drawn, deterministically, and the mix drawn is reported."""

from __future__ import annotations

import itertools
import json
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


def test_a_tiny_train_draws_stage_one_from_both_and_stage_two_from_one(tmp_path, tiny_models, finished_run, other_run):
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "train_tiny.yaml").read_text())
    config["data"] = [{"path": str(finished_run), "name": "generated"}, {"path": str(other_run), "name": "ingested"}]
    config["curriculum"] = [
        {"steps": 2, "min_subjects": 1, "max_subjects": 10, "data_weights": {"generated": 1, "ingested": 1}},
        {"steps": 2, "min_subjects": 1, "max_subjects": 10, "data_weights": {"generated": 1}},
    ]
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    done = run_cli("train", "--config", str(path), "--out", str(tmp_path / "lora"), "--set", f"models_dir={tiny_models}", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    mix = json.loads(done.stdout.strip().splitlines()[-1])["mix"]
    assert set(mix["stage 1"]) == {"generated", "ingested"} and set(mix["stage 2"]) == {"generated"}
    assert "stage 1 drew generated" in done.stderr and "stage 2 drew generated" in done.stderr

    bad = run_cli("train", "--config", str(path), "--out", str(tmp_path / "bad"), "--data", str(finished_run))
    assert bad.returncode == 2 and "not a data source" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
