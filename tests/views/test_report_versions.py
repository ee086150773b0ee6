"""`datagen status RUN --report` reads sigma-set/1 and /2: a run and its /2 rewrite give the same
report, depth figures within log16's error, and only the members the figures need are read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import rewrite_as_v2, run_cli

from datagen.views.report import DepthSpread, build_report, read_samples

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1_run"
LOG16 = 1e-4  # FORMAT.md: (log_max - log_min) / 131068, 3.5e-5 for a 100x range


@pytest.fixture(scope="module", params=["fixture", "session"])
def pair(request, tmp_path_factory) -> tuple[Path, Path]:
    """(a run as written, the same run rewritten as sigma-set/2): the committed /1 fixture, and
    the session's run (whatever version the writer writes today)."""
    source = FIXTURE if request.param == "fixture" else request.getfixturevalue("finished_run")
    root = tmp_path_factory.mktemp(f"report-{request.param}")
    one, two = shutil.copytree(source, root / "as-written"), shutil.copytree(source, root / "v2")
    rewrite_as_v2(two)
    return one, two


def _schemas(run: Path) -> set[str]:
    from datagen.final.read import iter_final_samples

    return {s.schema for s in iter_final_samples(run)}


def test_a_run_and_its_v2_rewrite_report_the_same_figures(pair):
    one, two = pair
    assert _schemas(two) == {"sigma-set/2"}
    a, b = build_report(one), build_report(two)
    assert a["kept"] == b["kept"] > 0
    for section in ("subjects", "box_area"):
        assert a[section] == b[section], section
    for report in (a, b):  # bytes_out aside: the rewrite wrote new final shards
        for row in report["funnel"]:
            del row["bytes_out"]
    assert a["funnel"] == b["funnel"]
    da, db = a["depth"], b["depth"]
    assert db["samples"] == db["samples_read"] == a["kept"]  # every sample's depth read, /2 as /1
    assert (da["samples_read"], da["samples_without_depth"]) == (db["samples_read"], db["samples_without_depth"])
    assert da["subject_centre_z"] == db["subject_centre_z"]  # from the json, untouched by the rewrite
    for name in ("min", "median", "max"):
        for stat in ("n", "mean", "min", "median", "max"):  # the report keeps 4 decimals: abs too
            assert db[name][stat] == pytest.approx(da[name][stat], rel=LOG16, abs=1e-4), (name, stat)


def test_depth_ranges_agree_within_log16(pair):
    """The unrounded figures: per sample (min, median, max) of depth inside the subjects' masks."""
    figs = [read_samples(sorted((run / "final").glob("shard-*.tar")), 100) for run in pair]
    assert len(figs[0].depth_ranges) == len(figs[1].depth_ranges) > 0
    for r1, r2 in zip(figs[0].depth_ranges, figs[1].depth_ranges, strict=True):
        assert r2 == pytest.approx(r1, rel=LOG16)
    assert figs[0].depth_read == figs[1].depth_read == len(figs[0].subjects)


def test_only_json_depth_and_masks_are_read():
    keep = DepthSpread(Path("shard-000000.tar"), stride=2, first=0)
    v2 = ["depth.png", "identities.png", "instances.png", "json", "png", "control.png"]
    v1 = ["crop_00.png", "depth.npy", "id_00.png", "json", "mask_00.png", "mask_01.png", "png"]
    picked = {key: [name for name in names if keep(key, name)] for key, names in
              (("000000_000000", v2), ("000000_000001", v2), ("000000_000002", v1), ("000000_000003", v1))}  # fmt: skip
    assert picked == {
        "000000_000000": ["depth.png", "instances.png", "json"],
        "000000_000001": ["json"],
        "000000_000002": ["depth.npy", "json", "mask_00.png", "mask_01.png"],
        "000000_000003": ["json"],
    }


def test_cli_reports_a_v2_run(pair, tmp_path):
    out = tmp_path / "report"
    done = run_cli("status", str(pair[1]), "--report", "--report-dir", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["depth"]["samples_read"] == report["kept"] > 0
    assert "## Depth (m) inside subject masks" in (out / "report.md").read_text()
