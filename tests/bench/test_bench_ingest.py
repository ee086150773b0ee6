"""bench/ingest_rows.py --tiny: `datagen ingest` timed per source kind (anyinsertion, musar,
folder) on the tiny models, every figure the benchmark promises reported, and the bad rows it
plants rejected at the source stage with their reasons."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["source", "caption", "segment", "depth", "boxes", "repose", "idcheck", "filter"]
PLANTED = {
    "anyinsertion": {"bad_row:empty_mask": 1, "bad_row:mask_size": 1, "bad_row:missing_field": 1, "bad_row:undecodable_image": 1},
    "musar": {"bad_row:missing_field": 2, "bad_row:undecodable_image": 2},
    "folder": {"bad_row:empty_mask": 1, "bad_row:mask_size": 1, "bad_row:no_subjects": 1, "bad_row:undecodable_image": 1},
}


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_ingest_rows_bench_runs_at_toy_size(tmp_path, tiny_models):
    out = tmp_path / "ingest_rows.json"
    proc = subprocess.run([sys.executable, "bench/ingest_rows.py", "--tiny", "--models", str(tiny_models), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["tiny"] is True
    assert report["machine"]["cores"] >= 1 and report["machine"]["torch_threads"] == 1
    settings = report["settings"]
    assert (settings["rows_per_source"], settings["width"], settings["height"], settings["shard_size"]) == (8, 48, 48, 4)
    assert settings["executor"] == "local" and "ingest_tiny" in settings["config"]
    assert set(report["sources"]) == set(PLANTED) == set(report["summary"])
    for kind, figures in report["sources"].items():
        assert figures["rows"] == 8, kind
        assert figures["kept"] + figures["rejected"] == 8, (kind, figures)
        assert positive(figures["seconds"]) and positive(figures["rows_per_s"]), (kind, figures)
        assert math.isclose(figures["rows_per_s"] * figures["seconds"], 8, rel_tol=1e-2), (kind, figures)
        assert figures["shards"] == 2 and positive(figures["steady_rows_per_s"]), (kind, figures)
        assert 0 < figures["first_shard_done_s"] <= figures["seconds"], (kind, figures)
        assert list(figures["stage_wall_s"]) == STAGES, kind
        # every planted bad row, and only those, rejected by the source stage with its reason
        assert figures["rejected_by_stage_and_reason"]["source"] == PLANTED[kind], kind
        assert figures["bad_rows_rejected_as_planted"] is True, kind
        assert sum(figures["subjects_histogram"].values()) == figures["kept"], kind
        assert report["summary"][kind]["rows_per_s"] == figures["rows_per_s"]
    # AnyInsertion gives masks and identities, and ingest_tiny's filters are open: only its bad rows go.
    assert report["sources"]["anyinsertion"]["kept"] == 4
    assert set(report["sources"]["anyinsertion"]["rejected_by_stage_and_reason"]) == {"source"}
    # MUSAR's rows are named by the tiny VLM (ingest_tiny's caption: auto): the caption stage runs its model.
    assert report["sources"]["musar"]["overrides"] == ["run.shard_size=4", "stages.caption.validation_retries=2"]
    assert report["sources"]["musar"]["stage_wall_s"]["caption"] > 0
    assert report["sources"]["folder"]["kept"] >= 1
