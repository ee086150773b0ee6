"""The same stages in one process, without Ray: for debugging, tests and the e2e benchmark."""

from __future__ import annotations

from collections.abc import Callable

from datagen.config import RunConfig
from datagen.logs import setup_worker_logging
from datagen.paths import RunPaths
from datagen.plan import ShardJob
from datagen.shard_task import Outcome, ShardStageRunner


def run_local(
    cfg: RunConfig, paths: RunPaths, jobs: list[ShardJob], on_outcome: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    setup_worker_logging(paths.logs_dir, "local")
    runners: dict[str, ShardStageRunner] = {}
    outcomes: list[Outcome] = []
    for job in jobs:
        handoff = None
        for stage in job.run:
            runner = runners.get(stage)
            if runner is None:
                runner = runners[stage] = ShardStageRunner(stage, cfg, str(paths.root))
            outcome = runner.run(job.shard, job.fingerprints, handoff)
            handoff = outcome.handoff()
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
            if outcome.status != "done":
                break  # later stages of this shard have no input
    return outcomes
