import pytest

from datagen.errors import UserError
from datagen.pipeline.pools import group_stages, plan_pools

ORDER = ["prompts", "t2i", "segment", "depth", "boxes", "repose", "idcheck", "filter"]


def test_cpu_stages_fuse_and_gpu_stages_stand_alone(demo_cfg):
    assert group_stages(demo_cfg, ORDER) == [tuple(ORDER)]
    cfg = demo_cfg.model_copy(deep=True)
    for s in ("t2i", "repose"):
        cfg.stages.stage(s).exec.gpus = 1
    assert group_stages(cfg, ORDER) == [("prompts",), ("t2i",), ("segment", "depth", "boxes"), ("repose",), ("idcheck", "filter")]
    cfg.ray.fuse_cpu_stages = False
    assert group_stages(cfg, ORDER) == [(s,) for s in ORDER]


def test_fused_cpu_pool_takes_a_worker_per_cpu(demo_cfg):
    plan = plan_pools(demo_cfg, ORDER, None, cluster_cpus=8, cluster_gpus=0)
    assert [(p.stages, p.workers) for p in plan.pools] == [(tuple(ORDER), 8)] and plan.notice is None


def test_per_stage_pools_follow_config_within_the_cap(demo_cfg):
    cfg = demo_cfg.model_copy(deep=True)
    cfg.ray.fuse_cpu_stages = False
    cfg.stages.t2i.exec.concurrency = 4
    plan = plan_pools(cfg, ORDER, None, cluster_cpus=16, cluster_gpus=0)
    assert {p.name: p.workers for p in plan.pools}["t2i"] == 4
    # 64 asked of a 2-core machine: capped with a notice, one worker per stage at least.
    plan = plan_pools(cfg, ORDER, 64, cluster_cpus=2, cluster_gpus=0)
    assert plan.notice.startswith("--workers 64 capped to 8")
    assert sum(p.workers for p in plan.pools) == 8
    assert sum(p.workers * p.cpus for p in plan.pools) <= 2 + 1e-6  # every pool can start


def test_gpu_pools_split_the_budget_by_config(demo_cfg):
    cfg = demo_cfg.model_copy(deep=True)
    cfg.stages.t2i.exec.gpus = cfg.stages.repose.exec.gpus = 1
    cfg.stages.t2i.exec.concurrency, cfg.stages.repose.exec.concurrency = 6, 10
    plan = plan_pools(cfg, ORDER, 12, cluster_cpus=32, cluster_gpus=16)
    by = {p.name: p.workers for p in plan.pools}
    assert sum(by.values()) == 12 and by["repose"] > by["t2i"] >= 1


def test_impossible_requests_are_user_errors(demo_cfg):
    cfg = demo_cfg.model_copy(deep=True)
    cfg.stages.t2i.exec.gpus = 1
    with pytest.raises(UserError, match="stages.t2i.exec.gpus"):
        plan_pools(cfg, ORDER, None, cluster_cpus=2, cluster_gpus=0)
    cfg.ray.fuse_cpu_stages = False
    cfg.stages.t2i.exec.gpus = 0
    with pytest.raises(UserError, match="at least one worker per pool"):
        plan_pools(cfg, ORDER, 3, cluster_cpus=16, cluster_gpus=0)
