"""Simulated GPU stages: the orchestration of a GPU run, on any machine.

A simulated stage starts the GPU time the stage's cost model gives, runs the stage's
procedural backend meanwhile (so later stages get real inputs), holds its worker until that
time is spent on its GPU share, and rejects samples and drops subjects at the cost model's
rates. The draws are seeded per (sample, stage, subject), so every stage order and worker
count sees the same fates, and with `filters.apply: last` they are marked for the filter
stage like any rule.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import tempfile
import time
import uuid
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
        if getattr(self.inner.cfg, "backend", None) == "procedural":
            # A simulated stage stands in for a model that loads in setup, but the procedural
            # world imports Open3D on first use (so reading a config stays fast): pay that
            # here (~0.7 CPU-s a worker), not in each worker's first shard, where 16 repose
            # workers starting at once took the 2-core benchmark's CPUs mid-run.
            importlib.import_module("open3d")

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
        # The stand-in (rendering what the model would generate) runs on the GPU's clock: the
        # modelled time starts first, so it includes the stand-in's CPU time rather than
        # following it, as the model's own time would.
        job = self.gpu.start(self.busy_seconds(samples))
        try:
            out = [r if isinstance(r, Rejected) else self._draw(r) for r in self.inner.process_batch(samples)]
        except BaseException:
            self.gpu.cancel(job)
            raise
        self.gpu.wait(job)
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

    A worker with a whole GPU just waits. Workers sharing a GPU (fractional `exec.gpus`) share
    its time as CUDA time-slices processes (processor sharing): each job with work left gets an
    equal part, so a busy worker gets all of the GPU while the others on it have nothing to do,
    and a short job beside a long one finishes in about twice its own time, not after it.

    The GPU's clock is the wall clock, kept in a ledger per GPU (the one Ray assigned,
    CUDA_VISIBLE_DEVICES; the files are per machine): each job's GPU-seconds left, advanced by
    the time elapsed whenever a worker looks. A worker sleeps until the next job on its GPU
    would finish, then looks again. So a worker the host is slow to wake (2 busy cores and 40
    workers) finishes late itself but costs its co-tenants no GPU time. Taking turns in 20 ms
    slices under a lock did: every late wake-up held the GPU idle, and on the loaded 2-core
    benchmark host a slice held it ~30 ms (a third of the GPUs lost; bench/orchestration.py).
    """

    def __init__(self, share: float) -> None:
        self.share = share
        self._ledger_path: Path | None = None

    def _ledger(self) -> Path:
        if self._ledger_path is None:
            gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0] or "none"
            session = os.environ.get("DATAGEN_SIM_SESSION", "default")
            folder = Path(tempfile.gettempdir()) / f"datagen-simgpu-{os.getuid()}-{session}"
            folder.mkdir(parents=True, exist_ok=True)
            self._ledger_path = folder / f"gpu-{gpu}.json"
        return self._ledger_path

    def run(self, seconds: float) -> None:
        self.wait(self.start(seconds))

    def start(self, seconds: float) -> str | float:
        """Put `seconds` of work on the GPU now; the worker is free (for its CPU work) until
        `wait`. A job id, or for a whole GPU the time it is done."""
        if self.share >= 1 or seconds <= 0:
            return time.monotonic() + max(seconds, 0.0)
        job = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._update(job, add=seconds)
        return job

    def wait(self, job: str | float) -> None:
        """Until `job` is done."""
        if isinstance(job, float):
            time.sleep(max(0.0, job - time.monotonic()))
            return
        try:
            wait = self._update(job)
            while wait > 0:
                time.sleep(wait)
                wait = self._update(job)
        finally:
            self._update(job, remove=True)

    def cancel(self, job: str | float) -> None:
        if isinstance(job, str):
            self._update(job, remove=True)

    def _update(self, job: str, add: float = 0.0, remove: bool = False) -> float:
        """Under the GPU's lock: advance its jobs to now, add or remove `job`; how long until
        the next job on the GPU finishes (0 once `job` has)."""
        with open(os.open(self._ledger(), os.O_RDWR | os.O_CREAT, 0o644), "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            try:
                state = json.loads(handle.read() or "{}")
            except ValueError:
                state = {}
            now = time.monotonic()  # one clock for every process on the machine (Linux)
            jobs = advance(_live(state.get("jobs", {})), now - state.get("t", now))
            if add:
                jobs[job] = add
            left = jobs.pop(job, 0.0) if remove else jobs.get(job, 0.0)
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"t": now, "jobs": jobs}))
            handle.flush()
        if remove or left <= 1e-6:
            return 0.0
        active = [r for r in jobs.values() if r > 0]  # `job` among them
        return min(active) * len(active)


def advance(jobs: dict[str, float], elapsed: float) -> dict[str, float]:
    """GPU-seconds left per job after `elapsed` seconds of processor sharing: the jobs with work
    left split the time equally; a job that finishes gives its part to the others."""
    jobs = dict(jobs)
    while elapsed > 0:
        active = [j for j, left in jobs.items() if left > 0]
        if not active:
            break
        first = min(jobs[j] for j in active)  # the next job to finish
        if first * len(active) >= elapsed:
            for j in active:
                jobs[j] = max(0.0, jobs[j] - elapsed / len(active))
            break
        for j in active:
            jobs[j] -= first  # exactly 0 for the first to finish: the loop ends
        elapsed -= first * len(active)
    return jobs


def _live(jobs: dict[str, float]) -> dict[str, float]:
    """Jobs whose worker is still alive: a killed worker's job must not hold its share forever."""
    out = {}
    for job, left in jobs.items():
        try:
            os.kill(int(job.split("-")[0]), 0)
        except ProcessLookupError:
            continue
        except (PermissionError, ValueError):
            pass  # alive but not ours to signal; a malformed id is kept as it is
        out[job] = left
    return out
