"""Helpers for tests that run the real `datagen` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SMALL = {
    "run": {"name": "small", "seed": 7, "num_samples": 12, "shard_size": 4, "width": 128, "height": 128},
    "stages": {"repose": {"identity_size": 32}, "boxes": {"fit": {"max_points": 800}}},
    "output": {"keep_truth": True, "png_compress_level": 1},
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # tests start their own local Ray unless they say otherwise
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datagen.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env or _env(),
    )


def final_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "final").glob("shard-*.tar"))}
