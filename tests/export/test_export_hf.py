"""datagen export hf: every final sample becomes one row laid out like sigma-set/2 whose columns
decode to the sample's arrays, the card shows the run's real figures, the upload goes to the right
dataset repo, and bad input is one line with nothing half-written. (The session's run is whatever
version the writer writes; test_export_hf_versions.py exports a /1 and a /2 run side by side.)"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
from helpers import run_cli

from datagen.export.card import render_card
from datagen.errors import UserError
from datagen.export.hf import SUBJECT_KEYS, ExportTally, export_hf, sample_features
from datagen.final.read import final_shards, iter_final_samples, shard_stats
from datagen.config import load_run_config
from datagen.recipe.instances import exclusive_by_depth
from datagen.store.depth_png import LogRange, decode_depth_png


def _export(run_dir: Path, out: Path, **kw) -> str:
    args = {"overwrite": False, "push_to_hub": None, "private": False, "say": lambda _: None, **kw}
    return export_hf(run_dir, out, **args)


def _stats(run_dir: Path) -> list[dict]:
    return [shard_stats(s) for s in final_shards(run_dir)]


def _written(run_dir: Path) -> int:
    return sum(int(s["samples_written"]) for s in _stats(run_dir))


def _pixels(image) -> np.ndarray:
    return np.asarray(image)


def _rewrite_member(shard: Path, name: str, data: bytes) -> None:
    """Replace one member of a (copied) shard, keeping the order of the others."""
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        for info, old in members:
            new = data if info.name == name else old
            info.size = len(new)
            tar.addfile(info, io.BytesIO(new))


def _leftovers(parent: Path, name: str) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}")]


@pytest.fixture(scope="module")
def exported(finished_run, tmp_path_factory) -> tuple[Path, str, list[str]]:
    """The session's run exported once for this module (read it, never write into it)."""
    out = tmp_path_factory.mktemp("export") / "hf"
    said: list[str] = []
    message = _export(finished_run, out, say=said.append)
    return out, message, said


@pytest.fixture(scope="module")
def dataset(exported):
    return datasets.load_from_disk(str(exported[0]))


# ---------------------------------------------------------------- rows


def test_one_row_per_final_sample_in_key_order(exported, dataset, finished_run):
    out, message, said = exported
    written = _written(finished_run)
    assert dataset.num_rows == written > 0
    assert dataset["key"] == [s.key for s in iter_final_samples(finished_run)]
    assert message == f"wrote {written} rows to {out} (card: {out / 'README.md'})"
    assert said and str(written) in said[0]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("data-")) == [
        "README.md",
        "dataset_info.json",
        "state.json",
    ]


def test_features_are_declared_not_inferred(dataset):
    assert dataset.features == sample_features()
    subject = dataset.features["subjects"].feature
    assert set(SUBJECT_KEYS) | {"extra_json"} == set(subject)
    assert set(subject["box_3d"]) == {"center", "extent", "rotation", "corners"}
    assert set(subject["identity"]) == {"width", "height", "source"}
    assert {"instances", "identities", "depth", "depth_info", "source"} <= set(dataset.features)
    assert not {"masks", "crops"} & set(dataset.features)  # /2's layout: no per-subject lists


def _depth_png_bytes(dataset):
    return dataset.cast_column("depth", datasets.Image(decode=False))["depth"]


def test_rows_decode_to_the_samples_arrays(dataset, finished_run):
    stored = _depth_png_bytes(dataset)
    rows = dataset.with_format(None)
    for sample, row, depth_png in zip(iter_final_samples(finished_run), rows, stored, strict=True):
        n = len(sample.subjects)
        assert row["key"] == sample.key and row["shard"] == sample.shard.name
        assert row["image"].mode == "RGB"
        np.testing.assert_array_equal(_pixels(row["image"]), sample.image)
        instances = _pixels(row["instances"])
        assert row["instances"].mode == "L" and int(instances.max()) <= n
        exclusive = np.stack(exclusive_by_depth(list(sample.masks), sample.depth))  # /2's masks already are
        np.testing.assert_array_equal(instances[None] == np.arange(1, n + 1)[:, None, None], exclusive)
        np.testing.assert_array_equal(_pixels(row["identities"]).reshape(sample.identities.shape), sample.identities)
        info = row["depth_info"]
        assert info["encoding"] == "log16" and info["units"] == "m"
        depth = decode_depth_png(depth_png["bytes"], LogRange(info["log_min"], info["log_max"]))
        known = np.isfinite(sample.depth) & (sample.depth > 0)
        np.testing.assert_array_equal(np.isnan(depth), ~known)
        assert np.max(np.abs(depth[known] / sample.depth[known] - 1)) <= 1e-4
        assert row["source"]["kind"] == "generated" and row["source"]["id"] == sample.key
        assert {s["identity"]["source"] for s in row["subjects"]} <= {"repose", "reference"}


