"""`datagen ingest` end to end on tiny models: an AnyInsertion-layout dataset becomes sigma-set/2
samples with 1 subject, its masks and reference identities kept, its bad rows rejected with
their reasons, resumable like a run, accepted by `datagen validate` and the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from test_sources import AI_FEATURES, img, picture

from datagen.final.read import iter_final_samples
from datagen.ingest.sources import ANYINSERTION_CITATION
from datagen.train.data import validate_data
from helpers import run_cli

SIZE = 64
GOOD = 5


@pytest.fixture(scope="module")
def anyinsertion(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("anyins")
    rows = []
    for k in range(GOOD + 2):
        tar, tar_m = picture(k, SIZE, SIZE)
        ref, ref_m = picture(50 + k, 40, 32)
        rows.append(dict(id=f"train/object/{k}", split="train", category="object", main_label=f"cube{k}",
                         ref_image=img(ref), ref_mask=img(ref_m), tar_image=img(tar), tar_mask=img(tar_m)))  # fmt: skip
    rows[GOOD]["tar_mask"] = img(np.zeros((SIZE, SIZE), bool))  # empty
    rows[GOOD + 1]["tar_image"] = {"bytes": b"not a picture", "path": None}
    (root / "data").mkdir()
    datasets.Dataset.from_list(rows, features=AI_FEATURES).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root, rows


def test_ingest_anyinsertion_keeps_masks_and_references(tmp_path, tiny_models, anyinsertion):
    source, rows = anyinsertion
    run = tmp_path / "run"
    args = ["ingest", "anyinsertion", str(source), "--config", "ingest_tiny", "--set", f"models_dir={tiny_models}", "--out", str(run)]
    done = run_cli(*args, "--executor", "local", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    samples = list(iter_final_samples(run))
    assert 1 <= len(samples) <= GOOD
    for s in samples:
        row = int(s.meta["source"]["id"].rsplit("/", 1)[1])
        assert s.meta["schema"] == "sigma-set/2" and row < GOOD
        assert s.meta["source"] == {"kind": "ingested", "dataset": str(source), "id": f"train/object/{row}",
                                    "citation": ANYINSERTION_CITATION}  # fmt: skip  (no licence stated: no key)
        assert [x["name"] for x in s.subjects] == [f"cube{row}"] and s.subjects[0]["identity"]["source"] == "reference"
        _, want = picture(row, SIZE, SIZE)
        assert np.array_equal(s.masks[0], want)  # the source's mask, not a detector's
        assert s.meta["prompt"]["full"] == f"cube{row}"
        assert "caption" not in s.meta["generation"]["models"]  # auto: the source named it, no VLM ran
    assert run_cli("validate", str(run)).returncode == 0
    assert validate_data(run)  # the trainer takes it
    stats = [json.loads(p.read_text()) for p in sorted((run / "final").glob("*.stats.json"))]
    reasons = json.dumps(stats)
    assert "bad_row:empty_mask" in reasons and "bad_row:undecodable_image" in reasons

    again = run_cli(*args, "--executor", "local")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    status = run_cli("status", str(run))
    assert status.returncode == 0 and "subjects per sample   kept" in status.stdout  # nothing was "requested"
    assert f"   1 subjects          {len(samples):>5}" in status.stdout and "requested" not in status.stdout

    exported = run_cli("export", "hf", str(run), "--out", str(tmp_path / "hf"), timeout=600)
    assert exported.returncode == 0, exported.stderr[-2000:]
    card = (tmp_path / "hf" / "README.md").read_text()
    assert f"| {source} | {len(samples)} | not stated by the source | {ANYINSERTION_CITATION} |" in card


def test_a_source_that_is_not_its_kind_fails_in_one_line_before_writing(tmp_path, anyinsertion):
    source, _ = anyinsertion
    done = run_cli("ingest", "musar", str(source), "--config", "ingest_tiny", "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "tgt_img" in done.stderr, done.stderr
    assert not (tmp_path / "run" / "run.yaml").exists()


def test_ingest_musar_captions_with_the_vlm_and_segments(tmp_path, tiny_models):
    """MUSAR-Gen gives no names or masks: the tiny Qwen2.5-VL names the subjects (random weights:
    many answers fail validation and are rejected as such), grounding + SAM find the masks."""
    root = tmp_path / "musar"
    cols = {"tgt_img": [], "cond_img_0": [], "cond_img_1": [], "prompt": []}
    for k in range(4):
        for col, seed in (("tgt_img", k), ("cond_img_0", 10 + k), ("cond_img_1", 20 + k)):
            cols[col].append(img(picture(seed, SIZE, SIZE)[0]))
        cols["prompt"].append(f"two things, take {k}")
    image = datasets.Image()
    features = datasets.Features({c: image for c in ("tgt_img", "cond_img_0", "cond_img_1")} | {"prompt": datasets.Value("string")})
    datasets.Dataset.from_dict(cols, features=features).save_to_disk(str(root))
    run = tmp_path / "run"
    done = run_cli("ingest", "musar", str(root), "--config", "ingest_tiny", "--set", f"models_dir={tiny_models}",
                   "--set", "stages.caption.validation_retries=4",  # ingest_tiny's caption: auto
                   "--out", str(run), "--executor", "local", timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    stats = [json.loads(p.read_text()) for p in sorted((run / "final").glob("*.stats.json"))]
    kept = sum(int(s["samples_written"]) for s in stats)
    assert kept > 0 or "invalid_vlm_output" in done.stderr + json.dumps(stats)
    for s in iter_final_samples(run):
        assert s.meta["source"]["licence"] == "apache-2.0" and len(s.subjects) <= 2
        assert all(x["identity"]["source"] == "reference" for x in s.subjects)
        assert all(x["name"].strip() for x in s.subjects)  # named by the VLM
        assert s.meta["generation"]["models"]["caption"].startswith("auto:")  # auto: no names, so the VLM


def test_ingest_a_folder_without_masks_or_references_runs_segment_and_repose(tmp_path, tiny_models):
    root = tmp_path / "pics"
    root.mkdir()
    with open(root / "metadata.jsonl", "w") as f:
        for k in range(3):
            from PIL import Image

            Image.fromarray(picture(200 + k, SIZE, SIZE)[0]).save(root / f"{k}.png")
            f.write(json.dumps({"file_name": f"{k}.png", "prompt": f"a cube on a table {k}",
                                "subjects": [{"name": "cube", "caption": "a red cube"}]}) + "\n")  # fmt: skip
    run = tmp_path / "run"
    done = run_cli("ingest", "folder", str(root), "--config", "ingest_tiny", "--set", f"models_dir={tiny_models}",
                   "--out", str(run), "--executor", "local", timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    samples = list(iter_final_samples(run))
    assert samples, done.stderr[-2000:]
    for s in samples:
        assert s.subjects[0]["identity"]["source"] == "repose" and s.meta["prompt"]["full"].startswith("a cube on a table")
        assert s.meta["source"]["kind"] == "ingested" and s.meta["source"]["id"].endswith(".png")


def test_a_folder_row_with_one_reference_keeps_it_and_reposes_the_other(tmp_path, tiny_models):
    """Per subject: the one with a reference keeps it, repose makes (and idcheck checks) the other's."""
    from PIL import Image

    from datagen.ingest.rows import cut_out
    from datagen.stages.source import square

    root = tmp_path / "pics"
    root.mkdir()
    left, right = np.zeros((SIZE, SIZE), bool), np.zeros((SIZE, SIZE), bool)
    left[8:40, 4:28], right[20:56, 36:60] = True, True
    ref, ref_m = picture(77, 40, 32)
    Image.fromarray(ref).save(root / "ref.png")
    Image.fromarray(ref_m.astype(np.uint8) * 255).save(root / "ref_mask.png")
    Image.fromarray(left.astype(np.uint8) * 255).save(root / "left.png")
    Image.fromarray(right.astype(np.uint8) * 255).save(root / "right.png")
    with open(root / "metadata.jsonl", "w") as f:
        for k in range(2):
            image = np.where(left[..., None], [200, 40, 40], np.where(right[..., None], [40, 200, 40], [20 * k, 60, 90]))
            Image.fromarray(image.astype(np.uint8)).save(root / f"{k}.png")
            subjects = [{"name": "red box", "mask": "left.png", "reference": "ref.png", "reference_mask": "ref_mask.png"},
                        {"name": "green box", "mask": "right.png"}]  # fmt: skip
            f.write(json.dumps({"file_name": f"{k}.png", "prompt": "two boxes", "subjects": subjects}) + "\n")
    run = tmp_path / "run"
    done = run_cli("ingest", "folder", str(root), "--config", "ingest_tiny", "--set", f"models_dir={tiny_models}",
                   "--set", "stages.idcheck.min_similarity=-1", "--out", str(run), "--executor", "local", timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    samples = list(iter_final_samples(run))
    assert len(samples) == 2, done.stderr[-2000:]
    for s in samples:
        red, green = s.subjects
        assert (red["name"], red["identity"]["source"], green["identity"]["source"]) == ("red box", "reference", "repose")
        assert np.array_equal(s.identities[0], square(cut_out(ref, ref_m), 32))  # the reference, untouched
        assert "idcheck" not in red and "similarity" in green["idcheck"]
        assert not (s.identities[1] == 0).all()  # Kontext's edit, not the stand-in
        assert "repose" in s.meta["generation"]["models"]
