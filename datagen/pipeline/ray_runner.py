"""The Ray runner: the only module that imports Ray.

Ray Data streams one row per shard through one `map` per pool; a pool is a fixed set of
long-lived actors (ActorPoolStrategy) for one stage (or, fused, a run of CPU-only stages)
that load their backend once, read their input shard from the run directory, commit their
output shard there, and pass a small descriptor on. Shards flow through the stages as they finish, so one shard can be in repose while the
next is in segment; Ray Data bounds what is in flight. Data never crosses the object store:
it lives in the run directory, which on a cluster is storage every node sees.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datagen.config import RunConfig
from datagen.pipeline.costs import expected_flow
from datagen.errors import UserError
from datagen.store.paths import RunPaths
from datagen.pipeline.resume import ShardJob
from datagen.pipeline.pools import Pool, PoolPlan, plan_pools
from datagen.pipeline.shard_task import Outcome, deferred_jobs, run_job_stages, settled


class _PoolWorker:
    """A Ray Data actor: a pool's stage(s), each backend loaded once, run over shard rows.

    Each pool gets a subclass carrying its settings as class attributes (`worker_class`), so
    the Ray dashboard names the actor after its stages.
    """

    stages: tuple[str, ...]
    cfg_json: str
    run_dir: str

    def __init__(self) -> None:
        from datagen.config import RunConfig
        from datagen.logs import setup_worker_logging
        from datagen.pipeline.shard_task import ShardTask

        setup_worker_logging(Path(self.run_dir) / "logs", "+".join(self.stages))
        cfg = RunConfig.model_validate_json(self.cfg_json)
        self.tasks = {stage: ShardTask(stage, cfg, self.run_dir) for stage in self.stages}
        for task in self.tasks.values():
            task.setup()

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        job = ShardJob.from_json(row["job"])
        outcomes = json.loads(row["outcomes"])
        if all(o["status"] == "done" for o in outcomes):  # else an earlier pool failed this shard
            outcomes += [o.to_dict() for o in run_job_stages(self.tasks, job)]
        return {"job": row["job"], "outcomes": json.dumps(outcomes)}


def worker_class(stages: tuple[str, ...], cfg_json: str, run_dir: str) -> type:
    name = "".join(s.capitalize() for s in stages) + "Worker"
    return type(name, (_PoolWorker,), {"stages": stages, "cfg_json": cfg_json, "run_dir": run_dir})


def _cluster_token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").is_file()


def unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why no Ray cluster can answer at `address` (HOST:PORT or ray://HOST:PORT), or None.

    Ray's own join retries the GCS for minutes, printing a warning each time; a TCP connect
    answers in milliseconds when nothing listens, and within `timeout_s` when nothing routes.
    """
    if address == "auto":  # Ray finds the local cluster itself, and fails fast when there is none
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "expected HOST:PORT (or ray://HOST:PORT, or auto)"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return None
    except socket.gaierror as e:
        return f"unknown host {host!r} ({e.strerror})"
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as e:
        return f"nothing listens there ({e.strerror or e.__class__.__name__})"


def check_address(address: str) -> None:
    """One line, in seconds, when no cluster answers at `address`; called before a run writes anything."""
    if problem := unreachable(address):
        raise UserError(f"--address {address}: no Ray cluster to join: {problem}")


def init_ray(address: str | None, num_cpus: int | None = None, num_gpus: int | None = None, log_to_driver: bool = False) -> None:
    if address:
        check_address(address)
    if address and "RAY_AUTH_MODE" not in os.environ and _cluster_token_available():
        # Joining a cluster: authenticate with its token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH
        # or ~/.ray/auth_token), as Ray's token authentication expects. A driver does not
        # send it unless told to, and Ray reads the mode when it is imported: set it first.
        # datagen never turns authentication off.
        os.environ["RAY_AUTH_MODE"] = "token"
    import ray

    if ray.is_initialized():
        return
    # Locally Ray's notices are noise; on a cluster its warnings (authentication, nodes) matter.
    level = logging.WARNING if address else logging.ERROR
    common: dict[str, Any] = dict(include_dashboard=False, logging_level=level, log_to_driver=log_to_driver)
    if address:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, ray.exceptions.AuthenticationError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            raise UserError(
                f"--address {address}: cannot join the Ray cluster ({reason}); is it running, and is "
                "its token in RAY_AUTH_TOKEN or ~/.ray/auth_token?"
            ) from None
    else:
        # Declared GPUs beyond the real ones are for simulated runs (`simulate.enabled`).
        # address="local": always a fresh local Ray, never a `ray start` cluster that happens
        # to run on this machine (plain ray.init() would join it).
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus, **common)


