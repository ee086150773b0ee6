"""A run written by an older datagen (sigma-set/1, older settings) stays readable: the readers
read its finished shards, while `status` says a resume would redo them."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import run_cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1_run"


def test_an_old_run_is_read_and_status_says_what_a_resume_would_do(tmp_path):
    run = tmp_path / "old"
    shutil.copytree(FIXTURE, run)
    status = run_cli("status", str(run))
    assert status.returncode == 0, status.stderr
    assert "final: 0/2 shards" in status.stdout
    assert "2 more finished under other settings" in status.stdout
    shown = run_cli("show", str(run), "--out", str(tmp_path / "sheet.png"))
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "sheet.png").stat().st_size > 0
    checked = run_cli("validate", str(run))
    assert checked.returncode == 0 and "6 samples checked, 0 problems" in checked.stdout, checked.stdout + checked.stderr
