"""The same stages in one process, without Ray: for debugging, tests and the e2e benchmark."""

from __future__ import annotations

from collections.abc import Callable

from datagen.config import RunConfig
from datagen.logs import setup_worker_logging
from datagen.store.paths import RunPaths
from datagen.pipeline.resume import ShardJob
from datagen.pipeline.shard_task import Outcome, ShardTask, run_job_stages


def run_local(
    cfg: RunConfig, paths: RunPaths, jobs: list[ShardJob], on_outcome: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    setup_worker_logging(paths.logs_dir, "local")
    stages = {stage for job in jobs for stage in job.run}
    tasks = {stage: ShardTask(stage, cfg, str(paths.root)) for stage in cfg.stages.order if stage in stages}
    outcomes: list[Outcome] = []
    for job in jobs:
        for outcome in run_job_stages(tasks, job):
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
    return outcomes
