"""The same stages in one process, without Ray: for debugging, tests and the e2e benchmark."""

from __future__ import annotations

from collections.abc import Callable

from datagen.config import RunConfig
from datagen.logs import setup_worker_logging
from datagen.store.paths import RunPaths
from datagen.pipeline.resume import ShardJob
from datagen.pipeline.shard_task import Outcome, ShardTask, deferred_jobs, run_job_stages, settled


def run_local(
    cfg: RunConfig, paths: RunPaths, jobs: list[ShardJob], on_outcome: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    setup_worker_logging(paths.logs_dir, "local")
    stages = {stage for job in jobs for stage in job.run}
    tasks = {stage: ShardTask(stage, cfg, str(paths.root)) for stage in cfg.stages.order if stage in stages}

    def run(batch: list[ShardJob]) -> list[Outcome]:
        out: list[Outcome] = []
        for job in batch:
            for o in run_job_stages(tasks, job):
                out.append(o)
                if on_outcome and o.status != "deferred":
                    on_outcome(o)
        return out

    # Shards go in order, so a final stage finds lower shards' prompts done and is not
    # deferred; the second pass is there for any order.
    first = run(jobs)
    return settled(first, run(deferred_jobs(jobs, first, cfg.stages.order[-1])))
