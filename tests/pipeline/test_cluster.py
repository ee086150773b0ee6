"""`--address`: a run joins a `ray start` cluster with token authentication on."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import _env, final_bytes, run_cli
from ray_nodes import free_ports, kill_session, ray_bin, ray_start



@pytest.fixture
def cluster(tmp_path):
    """A one-node `ray start --head` cluster with its own HOME (so its own ~/.ray token), stopped
    by killing its own session: `ray stop` would also kill the Ray of tests running beside it."""
    env = _env()
    env["HOME"] = str(tmp_path / "home")
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(var, None)
    subprocess.run([ray_bin(), "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    # Ray's unix socket paths live under the temp dir and must stay short: not under tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="dgray", dir="/tmp")
    port, dash, agent = free_ports(3)
    sid = None
    try:
        sid, _ = ray_start(["--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                            f"--dashboard-port={dash}", f"--dashboard-agent-listen-port={agent}",
                            f"--temp-dir={temp_dir}"], env)
        yield f"127.0.0.1:{port}", env
    finally:
        if sid is not None:
            kill_session(sid)
        shutil.rmtree(temp_dir, ignore_errors=True)


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
