"""A worker that dies mid-run (kill -9 of one Ray actor) is restarted by Ray and its shard
retried: the run finishes with the same bytes as an undisturbed one."""

import os
import signal
import subprocess
import sys
import time

import yaml

from helpers import SMALL, _env, final_bytes, run_cli


def test_a_killed_worker_is_retried(tmp_path):
    cfg = yaml.safe_load(yaml.safe_dump(SMALL))
    cfg["run"].update(num_samples=32, width=192, height=192)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    reference = tmp_path / "REF"
    assert run_cli("run", "--config", str(config), "--out", str(reference), "--executor", "local").returncode == 0

    run = tmp_path / "RUN"
    proc = subprocess.Popen([sys.executable, "-m", "datagen.cli", "run", "--config", str(config), "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    # Worker logs are named <stages>-<host>-<pid>.log: kill one worker process by its pid, once
    # it has committed a shard. Generous deadline: Ray starts slowly beside other test workers.
    deadline = time.time() + 300
    logs: list = []
    while time.time() < deadline and proc.poll() is None:
        logs = sorted((run / "logs").glob("*.log"))
        if logs and list((run / "stages" / "prompts").glob("*.done.json")):
            break
        time.sleep(0.2)
    assert logs, f"no worker started within 300 s (run exited {proc.poll()})"
    victim = int(logs[0].stem.rsplit("-", 1)[1])
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert final_bytes(run) == final_bytes(reference)
