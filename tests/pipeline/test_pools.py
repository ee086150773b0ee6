import pytest

from datagen.config import load_config, resolve_config_path
from datagen.errors import UserError
from datagen.pipeline.costs import expected_flow
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


def test_cpu_pools_get_no_more_workers_than_the_cluster_has_cpus(demo_cfg):
    cfg = demo_cfg.model_copy(deep=True)
    cfg.stages.boxes.exec.concurrency, cfg.stages.filter.exec.concurrency = 8, 4
    for s in ("prompts", "t2i", "segment", "depth", "repose", "idcheck"):
        cfg.stages.stage(s).exec.gpus = 0.5
    by = {p.name: p.workers for p in plan_pools(cfg, ORDER, None, cluster_cpus=2, cluster_gpus=16).pools}
    assert (by["boxes"], by["filter"]) == (2, 2)  # not 8 and 4 processes sharing 2 cores
    by = {p.name: p.workers for p in plan_pools(cfg, ORDER, None, cluster_cpus=64, cluster_gpus=16).pools}
    assert (by["boxes"], by["filter"]) == (8, 4)


@pytest.mark.parametrize("order", ["cheap_first", "paper"])
@pytest.mark.parametrize("cpus", [2, 3, 7, 64])
def test_cpu_reservations_never_exceed_the_cluster(order, cpus):
    # The orchestration benchmark's plan (16 fake GPUs on 2 cores): reservations rounded to the
    # nearest 1e-4 asked 2.0008 CPUs, a worker never started, and Ray ran gc.collect() in every
    # worker every 10 s for the whole run.
    sets = [] if order == "cheap_first" else ["stages.order=[prompts,t2i,segment,depth,repose,idcheck,boxes,filter]"]
    cfg = load_config(resolve_config_path("sigma_set27k"), sets)
    needs = {f.stage: f.seconds for f in expected_flow(cfg, 1200)}
    for workers in (None, 20, 47):
        plan = plan_pools(cfg, cfg.stages.order, workers, cluster_cpus=cpus, cluster_gpus=16, needs=needs)
        assert sum(p.workers * p.cpus for p in plan.pools) <= cpus + 1e-9
        assert sum(p.workers * p.gpus for p in plan.pools) <= 16 + 1e-9