def cluster_resources() -> tuple[float, float]:
    import ray

    res = ray.cluster_resources()
    return float(res.get("CPU", 0)), float(res.get("GPU", 0))


def plan_ray_pools(cfg: RunConfig, stages: list[str], workers: int | None) -> PoolPlan:
    cpus, gpus = cluster_resources()
    needs = {flow.stage: flow.seconds for flow in expected_flow(cfg, cfg.run.num_samples)}
    return plan_pools(cfg, stages, workers, cpus, gpus, needs)


def quiet_data_context(address: str | None, no_progress_timeout_s: float) -> None:
    """Ray Data set up for datagen's maps: unordered, no progress bars (datagen reports its own
    progress), and a stall timeout that outlasts model loads (-1: none)."""
    from ray.data import DataContext

    # Ray Data configures its loggers on import; quieten its notices for local runs after that.
    logging.getLogger("ray.data").setLevel(logging.WARNING if address else logging.ERROR)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = False
    # A row is a shard's descriptor and the shard lives in the run directory, so there is no
    # data to be near: locality only costs the driver an object-location lookup per task
    # (a quarter of Ray Data's CPU per task on 2 cores, where it competes with the workers).
    ctx.execution_options.actor_locality_enabled = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    if hasattr(ctx, "execution_no_progress_timeout_s"):
        # Model loads can take many minutes: Ray Data's default stall timeout would kill them.
        ctx.execution_no_progress_timeout_s = no_progress_timeout_s


def run_on_ray(
    cfg: RunConfig, paths: RunPaths, jobs: list[ShardJob], pool_plan: PoolPlan, on_outcome: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    quiet_data_context(cfg.ray.address, cfg.ray.no_progress_timeout_s)
    todo = [job for job in jobs if job.run]
    first = _stream(cfg, paths, todo, pool_plan.pools, on_outcome)
    # Final stages deferred by prompt dedup (datagen.pipeline.dedup) run again now that every
    # prompts shard of the pass is committed or failed, on a pool like their own.
    final = cfg.stages.order[-1]
    again = deferred_jobs(todo, first, final)
    if not again:
        return first
    own = next(p for p in pool_plan.pools if final in p.stages)
    pool = Pool((final,), min(own.workers, len(again)), own.cpus, own.gpus)
    return settled(first, _stream(cfg, paths, again, [pool], on_outcome))


def _stream(
    cfg: RunConfig, paths: RunPaths, jobs: list[ShardJob], pools: list[Pool], on_outcome: Callable[[Outcome], None] | None
) -> list[Outcome]:
    """One pass of `jobs` through `pools`, one Ray Data map per pool."""
    import ray
    from ray.data import ActorPoolStrategy

    items = [{"job": job.to_json(), "outcomes": "[]"} for job in jobs]
    if not items:
        return []
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    cfg_json = cfg.model_dump_json()
    for pool in pools:
        ds = ds.map(
            worker_class(pool.stages, cfg_json, str(paths.root)),
            compute=ActorPoolStrategy(size=pool.workers),
            num_cpus=pool.cpus,
            num_gpus=pool.gpus or None,
        )
    outcomes: list[Outcome] = []
    try:
        for row in ds.iter_rows():
            for o in json.loads(row["outcomes"]):
                outcome = Outcome(**o)
                outcomes.append(outcome)
                if on_outcome and outcome.status != "deferred":
                    on_outcome(outcome)
    except Exception as e:
        # A worker that cannot start (a model that does not load) is a user error: say it in
        # one line, not as Ray's chain of tracebacks.
        message = user_error_message(e)
        if message is None:
            raise
        raise UserError(message) from None
    return outcomes


_USER_ERROR_RE = re.compile(r"datagen\.errors\.(?:UserError|BackendUnavailable): (.+)")


def user_error_message(e: BaseException) -> str | None:
    """The message of a datagen UserError raised inside a Ray worker, if that is what failed."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [e]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        cause = getattr(err, "cause", None)  # RayTaskError keeps the worker's exception here
        if isinstance(cause, UserError):
            return str(cause).splitlines()[0]
        found = _USER_ERROR_RE.search(str(err))
        if found:
            return found.group(1).strip()
        stack.extend([err.__cause__, err.__context__, cause if isinstance(cause, BaseException) else None])
    return None


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
