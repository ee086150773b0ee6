"""A held-out evaluation run (`run.split: eval`): its seeds live in their own namespace, every
sample records the split, one-subject images are allowed, and `datagen train` refuses it."""

from __future__ import annotations

import json

import pytest
import yaml

from datagen.final.read import iter_final_samples
from datagen.seeds import EVAL_SEED_BASE, sample_seed
from helpers import SMALL, run_cli


def test_eval_seeds_never_meet_training_seeds():
    train = {sample_seed(s, i) for s in range(3) for i in range(2000)}
    evals = {sample_seed(s, i, "eval") for s in range(3) for i in range(2000)}
    assert all(0 <= x < EVAL_SEED_BASE for x in train)
    assert all(EVAL_SEED_BASE <= x < 2 * EVAL_SEED_BASE for x in evals)
    assert len(evals) == 6000  # distinct within the namespace too
    assert sample_seed(0, 5, "eval") == sample_seed(0, 5, "eval")  # deterministic
    with pytest.raises(ValueError, match="split 'test'"):
        sample_seed(0, 0, "test")


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-split")
    config = {
        **SMALL,
        "run": {**SMALL["run"], "name": "eval-small", "split": "eval", "num_samples": 8},
        "filters": {"min_subjects": 1},
        "stages": {**SMALL["stages"], "prompts": {"num_subjects": [1, 3], "subject_count_weights": {1: 0.6, 2: 0.2, 3: 0.2}}},
    }
    path = root / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    run = root / "run"
    done = run_cli("run", "--config", str(path), "--out", str(run), "--executor", "local")
    assert done.returncode == 0, done.stderr
    return run


def test_an_eval_run_records_its_split_and_keeps_one_subject_images(eval_run):
    samples = list(iter_final_samples(eval_run))
    assert samples
    assert all(s.meta["generation"]["split"] == "eval" for s in samples)
    assert all(s.meta["generation"]["seed"] >= EVAL_SEED_BASE for s in samples)
    assert 1 in {len(s.subjects) for s in samples}
    checked = run_cli("validate", str(eval_run))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_training_run_records_the_train_split(finished_run):
    assert all(s.meta["generation"]["split"] == "train" for s in iter_final_samples(finished_run))


def test_train_refuses_an_eval_run_in_one_line(eval_run, finished_run, tmp_path):
    for data in ([str(eval_run)], [str(finished_run), str(eval_run / "final" / "shard-000001.tar")]):
        args = ["train", "--config", "train_tiny", "--out", str(tmp_path / "lora")]
        for d in data:
            args += ["--data", d]
        done = run_cli(*args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert "is from an evaluation run (generation.split: eval)" in last and "shard-00000" in last
    assert not (tmp_path / "lora").exists()


def test_the_bundled_eval_configs_are_eval_runs_that_allow_one_subject():
    from datagen.config import load_config
    from datagen.resources import bundled_config_dir

    for name in ("sigma_eval.yaml", "eval_tiny.yaml"):
        cfg = load_config(bundled_config_dir() / name)
        assert cfg.run.split == "eval" and cfg.filters.min_subjects == 1 and cfg.stages.prompts.num_subjects[0] == 1
        assert json.dumps(cfg.stages.prompts.subject_count_weights)