def rebuild_metadata(row) -> dict:
    """The sample's json from a row's typed and JSON columns."""
    subjects = [{**{k: s[k] for k in SUBJECT_KEYS}, **json.loads(s["extra_json"])} for s in row["subjects"]]
    rebuilt = {
        "schema": row["schema"],
        "key": row["key"],
        "width": row["width"],
        "height": row["height"],
        "prompt": row["prompt"],
        "subjects": subjects,
        "camera": row["camera"],
        "depth": row["depth_info"],
        # licence and citation are written only where a source states them; the column holds null
        "source": {k: v for k, v in row["source"].items() if v is not None or k not in ("licence", "citation")},
        "generation": json.loads(row["generation_json"]),
        "provenance": row["provenance"],
        **json.loads(row["extra_json"]),
    }
    if row["truth_json"] is not None:
        rebuilt["truth"] = json.loads(row["truth_json"])
    if row["schema"] == "sigma-set/1":  # what the row adds to a /1 sample: its source, depth range
        del rebuilt["source"]
        rebuilt["depth"] = {k: rebuilt["depth"][k] for k in ("units", "source")}
        for subject in rebuilt["subjects"]:
            assert subject["identity"].pop("source") == "repose"
    return rebuilt


def test_metadata_rebuilds_exactly_from_the_columns(dataset, finished_run):
    """Every field of the sample's json is in a typed column or a JSON column: rebuilding the
    metadata object from the row gives the shard's json back, key for key."""
    for sample, row in zip(iter_final_samples(finished_run), dataset, strict=True):
        original = json.loads(sample.members["json"])
        assert rebuild_metadata(row) == original
        assert row["metadata_json"] == sample.members["json"].decode()
        assert [s["box_2d"] for s in row["subjects"]] == [s["box_2d"] for s in original["subjects"]]
        assert "truth" in original and "filter" in original  # the fixture run keeps truth; the filter adds its section


# ---------------------------------------------------------------- card


def _card(out: Path):
    return huggingface_hub.DatasetCard.load(out / "README.md")


def test_card_front_matter(exported, dataset):
    card = _card(exported[0])
    data = card.data.to_dict()
    assert data["license"] == "other"
    assert "text-to-image" in data["task_categories"]
    assert data["size_categories"] == ["n<1K"]
    assert data["pretty_name"] == f"small ({dataset[0]['schema']})"
    assert data["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data-*.arrow"}]}]
    assert [f["name"] for f in data["dataset_info"]["features"]] == list(dataset.features)


