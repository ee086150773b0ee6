"""Ray nodes started by tests with `ray start`, each in a session of its own, and stopped by
killing exactly that session's Ray processes: `ray stop` would kill every Ray process on the
machine, including the local Ray of a test running beside it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def ray_bin() -> str:
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else shutil.which("ray")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def alive_in_session(sid: int) -> list[int]:
    """Live (not zombie) processes of a session: everything one `ray start` left running."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if os.getsid(int(entry.name)) == sid and stat.rsplit(")", 1)[1].split()[0] != "Z":
                pids.append(int(entry.name))
        except (OSError, IndexError):
            continue  # exited meanwhile
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_ray(pid: int) -> bool:
    cmd = cmdline(pid)
    # A process on its way out (killed, not yet a zombie) has an empty command line.
    return not cmd or cmd.startswith("ray::") or "/ray/" in cmd


def kill_session(sid: int, timeout: float = 30) -> None:
    """SIGKILL the Ray processes of a session (a session id outlives its processes and could
    be reused: hence only Ray's)."""
    deadline = time.time() + timeout
    while (pids := [p for p in alive_in_session(sid) if is_ray(p)]) and time.time() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def ray_start(args: list[str], env: dict) -> tuple[int, str]:
    """Run `ray start` in a session of its own; its daemons stay in that session, so the node
    is exactly the processes with that session id. Returns the session id and the output."""
    proc = subprocess.Popen([ray_bin(), "start", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        kill_session(proc.pid)
        pytest.fail(f"ray start {' '.join(args)} failed:\n{out}")
    return proc.pid, out
