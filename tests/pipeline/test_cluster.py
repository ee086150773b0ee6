"""`--address`: a run joins a `ray start` cluster with token authentication on."""

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import _env, final_bytes, run_cli



def _ray_bin() -> str:
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else shutil.which("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """A one-node `ray start --head` cluster with its own HOME (so its own ~/.ray token)."""
    env = _env()
    env["HOME"] = str(tmp_path / "home")
    env.pop("RAY_AUTH_MODE", None)
    env.pop("RAY_AUTH_TOKEN", None)
    ray = _ray_bin()
    subprocess.run([ray, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    port = _free_port()
    subprocess.run([ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"],
                   env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray, "stop"], env=env, capture_output=True, timeout=120)


def test_run_joins_a_cluster_with_its_token(cluster, tmp_path, small_config_file):
    address, env = cluster
    assert (Path(env["HOME"]) / ".ray" / "auth_token").is_file()
    run = tmp_path / "RUN"
    r = run_cli("run", "--config", str(small_config_file), "--out", str(run), "--address", address, env=env)
    assert r.returncode == 0, r.stderr
    local = tmp_path / "LOCAL"
    assert run_cli("run", "--config", str(small_config_file), "--out", str(local), "--executor", "local").returncode == 0
    assert final_bytes(run) == final_bytes(local)

    # A wrong token is refused by the cluster: one line, no traceback.
    bad = dict(env, RAY_AUTH_TOKEN="0" * 32)
    r = run_cli("run", "--config", str(small_config_file), "--out", str(tmp_path / "R2"), "--address", address, env=bad,
                timeout=180)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert any(line.startswith("datagen: error: --address") for line in r.stderr.splitlines()), r.stderr