def test_card_shows_the_runs_figures(exported, dataset, finished_run):
    text = _card(exported[0]).text
    assert "## Quality" in text and "Not measured: `datagen eval data" in text  # exported without --quality
    stats = _stats(finished_run)
    hist = Counter()
    for s in stats:
        hist.update({k: int(v) for k, v in s["subjects_histogram"].items()})
    assert hist == Counter(str(len(subjects)) for subjects in dataset["subjects"])
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ") and line.count("|") == 4}
    for n, kept in hist.items():
        assert rows[n].rstrip().endswith(f"| {kept} |"), rows[n]  # | subjects | requested | kept |
    rejects = Counter()
    for s in stats:
        for kind in ("rejected", "rejected_subjects"):
            for stage, reasons in s[kind].items():
                rejects.update({(stage, reason, kind): n for reason, n in reasons.items()})
    assert rejects, "the fixture run rejects something, so the table has rows"
    for stage, reason, _ in rejects:
        samples, subjects = rejects[(stage, reason, "rejected")], rejects[(stage, reason, "rejected_subjects")]
        assert f"| {stage} | {reason} | {samples} | {subjects} |" in text
    provenance = dataset[0]["provenance"]
    assert provenance["run_id"] in text and provenance["config_sha256"] in text and provenance["datagen_version"] in text
    assert f"**Samples:** {dataset.num_rows} (128x128), from 3 of 3 final shards" in text
    assert "TODO: fill in" in text and "`metadata_json`" in text and "`extra_json`" in text
    assert f"**Stored as:** {dataset[0]['schema']} ({dataset.num_rows} samples)" in text
    assert "`instances == i + 1`" in text and "`log_min`" in text and "| `crops` |" not in text
    assert "| boxes | open3d | - | open3d (" in text  # models as configured and as recorded in the samples


def test_card_names_the_flux_licence(exported, finished_run):
    tally = ExportTally(rows=1, models={"t2i": Counter({"black-forest-labs/FLUX.1-dev": 1})})
    text = render_card(exported[0], finished_run, load_run_config(finished_run), tally, final_shards(finished_run), "me/set")
    assert "`black-forest-labs/FLUX.1-dev`: FLUX.1 [dev] Non-Commercial License" in text
    assert 'load_dataset("me/set", split="train")' in text


def test_hub_layout_loads_with_load_dataset(exported, dataset, tmp_path):
    """What `load_dataset(REPO)` does after an upload: the card's `configs` point the Arrow
    builder at the data files (state.json is left out here: datasets refuses a local save_to_disk
    directory in load_dataset, which does not apply to a hub repo)."""
    repo = shutil.copytree(exported[0], tmp_path / "repo", ignore=shutil.ignore_patterns("state.json"))
    loaded = datasets.load_dataset(str(repo), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.num_rows == dataset.num_rows
    assert loaded.features == dataset.features
    assert loaded["key"] == dataset["key"]


# ---------------------------------------------------------------- upload


def test_push_to_hub_creates_a_dataset_repo_and_uploads_the_folder(finished_run, tmp_path, monkeypatch):
    calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, **kw):
        folder = Path(kw["folder_path"])
        calls.append(("upload_folder", {**kw, "files": sorted(p.name for p in folder.iterdir())}))

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    out = tmp_path / "hf"
    message = _export(finished_run, out, push_to_hub="me/sigma-small", private=True)
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    create, upload = calls[0][1], calls[1][1]
    assert create["repo_id"] == "me/sigma-small" and create["repo_type"] == "dataset" and create["private"] is True
    assert create["exist_ok"] is True
    assert upload["repo_id"] == "me/sigma-small" and upload["repo_type"] == "dataset"
    assert Path(upload["folder_path"]) == out
    assert {"README.md", "dataset_info.json", "state.json"} <= set(upload["files"])
    assert any(f.startswith("data-") and f.endswith(".arrow") for f in upload["files"])
    assert message.endswith("uploaded to https://huggingface.co/datasets/me/sigma-small")


def test_a_refused_upload_is_one_line_and_keeps_the_export(finished_run, tmp_path, monkeypatch):
    def create_repo(self, repo_id, **kw):
        raise huggingface_hub.errors.LocalTokenNotFoundError("Token is required but no token found.\nLog in first.")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    out = tmp_path / "hf"
    with pytest.raises(UserError) as e:
        _export(finished_run, out, push_to_hub="me/sigma-small")
    assert "\n" not in str(e.value)
    assert str(e.value).startswith("--push-to-hub me/sigma-small: upload failed (LocalTokenNotFoundError: Token is required")
    assert f"the dataset is complete in {out}" in str(e.value)
    assert datasets.load_from_disk(str(out)).num_rows == _written(finished_run)


# ---------------------------------------------------------------- bad input


