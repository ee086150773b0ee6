"""bench/target_kept.py --small: the runner's round sizing and cut against a fixed run size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_target_kept_small_run(tmp_path: Path) -> None:
    out = tmp_path / "target_kept.json"
    proc = subprocess.run([sys.executable, "bench/target_kept.py", "--small", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["small"] is True and report["settings"]["target"] == 270
    rows = {r["survival"]: r for r in report["results"]}
    assert list(rows) == [0.5, 0.65, 0.8]
    for r, row in rows.items():
        fixed, target = row["fixed"], row["target_kept"]
        assert target["kept"] == 270 and target["rounds"] >= 1
        # The dataset ends at the shard holding the 270th kept sample; processed covers it.
        assert target["dataset_samples"] + target["surplus_samples"] == target["processed"]
        assert abs(fixed["kept"] - r * fixed["processed"]) < 0.15 * fixed["processed"]
    # Low survival: a fixed run falls short and the target run processes more; high: the reverse.
    assert rows[0.5]["fixed"]["short"] > 0 and rows[0.5]["target_kept"]["processed"] > rows[0.5]["fixed"]["processed"]
    assert rows[0.8]["fixed"]["surplus"] > 0 and rows[0.8]["target_kept"]["processed"] < rows[0.8]["fixed"]["processed"]
