"""Simulated GPUs shared by workers of GPU pools: processor sharing on the wall clock, as CUDA
time-slices processes, whatever the host's CPUs are doing (datagen.pipeline.simulate)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time

import pytest

from datagen.pipeline.simulate import SimulatedGpu, advance


@pytest.fixture
def ledgers(monkeypatch, tmp_path):
    """The folder of this test's GPU ledgers; the workers run on GPU 3."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("DATAGEN_SIM_SESSION", "test")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    return tmp_path / f"datagen-simgpu-{os.getuid()}-test"


def test_jobs_with_work_left_split_the_gpu_equally():
    assert advance({"a": 1.0, "b": 3.0}, 2.0) == {"a": 0.0, "b": 2.0}
    # a finishes after 2 s (half the GPU), then b has it alone.
    assert advance({"a": 1.0, "b": 3.0}, 3.0) == {"a": 0.0, "b": 1.0}
    assert advance({"a": 1.0, "b": 0.0}, 0.5) == {"a": 0.5, "b": 0.0}
    assert advance({"a": 1.0}, 5.0) == {"a": 0.0}
    assert advance({}, 1.0) == {}


def run_jobs(seconds: list[float], share: float = 0.5) -> list[float]:
    """Each job in its own thread (its own job id) on the same simulated GPU; their durations."""
    took = [0.0] * len(seconds)

    def one(i: int) -> None:
        start = time.monotonic()
        SimulatedGpu(share).run(seconds[i])
        took[i] = time.monotonic() - start

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(seconds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return took


def test_workers_sharing_a_gpu_take_turns_without_losing_its_time(ledgers):
    # Lower bounds are the model's; upper ones leave room for a busy host's late wake-ups.
    (alone,) = run_jobs([0.5])
    assert 0.5 <= alone < 0.9
    # Two busy workers: each gets half, and together they finish when the GPU has done both.
    assert all(0.9 <= t < 1.6 for t in run_jobs([0.5, 0.5]))  # (less by the threads' start skew)
    # A short job beside a long one finishes in about twice its time, not after the long one,
    # and the long one gets the whole GPU back when it is done.
    short, long_ = run_jobs([0.2, 1.2])
    assert 0.35 <= short < 0.9 and 1.3 <= long_ < 2.0
    assert json.loads((ledgers / "gpu-3.json").read_text())["jobs"] == {}  # finished jobs leave


def test_a_dead_workers_job_gives_its_share_back(ledgers):
    ledgers.mkdir()
    # A job left by a worker that was killed (no such process): it must not hold half the GPU.
    (ledgers / "gpu-3.json").write_text(json.dumps({"t": time.monotonic(), "jobs": {"999999999-dead": 100.0}}))
    (took,) = run_jobs([1.0])
    assert 1.0 <= took < 1.7


def test_a_whole_gpu_worker_just_waits(ledgers):
    (took,) = run_jobs([0.5], share=1.0)
    assert 0.5 <= took < 0.9


def test_work_done_between_start_and_wait_runs_on_the_gpus_clock(ledgers):
    # A simulated stage renders its stand-in output after starting the modelled GPU time: the
    # render is part of that time, not added to it.
    for share in (0.5, 1.0):
        gpu = SimulatedGpu(share)
        start = time.monotonic()
        job = gpu.start(0.6)
        time.sleep(0.3)  # the stand-in's own work
        gpu.wait(job)
        assert 0.6 <= time.monotonic() - start < 0.85
    shared = SimulatedGpu(0.5)
    shared.cancel(shared.start(5.0))  # a stand-in that raised: its job leaves the GPU at once
    assert json.loads((ledgers / "gpu-3.json").read_text())["jobs"] == {}