def test_cli_happy_path(finished_run, tmp_path):
    out = tmp_path / "hf"
    done = run_cli("export", "hf", str(finished_run), "--out", str(out))
    assert done.returncode == 0, done.stderr
    n = _written(finished_run)
    assert done.stdout.strip().splitlines()[-1] == f"wrote {n} rows to {out} (card: {out / 'README.md'})"
    assert datasets.load_from_disk(str(out)).num_rows == n


def test_offline_push_fails_in_one_line_after_the_export(finished_run, tmp_path):
    out = tmp_path / "hf"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = run_cli("export", "hf", str(finished_run), "--out", str(out), "--push-to-hub", "me/sigma-small", env=env)
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("datagen: error: --push-to-hub me/sigma-small: HF_HUB_OFFLINE is set")
    assert f"the dataset is complete in {out}" in error
    assert "Traceback" not in done.stderr
    assert datasets.load_from_disk(str(out)).num_rows == _written(finished_run) and (out / "README.md").is_file()


def _no_final_shards(run: Path) -> None:
    shutil.rmtree(run / "final")
    (run / "final").mkdir()


def _truncated_shard(run: Path) -> None:
    shard = run / "final" / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[:20000])


def _corrupt_png(run: Path) -> None:
    first = next(iter_final_samples(run))
    small = "mask_00.png" if first.schema == "sigma-set/1" else "instances.png"  # the shard keeps its size
    _rewrite_member(first.shard, f"{first.key}.{small}", b"\x89PNG\r\n\x1a\nnot a png")


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_no_final_shards, "no final shards"),
        (_truncated_shard, "shard-000001.tar"),
        (_corrupt_png, ".png: undecodable"),
    ],
)
def test_bad_runs_fail_in_one_line_with_nothing_written(finished_run, tmp_path, breakage, expected):
    run = shutil.copytree(finished_run, tmp_path / "run")
    breakage(run)
    out = tmp_path / "hf"
    done = run_cli("export", "hf", str(run), "--out", str(out))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("datagen: error: ") and expected in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists() and _leftovers(tmp_path, "hf") == []


def test_existing_out_and_bad_repo_id_fail_before_anything_is_written(finished_run, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    done = run_cli("export", "hf", str(finished_run), "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.strip() == f"datagen: error: --out {out}: already exists (pass --overwrite to replace it)"
    assert [p.name for p in out.iterdir()] == ["mine.txt"]

    fresh = tmp_path / "fresh"
    done = run_cli("export", "hf", str(finished_run), "--out", str(fresh), "--push-to-hub", "not a repo id")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("datagen: error: --push-to-hub 'not a repo id': not a hub repo id")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not fresh.exists() and _leftovers(tmp_path, "fresh") == []


def test_overwrite_replaces_the_whole_directory(finished_run, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    _export(finished_run, out, overwrite=True)
    assert not (out / "stale.txt").exists()
    assert datasets.load_from_disk(str(out)).num_rows == _written(finished_run)


def test_stats_that_disagree_with_the_shards_fail(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    marker = run / "final" / "shard-000000.stats.json"
    stats = json.loads(marker.read_text())
    stats["samples_written"] += 1
    marker.write_text(json.dumps(stats))
    n = _written(finished_run)
    with pytest.raises(UserError, match=rf"read {n} samples but the final shards' stats say {n + 1}"):
        _export(run, tmp_path / "hf")
    assert not (tmp_path / "hf").exists() and _leftovers(tmp_path, "hf") == []


def test_datasets_is_imported_lazily_and_named_when_missing(finished_run, tmp_path, monkeypatch):
    probe = "import sys, datagen.export.hf, datagen.export.card; print('datasets' in sys.modules, 'huggingface_hub' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
    monkeypatch.setitem(sys.modules, "datasets", None)  # what an install without the extra looks like
    with pytest.raises(UserError, match=r"^datasets is not installed .*pip install 'datagen\[export\]'$"):
        _export(finished_run, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_overwrite_never_replaces_the_run_itself(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    before = sorted(p.name for p in (run / "final").iterdir())
    for out in (run, tmp_path):
        done = run_cli("export", "hf", str(run), "--out", str(out), "--overwrite")
        assert done.returncode == 2 and "would replace the run" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (run / "final").iterdir()) == before
