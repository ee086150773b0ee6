"""`--target-kept N`: rounds sized by the survival measured so far, then exactly the first N kept
samples in index order (per subject-count bucket when asked), resumable, and the same whatever
runs the shards."""

from __future__ import annotations

import copy
import json
import math
import tarfile
from pathlib import Path

import pytest
import yaml

from datagen.pipeline.kept_target import Target
from datagen.pipeline.target import shards_to_add
from datagen.pipeline.target_cut import plan_cut
from helpers import SMALL, final_bytes, run_cli

# min_subjects 5 rejects about a third of the samples, so survival is well below 1.
CFG = copy.deepcopy(SMALL)
CFG["run"].update(num_samples=8, shard_size=4)
CFG["filters"] = {"min_subjects": 5}


def _target(buckets: dict[str, int] | None = None, kept: int | None = None) -> Target:
    from datagen.config.run import RunSection

    run = RunSection(target_kept=kept, target_buckets=buckets or {})
    return Target.of(type("C", (), {"run": run})())


def test_a_round_adds_the_shortfall_over_the_survival_with_two_sigma():
    t = _target(kept=1000)
    assert shards_to_add(t, [1000], 2000, 4) == 0
    need, rate = 400, 0.6  # 600 kept of 1000
    assert shards_to_add(t, [600], 1000, 4) == math.ceil((need + 2 * math.sqrt(need * (1 - rate))) / rate / 4)
    # A bucket nothing was kept in yet doubles the run; the most demanding bucket sizes the round.
    tb = _target({"3-4": 10, "8-10": 10})
    assert shards_to_add(tb, [10, 0], 40, 4) == 10
    assert shards_to_add(tb, [2, 8], 40, 4) == math.ceil((8 + 2 * math.sqrt(8 * 0.95)) / 0.05 / 4)


def test_the_cut_takes_each_buckets_first_samples_in_shard_order():
    tb = _target({"3-4": 3, "5-10": 2})
    last, takes = plan_cut(tb, [[2, 0], [2, 1], [0, 0], [1, 2], [5, 5]])
    assert last == 3 and takes == [[2, 0], [1, 1], [0, 0], [0, 1]]


def test_buckets_are_checked():
    for bad in ({"3-5": 1, "5-9": 1}, {"x": 1}, {"4-3": 1}, {"3": 0}):
        with pytest.raises(ValueError, match="target_buckets"):
            _target(bad)


def _keys(run: Path) -> list[str]:
    keys = []
    for shard in sorted((run / "final").glob("shard-*.tar")):
        with tarfile.open(shard) as t:
            keys += sorted({m.name.split(".")[0] for m in t.getmembers()})
    return keys


def _members(run: Path) -> dict[str, bytes]:
    out = {}
    for shard in sorted((run / "final").glob("shard-*.tar")):
        with tarfile.open(shard) as t:
            out.update({m.name: t.extractfile(m).read() for m in t.getmembers()})
    return out


def _subjects(run: Path) -> dict[str, int]:
    return {k.split(".")[0]: len(json.loads(v)["subjects"]) for k, v in _members(run).items() if k.endswith(".json")}


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump(CFG))
    return path


@pytest.fixture(scope="module")
def plain(config, tmp_path_factory) -> Path:
    """The same samples without a target: 40 of them, in order."""
    run = tmp_path_factory.mktemp("plain") / "RUN"
    done = run_cli("run", "--config", str(config), "--out", str(run), "-n", "40", "--executor", "local", timeout=900)
    assert done.returncode == 0, done.stderr
    return run


def test_exactly_the_first_n_kept_resumable_and_raised(config, plain, tmp_path):
    run = tmp_path / "RUN"
    done = run_cli("run", "--config", str(config), "--out", str(run), "--target-kept", "9", "--executor", "local",
                   timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "round 1:" in done.stderr and "target reached: 9 kept" in done.stderr
    expected = _keys(plain)
    assert len(expected) >= 14, "the plain run keeps enough to compare"
    assert _keys(run) == expected[:9]
    members = _members(run)
    plain_members = _members(plain)
    assert members == {k: plain_members[k] for k in members}, "kept samples are byte-identical"
    stats = [json.loads(p.read_text()) for p in sorted((run / "final").glob("*.stats.json"))]
    assert sum(s["samples_written"] for s in stats) == 9
    cut = [s for s in stats if "target_cut" in s]
    assert cut, "the 9th kept sample is not its shard's last: one shard is cut"
    assert all(s["rejected"]["filter"].get("over_target") == s["target_cut"]["samples_written"] - s["samples_written"]
               for s in cut)  # fmt: skip
    ran = yaml.safe_load((run / "run.yaml").read_text())["run"]
    assert ran["num_samples"] == 4 * len(stats) and ran["target_kept"] == 9
    assert run_cli("validate", str(run)).returncode == 0

    # A resume has nothing to do and changes nothing.
    before = final_bytes(run)
    again = run_cli("run", "--out", str(run), "--executor", "local", timeout=600)
    assert again.returncode == 0, again.stderr
    assert "shards to process" not in again.stderr and final_bytes(run) == before

    # A larger target: surplus shards come back, the cut shard is redone whole, then cut anew.
    raised = run_cli("run", "--out", str(run), "--target-kept", "13", "--executor", "local", timeout=900)
    assert raised.returncode == 0, raised.stderr
    assert _keys(run) == expected[:13]
    assert run_cli("validate", str(run)).returncode == 0


def test_per_bucket_targets_keep_each_buckets_first_samples(config, plain, tmp_path):
    run = tmp_path / "RUN"
    done = run_cli("run", "--config", str(config), "--out", str(run), "--executor", "local",
                   "--set", 'run.target_buckets={"5-6": 3, "7-10": 4}', timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr
    subjects, plain_subjects = _subjects(run), _subjects(plain)
    order = sorted(plain_subjects)
    for lo, hi, n in ((5, 6, 3), (7, 10, 4)):
        want = [k for k in order if lo <= plain_subjects[k] <= hi][:n]
        assert sorted(k for k, c in subjects.items() if lo <= c <= hi) == want
    assert len(subjects) == 7


def test_ray_with_two_workers_ends_with_the_same_bytes(config, tmp_path):
    runs = {}
    for name, extra in (("local", ["--executor", "local"]), ("ray", ["--workers", "2"])):
        runs[name] = tmp_path / name
        done = run_cli("run", "--config", str(config), "--out", str(runs[name]), "--target-kept", "9", *extra, timeout=900)
        assert done.returncode == 0, done.stderr
    assert final_bytes(runs["local"]) == final_bytes(runs["ray"])


def test_target_needs_every_stage(config, tmp_path):
    done = run_cli("run", "--config", str(config), "--out", str(tmp_path / "R"), "--target-kept", "5", "--stages", "prompts")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--target-kept" in done.stderr.strip().splitlines()[-1]
