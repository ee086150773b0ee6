"""kill -9 of a running `datagen run` at a random moment, then the same command again: the
final shards equal an uninterrupted run's, nothing lost or doubled."""

import os
import random
import signal
import subprocess
import sys
import time

import yaml

from helpers import SMALL, _env, final_bytes, run_cli


def _ray_processes_of(run_dir) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(run_dir) in line and "ps -eo" not in line]


import pytest


@pytest.mark.parametrize("fuse", ["true", "false"], ids=["fused", "per_stage_pools"])
def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path, fuse):
    cfg = yaml.safe_load(yaml.safe_dump(SMALL))
    cfg["run"].update(num_samples=24, width=192, height=192)
    cfg["ray"] = {"fuse_cpu_stages": fuse == "true"}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))

    reference = tmp_path / "REF"
    assert run_cli("run", "--config", str(config), "--out", str(reference), "--executor", "local").returncode == 0

    run = tmp_path / "RUN"
    seed = int(os.environ.get("DATAGEN_KILL_SEED", time.time_ns() % 10_000))
    delay = random.Random(seed).uniform(4.0, 14.0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "datagen.cli", "run", "--config", str(config), "--out", str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True,
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
        proc.wait()
    killed_early = proc.returncode == -signal.SIGKILL
    partial = final_bytes(run) if (run / "final").exists() else {}
    # What was committed before the kill is complete, never half a shard.
    assert all(final_bytes(reference)[name] == data for name, data in partial.items()), f"seed {seed}"

    again = run_cli("run", "--config", str(config), "--out", str(run))
    assert again.returncode == 0, f"seed {seed}: {again.stderr}"
    assert final_bytes(run) == final_bytes(reference), f"seed {seed}, killed after {delay:.1f}s: {killed_early}"
    assert not list(run.rglob(".*.tmp-*"))
    assert not _ray_processes_of(run)
