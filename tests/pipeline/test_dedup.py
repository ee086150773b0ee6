"""Prompt dedup keeps the lowest sample index, whatever order shards reach the prompts stage
in: the final shards are byte-identical to a run that takes the shards in order.

A world of three boxes in one colour set on one background gives every scene the same words
in one of six orders, so prompts repeat within and across the three shards.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from datagen.config import RunConfig, build_config
from datagen.pipeline.dedup import ranges_below, shard_ranges
from datagen.pipeline.local_runner import run_local
from datagen.pipeline.resume import ShardJob, make_plan
from datagen.pipeline.shard_task import ShardTask, deferred_jobs, run_job_stages
from datagen.store.paths import RunPaths
from helpers import SMALL, final_bytes, run_cli

DUPES = copy.deepcopy(SMALL)
DUPES["world"] = {"shapes": ["box"], "colours": ["red", "green", "blue"], "textures": ["plain"], "backgrounds": ["beach"]}
DUPES["stages"]["prompts"] = {"num_subjects": [3, 3]}


@pytest.fixture(scope="module")
def dupes_cfg() -> RunConfig:
    return build_config(copy.deepcopy(DUPES), "dupes")


@pytest.fixture(scope="module")
def reference(dupes_cfg, tmp_path_factory) -> Path:
    """The shards one after another, as the local runner takes them."""
    root = tmp_path_factory.mktemp("in-order")
    paths = RunPaths(root)
    outcomes = run_local(dupes_cfg, paths, make_plan(dupes_cfg, paths, list(dupes_cfg.stages.order)))
    assert all(o.status == "done" for o in outcomes)
    return root


def _jobs(cfg: RunConfig, root: Path) -> dict[int, ShardJob]:
    return {j.shard: j for j in make_plan(cfg, RunPaths(root), list(cfg.stages.order))}


def _tasks(cfg: RunConfig, root: Path) -> dict[str, ShardTask]:
    return {stage: ShardTask(stage, cfg, str(root)) for stage in cfg.stages.order}


def _rejected(root: Path, stage: str) -> int:
    stats = [json.loads(p.read_text()) for p in (root / "final").glob("*.stats.json")]
    return sum(s["rejected"][stage].get("duplicate_prompt", 0) for s in stats)


def test_a_final_stage_awaits_the_lower_shards_this_run_prompts():
    ranges = shard_ranges([0, 1, 2, 5, 6, 9])
    assert ranges == [[0, 3], [5, 7], [9, 10]]
    assert ranges_below(ranges, 0) == [] and ranges_below(ranges, 6) == [[0, 3], [5, 6]]
    assert ranges_below(ranges, 8) == [[0, 3], [5, 7]] and ranges == [[0, 3], [5, 7], [9, 10]]


def test_the_reference_has_duplicates_across_shards(reference):
    assert _rejected(reference, "prompts") >= 3 and len(final_bytes(reference)) == 3


def test_shards_claiming_in_reverse_give_the_same_final_shards(dupes_cfg, reference, tmp_path):
    # Every shard's prompts first, highest shard first: first-come would keep shard 2's copies.
    jobs, tasks = _jobs(dupes_cfg, tmp_path), _tasks(dupes_cfg, tmp_path)
    order = dupes_cfg.stages.order
    for shard in (2, 1, 0):
        run_job_stages(tasks, ShardJob(shard, jobs[shard].fingerprints, run=order[:1]))
    for shard in (2, 1, 0):
        run_job_stages(tasks, ShardJob(shard, jobs[shard].fingerprints, run=order[1:], awaits=jobs[shard].awaits))
    assert final_bytes(tmp_path) == final_bytes(reference)
    # The lower shards took prompts over, and the final stage dropped the displaced samples.
    assert _rejected(tmp_path, order[-1]) > 0


def test_a_final_stage_ahead_of_lower_prompts_is_deferred(dupes_cfg, reference, tmp_path):
    jobs, tasks = _jobs(dupes_cfg, tmp_path), _tasks(dupes_cfg, tmp_path)
    assert jobs[2].awaits == [[0, 2]]
    # Shard 2 streams through every stage before shard 0 or 1 starts; its final stage cannot
    # settle yet, and leaves its worker free instead of waiting.
    outcomes = run_job_stages(tasks, jobs[2])
    assert [o.status for o in outcomes] == ["done"] * (len(outcomes) - 1) + ["deferred"]
    assert not RunPaths(tmp_path).final_tar(2).exists()
    for shard in (0, 1):
        outcomes += run_job_stages(tasks, jobs[shard])
    (again,) = deferred_jobs(list(jobs.values()), outcomes, dupes_cfg.stages.order[-1])
    assert again.shard == 2 and again.run == [dupes_cfg.stages.order[-1]]
    assert run_job_stages(tasks, again)[0].status == "done"
    assert final_bytes(tmp_path) == final_bytes(reference)


def test_four_ray_workers_give_the_same_final_shards(reference, tmp_path):
    # One fused pool of 4 workers, each running prompts to filter on a shard: shards claim in
    # whatever order they get there, and Ray Data may queue a lower shard behind a higher one.
    config = tmp_path / "dupes.yaml"
    config.write_text(yaml.safe_dump(DUPES))
    run = tmp_path / "RUN"
    done = run_cli("run", "--config", str(config), "--out", str(run), "--workers", "4", "--set", "ray.num_cpus=4")
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "logs" / "pools.json").read_text())["pools"][0]["workers"] == 4
    assert final_bytes(run) == final_bytes(reference)


def test_a_prompts_shard_redone_later_settles_the_final_shards_above_it_again(dupes_cfg, reference, tmp_path):
    # Run 1: shard 0's prompts failed (it claimed nothing), so shards 1 and 2 settled without it
    # and kept samples whose prompts shard 0 holds at lower indices.
    jobs, tasks = _jobs(dupes_cfg, tmp_path), _tasks(dupes_cfg, tmp_path)
    for shard in (1, 2):
        run_job_stages(tasks, ShardJob(shard, jobs[shard].fingerprints, run=list(dupes_cfg.stages.order)))
    first = final_bytes(tmp_path)
    assert first.keys() == {k for k in final_bytes(reference) if "000000" not in k} and first != {
        k: v for k, v in final_bytes(reference).items() if k in first}, "shard 0 took prompts over in the reference"
    # Run 2 redoes shard 0 and settles the final stage of 1 and 2 again, after shard 0's claims.
    again = make_plan(dupes_cfg, RunPaths(tmp_path), list(dupes_cfg.stages.order))
    final = dupes_cfg.stages.order[-1]
    assert [j.run for j in again] == [list(dupes_cfg.stages.order), [final], [final]]
    assert [j.awaits for j in again] == [[], [[0, 1]], [[0, 1]]]
    assert all(o.status == "done" for o in run_local(dupes_cfg, RunPaths(tmp_path), again))
    assert final_bytes(tmp_path) == final_bytes(reference)
    # Nothing left: a third plan runs nothing.
    assert not any(j.run for j in make_plan(dupes_cfg, RunPaths(tmp_path), list(dupes_cfg.stages.order)))
