"""`datagen status RUN --report`: the report's numbers against the run's own files, counted here
independently (markers summed, final tars opened with plain tarfile), and its plots."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from helpers import final_metas, run_cli
from PIL import Image

from datagen.errors import UserError
from datagen.views.report import build_report, load_report, write_report
from datagen.views.report_markdown import report_summary
from datagen.config import load_run_config

PLOTS = {"funnel", "subjects", "box_area", "depth", "stage_time"}


@pytest.fixture(scope="module")
def report_dir(finished_run, tmp_path_factory) -> Path:
    return write_report(finished_run, tmp_path_factory.mktemp("report") / "report")


@pytest.fixture(scope="module")
def report(report_dir) -> dict:
    return load_report(report_dir)


def _marker_sums(run: Path) -> dict[str, dict]:
    """Per stage, the markers summed by hand: stage .done.json files, the final stage's own entries
    in the final .stats.json files."""
    order = load_run_config(run).stages.order
    sums = {}
    for stage in order:
        s = {"samples_in": 0, "samples_out": 0, "subjects_in": 0, "subjects_out": 0, "wall_s": 0.0,
             "rejected": Counter(), "rejected_subjects": Counter()}
        if stage == order[-1]:
            markers = [json.loads(p.read_text()) for p in sorted((run / "final").glob("*.stats.json"))]
            own = [{**m["stages"][stage], "rejected": m["rejected"][stage], "rejected_subjects": m["rejected_subjects"][stage]}
                   for m in markers]
        else:
            own = [json.loads(p.read_text()) for p in sorted((run / "stages" / stage).glob("*.done.json"))]
        for m in own:
            for k in ("samples_in", "samples_out", "subjects_in", "subjects_out", "wall_s"):
                s[k] += m[k]
            s["rejected"].update(m["rejected"])
            s["rejected_subjects"].update(m["rejected_subjects"])
        sums[stage] = s
    return sums


def test_funnel_is_the_sum_of_the_markers(finished_run, report):
    sums = _marker_sums(finished_run)
    assert [r["stage"] for r in report["funnel"]] == list(sums)
    for row in report["funnel"]:
        want = sums[row["stage"]]
        for k in ("samples_in", "samples_out", "subjects_in", "subjects_out"):
            assert row[k] == want[k], (row["stage"], k)
        assert row["rejected"] == dict(want["rejected"]) and row["rejected_subjects"] == dict(want["rejected_subjects"])
        assert row["shards_done"] == 3 and row["shards_pending"] == 0
    for a, b in zip(report["funnel"], report["funnel"][1:]):
        assert b["samples_in"] == a["samples_out"]  # a stage takes exactly what the one before kept
    times = {s["stage"]: s for s in report["time"]["stages"]}
    for stage, want in sums.items():
        assert times[stage]["wall_s"] == pytest.approx(want["wall_s"], abs=1e-3)
        assert times[stage]["samples_per_worker_s"] == pytest.approx(want["samples_in"] / want["wall_s"], rel=1e-3)
    assert report["time"]["elapsed_s"] > 0 and report["time"]["cpu_s"] > 0


def test_kept_and_subject_counts_match_the_final_samples(finished_run, report):
    metas = final_metas(finished_run)
    assert report["kept"] == len(metas) > 0
    assert report["kept"] == report["funnel"][-1]["samples_out"]
    kept = Counter(len(m["subjects"]) for m in metas)
    assert report["subjects"]["kept"] == {str(n): kept[n] for n in sorted(kept)}
    # ...and with the histograms the final stats recorded at write time.
    stats = Counter()
    for p in (finished_run / "final").glob("*.stats.json"):
        stats.update({k: int(v) for k, v in json.loads(p.read_text())["subjects_histogram"].items()})
    assert report["subjects"]["kept"] == {k: stats[k] for k in sorted(stats, key=int)}
    assert sum(report["subjects"]["requested"].values()) == load_run_config(finished_run).run.num_samples
    areas = [s["box_area_frac"] for m in metas for s in m["subjects"]]
    box = report["box_area"]["box_area_frac"]
    assert box["n"] == len(areas) == sum(box["counts"]) == report["subjects"]["subjects_kept"]
    assert box["max"] == pytest.approx(max(areas), abs=1e-4)
    depth = report["depth"]
    assert depth["samples"] == depth["samples_read"] == len(metas)  # a small run: every depth map read
    assert depth["min"]["n"] == sum(depth["min"]["counts"]) == len(metas) - depth["samples_without_depth"]
    assert 0 < depth["min"]["min"] <= depth["median"]["median"] <= depth["max"]["max"]
    # Depth is read from an even spread of samples when asked for fewer than there are.
    spread = build_report(finished_run, depth_samples=4)["depth"]
    assert spread["samples_read"] == len(range(0, len(metas), -(-len(metas) // 4)))
    assert report["run_id"] == metas[0]["provenance"]["run_id"]
    assert report["config_sha256"] == metas[0]["provenance"]["config_sha256"]


def test_every_plot_is_a_png_of_the_expected_size(report_dir, report):
    assert set(report["plots"]) == PLOTS
    for name, file in report["plots"].items():
        with Image.open(report_dir / file) as im:
            assert (im.format, im.size) == ("PNG", (800, 500)), name
    assert "## Funnel" in (report_dir / "report.md").read_text()
    assert f"{report['kept']} of {report['num_samples']} samples kept" in report_summary(report)


def test_rewriting_replaces_the_report_with_the_same_bytes(finished_run, report_dir, tmp_path):
    out = tmp_path / "report"
    shutil.copytree(report_dir, out)
    (out / "stale.png").write_bytes(b"old")
    write_report(finished_run, out)
    assert not (out / "stale.png").exists()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {p.name: p.read_bytes() for p in report_dir.iterdir()}


def test_partial_run_still_reports(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "final")
    (run / "stages" / "repose" / "shard-000001.done.json").unlink()
    (run / "stages" / "idcheck" / "shard-000002.done.json").unlink()
    report = load_report(write_report(run, tmp_path / "report"))
    rows = {r["stage"]: r for r in report["funnel"]}
    assert report["kept"] == 0 and report["final_shards"] == 0
    assert report["box_area"] is None and report["depth"] is None and report["subjects"]["kept"] == {}
    assert set(report["plots"]) == {"funnel", "subjects", "stage_time"} and report["notes"]
    assert (rows["repose"]["shards_done"], rows["idcheck"]["shards_done"], rows[list(rows)[-1]]["shards_done"]) == (2, 2, 0)
    assert rows["boxes"]["samples_out"] == _marker_sums(finished_run)["boxes"]["samples_out"]
    assert all((tmp_path / "report" / f).is_file() for f in report["plots"].values())


def test_cli_writes_the_report(finished_run, tmp_path):
    out = tmp_path / "x"
    r = run_cli("status", str(finished_run), "--report", "--report-dir", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "report.json").read_text())["kept"] > 0


def test_not_a_run_is_one_line(tmp_path):
    r = run_cli("status", str(tmp_path), "--report", "--report-dir", str(tmp_path / "r"))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "not a datagen run" in r.stderr
    assert not (tmp_path / "r").exists()


def test_refuses_to_replace_a_directory_that_is_not_a_report(finished_run, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a datagen report"):
        write_report(finished_run, tmp_path)
    with pytest.raises(UserError, match="would replace the run"):
        write_report(finished_run, finished_run)
    assert (tmp_path / "notes.txt").read_text() == "mine"
