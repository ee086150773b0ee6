"""Simulated GPU stages: the orchestration of a GPU run, on any machine.

A simulated stage runs the stage's procedural backend (so later stages get real inputs), then
holds its worker, and so its GPU share, until the stage's cost model says the real model would
have finished, and rejects samples and drops subjects at the cost model's rates. The draws
are seeded per (sample, stage, subject), so every stage order and worker count sees the same
fates, and with `filters.apply: last` they are marked for the filter stage like any rule.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

from datagen.config import RunConfig
from datagen.store.inflight import Rejected, Sample
from datagen.seeds import stage_rng
from datagen.stages.base import Stage


# Backends that load no model, in order of preference: what a simulated stage runs instead.
MODEL_FREE_BACKENDS = ("procedural", "histogram")


def procedural_config(cfg: RunConfig, stage: str, backends: tuple[str, ...]) -> RunConfig:
    """`cfg` with the stage's backend swapped for a model-free one, where it has one; so are
    the backends of stages it borrows a model from (repose's repair check: idcheck's)."""
    from datagen.stages import STAGES

    swaps = {stage: backends, **{other: STAGES[other].backends for other in STAGES[stage].reads_stages(cfg)}}
    free = {name: [b for b in MODEL_FREE_BACKENDS if b in names] for name, names in swaps.items()}
    if not any(free.values()):
        return cfg
    swapped = cfg.model_copy(deep=True)
    for name, names in free.items():
        if names:
            setattr(swapped.stages, name, cfg.stages.stage(name).with_backend(names[0]))
    return swapped


class SimulatedStage(Stage):
    def __init__(self, inner: Stage, cfg: RunConfig) -> None:
        self.name = inner.name  # type: ignore[misc] - an instance stands in for its inner stage
        super().__init__(cfg)
        self.inner = inner
        self.cost = self.cfg.cost
        self.gpu = SimulatedGpu(self.cfg.exec.gpus)

    def setup(self) -> None:
        self.inner.setup()

    def bind_run(self, run_dir: Path) -> None:
        super().bind_run(run_dir)
        self.inner.bind_run(run_dir)

    def model_name(self) -> str:
        return f"simulated:{super().model_name()}"

    def shard_figures(self, samples: list[Sample]) -> dict:
        return self.inner.shard_figures(samples)

    def busy_seconds(self, samples: list[Sample]) -> float:
        subjects = sum(len(s.subjects) for s in samples)
        scale = self.run_cfg.simulate.time_scale
        return self.cost.seconds(len(samples), subjects) * scale

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        work = self.busy_seconds(samples)
        out = [r if isinstance(r, Rejected) else self._draw(r) for r in self.inner.process_batch(samples)]
        self.gpu.run(work)
        return out

    def _draw(self, s: Sample) -> Sample | Rejected:
        stream = f"simulate:{self.name}"
        if stage_rng(s.seed, stream).random() < self.cost.sample_reject:
            return self.verdict(s, "sim_reject")
        lost = {
            i: "sim_drop"
            for i, subj in enumerate(s.subjects)
            if stage_rng(s.seed, stream, subj.get("sid", i)).random() < self.cost.subject_drop
        }
        if not lost:
            return s
        self.drop_subjects(s, lost)
        return self.check_subject_count(s)


class SimulatedGpu:
    """The GPU time a worker's model would take, spent as a real GPU would spend it.

    A worker with a whole GPU just waits. Workers sharing a GPU (fractional `exec.gpus`) take
    turns in short slices under a lock per GPU, as CUDA time-slices processes: a busy worker
    gets all of the GPU while the others on it have nothing to do, and a fair turn otherwise.
    The GPU is the one Ray assigned (CUDA_VISIBLE_DEVICES); the lock files are per machine.
    """

    SLICE_S = 0.02

    def __init__(self, share: float) -> None:
        self.share = share
        self._lock_path: Path | None = None

    def _lock(self) -> Path | None:
        if self.share >= 1 or self._lock_path is not None:
            return self._lock_path
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0] or "none"
        session = os.environ.get("DATAGEN_SIM_SESSION", "default")
        folder = Path(tempfile.gettempdir()) / f"datagen-simgpu-{os.getuid()}-{session}"
        folder.mkdir(parents=True, exist_ok=True)
        self._lock_path = folder / f"gpu-{gpu}.lock"
        return self._lock_path

    def run(self, seconds: float) -> None:
        lock = self._lock()
        if lock is None:
            time.sleep(seconds)
            return
        left = seconds
        with open(lock, "a") as handle:
            while left > 0:
                step = min(self.SLICE_S, left)
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    time.sleep(step)
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                left -= step
                time.sleep(0)  # let a waiting worker take the next turn
