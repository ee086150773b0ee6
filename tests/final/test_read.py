"""The viewers, report and exporter read a run's final shards by the rule `datagen status`
counts them with: current settings and output present. A stale final shard is never served."""

from __future__ import annotations

import shutil

import pytest
import yaml

from datagen.errors import UserError
from datagen.final.read import count_final_samples, final_shards, find_sample
from datagen.store.paths import RunPaths
from datagen.config import load_run_config
from datagen.pipeline.markers import final_kept


def test_final_shards_agree_with_status(finished_run):
    kept, done = final_kept(load_run_config(finished_run), RunPaths(finished_run))
    assert len(final_shards(finished_run)) == done == 3
    assert count_final_samples(finished_run) == kept


def test_shards_of_older_settings_are_read_while_status_would_redo_them(finished_run, tmp_path):
    """A finished final shard is whole whatever settings made it (an older datagen, an edited
    config): readers serve it, so old runs stay readable; status counts by the current settings."""
    from datagen.config import load_run_config
    from datagen.pipeline.markers import final_kept
    from datagen.store.paths import RunPaths

    run = shutil.copytree(finished_run, tmp_path / "run")
    data = yaml.safe_load((run / "run.yaml").read_text())
    data["filters"]["min_exclusive_share"] = 0.61  # the run's final shards were made under 0.5
    (run / "run.yaml").write_text(yaml.safe_dump(data))
    assert [p.name for p in final_shards(run)] == [p.name for p in final_shards(finished_run)]
    assert final_kept(load_run_config(run), RunPaths(run)) == (0, 0)


def test_a_shard_whose_tar_is_gone_does_not_count(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    (run / "final" / "shard-000001.tar").unlink()
    assert [p.name for p in final_shards(run)] == ["shard-000000.tar", "shard-000002.tar"]
    key = next(k for k in ("000001_000004", "000001_000005", "000001_000006", "000001_000007"))
    with pytest.raises(UserError, match=f"--sample {key}: no such sample"):
        find_sample(run, key)
