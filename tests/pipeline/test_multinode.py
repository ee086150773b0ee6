"""A real two-node Ray cluster with token authentication: `ray start --head` and a second
`ray start --address` node on this machine, each with its own CPUs, and `datagen run --address`
with the run directory on storage both see (here: the same file system). The second node is
killed (SIGKILL of every process it runs: raylet, agents, datagen's workers) in the middle of
the run: the run finishes, and its final shards are byte-identical to a one-node run, every
sample kept or rejected exactly once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from helpers import SMALL, _env, final_bytes, run_cli
from ray_nodes import alive_in_session, cmdline, free_ports, kill_session, ray_bin, ray_start

# 24 shards of 2 samples: each takes a fraction of a second, so the run has work left when the
# first final shard lands. min_subjects 5 makes some samples be rejected (in segment and boxes).
NUM_SAMPLES, SHARD_SIZE = 48, 2
NUM_SHARDS = NUM_SAMPLES // SHARD_SIZE
HEAD_CPUS, NODE2_CPUS = 1, 2


@pytest.fixture
def two_nodes(tmp_path):
    """Head (1 CPU) and a second node (2 CPUs) on this machine, one token in their own HOME.

    Cleaned up by killing exactly the two nodes' processes: `ray stop` would kill every Ray
    process on the machine, other tests' included."""
    env = _env()
    env["HOME"] = str(tmp_path / "home")
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(var, None)
    subprocess.run([ray_bin(), "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    # Ray's unix socket paths live under the temp dir and must stay short: not under tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="dgray", dir="/tmp")
    common = [f"--temp-dir={temp_dir}", f"--object-store-memory={200 * 1024 * 1024}"]
    port, dash, agent1, agent2, node_manager, object_manager = free_ports(6)
    sessions: list[int] = []
    try:
        # With a token in ~/.ray and RAY_AUTH_MODE unset, the head turns token authentication on.
        sid, head_out = ray_start(["--head", f"--port={port}", f"--num-cpus={HEAD_CPUS}", f"--dashboard-port={dash}",
                                    "--include-dashboard=false", f"--dashboard-agent-listen-port={agent1}", *common], env)
        sessions.append(sid)
        # A joining node sends the token only when told to (RAY_AUTH_MODE=token).
        node_env = dict(env, RAY_AUTH_MODE="token")
        sid, _ = ray_start([f"--address=127.0.0.1:{port}", f"--num-cpus={NODE2_CPUS}",
                             f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
                             f"--dashboard-agent-listen-port={agent2}", *common], node_env)
        sessions.append(sid)
        yield {"address": f"127.0.0.1:{port}", "env": env, "head_output": head_out, "node2_session": sid,
               "node2_port": node_manager}
    finally:
        for sid in reversed(sessions):
            kill_session(sid)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _expected_keys() -> set[str]:
    from datagen.schema import sample_key

    return {sample_key(i // SHARD_SIZE, i) for i in range(NUM_SAMPLES)}


def _kept_and_rejected(run: Path) -> tuple[list[str], list[str]]:
    kept, rejected = [], []
    for tar in sorted((run / "final").glob("shard-*.tar")):
        with tarfile.open(tar) as t:
            names = t.getnames()
        assert len(names) == len(set(names)), f"{tar.name}: a member twice"
        kept += [n[: -len(".json")] for n in names if n.endswith(".json")]
    markers = sorted((run / "stages").glob("*/shard-*.done.json")) + sorted((run / "final").glob("shard-*.stats.json"))
    for marker in markers:
        rejected += [key for key, _reason in json.loads(marker.read_text()).get("rejected_keys", [])]
    return kept, rejected


def test_a_run_survives_losing_a_node(two_nodes, tmp_path):
    address, env = two_nodes["address"], two_nodes["env"]
    assert (Path(env["HOME"]) / ".ray" / "auth_token").is_file()
    assert "Token authentication is enabled" in two_nodes["head_output"], two_nodes["head_output"]
    cfg = yaml.safe_load(yaml.safe_dump(SMALL))
    cfg["run"].update(name="multinode", num_samples=NUM_SAMPLES, shard_size=SHARD_SIZE, width=256, height=256)
    cfg["filters"] = {"min_subjects": 5}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))

    run = tmp_path / "RUN"
    log = tmp_path / "driver.log"
    with open(log, "w") as stderr:
        driver = subprocess.Popen([sys.executable, "-m", "datagen.cli", "run", "--config", str(config), "--out", str(run),
                                   "--address", address], stdout=subprocess.DEVNULL, stderr=stderr, env=env,
                                  start_new_session=True)
    try:
        # Mid-run: once a final shard is committed and one of datagen's workers on node 2 is
        # running a shard (Ray titles an actor process `ray::<class>.<method>` while it runs a
        # task), kill node 2, all of it.
        sid = two_nodes["node2_session"]
        deadline, busy = time.time() + 120, []
        while driver.poll() is None and time.time() < deadline:
            busy = [p for p in alive_in_session(sid) if "ray::MapWorker(" in (c := cmdline(p)) and ".submit" in c]
            if busy and list((run / "final").glob("*.stats.json")):
                break
            time.sleep(0.05)
        node2 = alive_in_session(sid)
        committed = len(list((run / "final").glob("*.stats.json")))
        assert driver.poll() is None, "the run ended before node 2 was killed:\n" + log.read_text()
        assert busy and 0 < committed < NUM_SHARDS, (busy, committed, [cmdline(p)[:80] for p in node2])
        raylets = [p for p in node2 if f"--node_manager_port={two_nodes['node2_port']}" in cmdline(p)]
        assert len(raylets) == 1, [cmdline(p)[:200] for p in node2]
        # Worker logs are named <stages>-<host>-<pid>.log: the busy process is one of datagen's workers.
        worker_pids = {int(p.stem.rsplit("-", 1)[1]) for p in (run / "logs").glob("*.log")}
        assert set(busy) <= worker_pids, (busy, sorted(worker_pids))
        kill_session(sid)
        assert not alive_in_session(sid)

        driver.wait(timeout=240)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 0, log.read_text()

    reference = tmp_path / "REF"
    assert run_cli("run", "--config", str(config), "--out", str(reference), "--executor", "local").returncode == 0
    assert len(final_bytes(reference)) == NUM_SHARDS
    assert final_bytes(run) == final_bytes(reference)

    # Nothing lost or doubled: every sample is kept or rejected, exactly once.
    kept, rejected = _kept_and_rejected(run)
    assert rejected, "the config is meant to reject some samples"
    assert sorted(kept + rejected) == sorted(_expected_keys())

    # The only debris: temp files of commits that node 2's workers had under way (named
    # .<file>.tmp-<host>-<pid>-<random>), which the next run sweeps; it has nothing else to do.
    debris = list(run.rglob(".*.tmp-*"))
    assert all(int(p.name.split(".tmp-", 1)[1].split("-")[-2]) in node2 for p in debris), (debris, node2)
    again = run_cli("run", "--config", str(config), "--out", str(run), "--address", address, env=env)
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr
    assert not list(run.rglob(".*.tmp-*"))
    assert final_bytes(run) == final_bytes(reference)

    status = run_cli("status", str(run), "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["final_shards"] == NUM_SHARDS
    assert all(s["failed"] == 0 and s["pending"] == 0 and not s["failures"] for s in report["stages"]), report["stages"]
