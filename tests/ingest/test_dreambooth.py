"""The paper's DreamBooth protocol (issue K, part 6; SIGMA-GEN appendix A.10, Table 4): a
DreamBooth-layout folder becomes an evaluation run (each subject's first photograph the reference,
cut out by the segmenter; every other one a target), and `datagen eval dreambooth` judges on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_sources import picture

from datagen.config import load_config, resolve_config_path
from datagen.config.ingest import SourceConfig
from datagen.errors import UserError
from datagen.final.read import iter_final_samples
from datagen.ingest.dreambooth import DREAMBOOTH_CITATION, class_from_folder, read_classes
from datagen.ingest.rows import cut_out
from datagen.ingest.sources import open_source
from datagen.models.perception import Detection
from datagen.recipe.geometry import mask_box_2d
from datagen.stages.segment import SegmentStage
from datagen.stages.source import SourceStage
from datagen.store.inflight import Rejected, Sample
from helpers import run_cli

SIZE = 64
# subject folder -> photographs; "solo" has no target, "cat" is not in the classes table
SUBJECTS = {"bear_plushie": 2, "dog2": 3, "solo": 1, "cat": 2}
CLASSES = """Classes

subject_name,class
backpack,backpack
bear_plushie,stuffed animal
dog2,dog

Prompts

Object Prompts
"""


def photo(seed: int) -> np.ndarray:
    image, _ = picture(seed, SIZE, SIZE)
    return image


@pytest.fixture(scope="module")
def dreambooth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dreambooth") / "dataset"
    for k, (subject, count) in enumerate(SUBJECTS.items()):
        (root / subject).mkdir(parents=True)
        for j in range(count):  # written in reverse: the order is the file names', not the disk's
            n = count - 1 - j
            Image.fromarray(photo(10 * k + n)).save(root / subject / f"{n:02d}.png")
    (root / "prompts_and_classes.txt").write_text(CLASSES)
    return root


def open_db(path: Path, tmp_path: Path):
    return open_source(SourceConfig(kind="dreambooth", path=str(path)), cache_dir=tmp_path / "cache")


def test_rows_pair_each_target_with_its_subjects_first_photograph(dreambooth, tmp_path):
    source = open_db(dreambooth, tmp_path)
    ids = [source.row(i).id for i in range(len(source))]
    assert ids == ["bear_plushie/01.png", "cat/01.png", "dog2/01.png", "dog2/02.png"]  # solo: no target
    row = source.row(3)
    (subject,) = row.subjects
    assert subject.name == "dog" and subject.segment_reference and subject.mask is None and subject.caption is None
    k = list(SUBJECTS).index("dog2")
    assert np.array_equal(row.image, photo(10 * k + 2)) and np.array_equal(subject.reference, photo(10 * k))
    assert source.row(1).subjects[0].name == "cat"  # not in the table: the folder's name
    assert source.info.citation == DREAMBOOTH_CITATION and source.info.licence is None


def test_classes_table_and_folder_names():
    assert class_from_folder("dog2") == "dog" and class_from_folder("bear_plushie") == "bear plushie"
    assert class_from_folder("42") == "42"


def test_the_classes_table_stops_at_its_blank_line(tmp_path):
    (tmp_path / "prompts_and_classes.txt").write_text(CLASSES + "a,b\n")
    assert read_classes(tmp_path) == {"backpack": "backpack", "bear_plushie": "stuffed animal", "dog2": "dog"}
    assert read_classes(tmp_path / "absent") == {}


def test_a_photograph_outside_a_subject_folder_is_one_line(dreambooth, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(photo(1)).save(flat / "00.png")
    with pytest.raises(UserError, match="not a DreamBooth folder: 00.png is not in a subject folder"):
        open_db(flat, tmp_path)


class EllipseGrounder:
    """Grounding DINO's answer where it is known: the box of the photograph's ellipse (the
    pictures are a flat background and one ellipse), or nothing for the captions in `blind`."""

    def __init__(self, blind=()):
        self.blind, self.seen = set(blind), []

    def detect(self, images, captions):
        self.seen += [c for caps in captions for c in caps]
        return [[None if c in self.blind else Detection(tuple(map(float, mask_box_2d(ellipse(im)))), 0.9, 1.0) for c in caps]
                for im, caps in zip(images, captions, strict=True)]  # fmt: skip


class EllipseSegmenter:
    """SAM's answer where it is known: the ellipse inside the box."""

    def segment(self, images, boxes):
        return [(np.repeat(ellipse(im)[None], len(b), axis=0), np.full(len(b), 0.8)) for im, b in zip(images, boxes, strict=True)]


def ellipse(image: np.ndarray) -> np.ndarray:
    """The pixels that differ from the corner's colour."""
    return (image != image[0, 0]).any(axis=-1)


def through_segment(dreambooth, tmp_path, grounder):
    cfg = load_config(resolve_config_path("ingest_tiny"), ["source.kind=dreambooth", f"source.path={dreambooth}", "stages.caption.backend=source"])
    source = SourceStage(cfg)
    source.bind_run(tmp_path)
    samples = source.process_batch([Sample(index=i, shard=0, seed=i) for i in range(4)])
    for s in samples:
        s.subjects[0]["caption"] = s.subjects[0]["name"]  # what the caption stage does with backend source
    stage = SegmentStage(cfg)
    stage.grounder, stage.segmenter = grounder, EllipseSegmenter()
    return samples, stage.process_batch(samples)


def test_segment_cuts_each_subject_out_of_its_reference(dreambooth, tmp_path):
    grounder = EllipseGrounder()
    before, after = through_segment(dreambooth, tmp_path, grounder)
    assert grounder.seen[:4] == ["stuffed animal", "cat", "dog", "dog"]  # the references first, by class
    for s in after:
        assert isinstance(s, Sample)
        k = list(SUBJECTS).index(s.meta["source"]["id"].split("/")[0])
        reference = photo(10 * k)
        want = np.asarray(Image.fromarray(cut_out(reference, ellipse(reference))).resize((32, 32), Image.BICUBIC))
        assert np.array_equal(s.arrays["identity"][0], want)  # the masked crop, grey around it
        assert "references" not in s.arrays and "reference" not in s.subjects[0]
        assert s.subjects[0]["identity"]["source"] == "reference" and s.subjects[0]["segment"]["reference"]["mask_score"] == 0.8
        assert np.array_equal(s.arrays["masks"][0], ellipse(s.arrays["image"]))  # the target segmented as usual


def test_a_reference_that_grounds_nothing_rejects_its_sample(dreambooth, tmp_path):
    _, after = through_segment(dreambooth, tmp_path, EllipseGrounder(blind={"cat"}))
    assert [r.reason for r in after if isinstance(r, Rejected)] == ["reference_not_grounded"]
    assert sum(isinstance(r, Sample) for r in after) == 3


def test_eval_dreambooth_ingests_then_judges_beside_table_4(tmp_path, tiny_models, dreambooth):
    out = tmp_path / "eval_db"
    args = ["eval", "dreambooth", str(dreambooth), "--config", "eval_dreambooth_tiny", "--set", f"models_dir={tiny_models}",
            "--base", "--modes", "masks_depth", "--out", str(out), "--executor", "local"]  # fmt: skip
    done = run_cli(*args, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["data"] == str(out / "data")

    samples = list(iter_final_samples(out / "data"))
    assert samples, "no DreamBooth target survived"
    for s in samples:
        assert s.meta["generation"]["split"] == "eval" and s.meta["source"]["citation"] == DREAMBOOTH_CITATION
        (subject,) = s.subjects
        subject_folder = s.meta["source"]["id"].split("/")[0]
        assert subject["name"] == {"bear_plushie": "stuffed animal", "dog2": "dog", "cat": "cat"}[subject_folder]
        assert subject["identity"]["source"] == "reference"
        assert "reference" in subject["segment"]  # the reference was grounded and cut out, not taken whole
        assert not {"repose", "idcheck"} & set(s.meta["generation"]["models"])  # neither made anything here
        assert s.identities[0].shape == (32, 32, 3)
    assert run_cli("validate", str(out / "data")).returncode == 0

    results = json.loads((out / "results" / "results.json").read_text())
    assert results["paper_table"] == "table4" and results["samples"] == len(samples)
    assert set(results["rows"]["base"]["masks_depth"]["single"]) >= {"dino_i", "siglip_i", "siglip_t", "clip_iqa"}
    md = (out / "results" / "results.md").read_text()
    assert "Table 4: DreamBooth" in md and "82.84" in md and "## Multi subject" not in md

    again = run_cli(*args, timeout=600)  # both halves resume: nothing is redone
    assert again.returncode == 0, again.stderr[-2000:]
    assert "nothing to do" in again.stderr


def test_eval_dreambooth_refuses_a_training_split(tmp_path, tiny_models, dreambooth):
    args = ["eval", "dreambooth", str(dreambooth), "--config", "eval_dreambooth_tiny", "--set", f"models_dir={tiny_models}",
            "--set", "ingest.overrides=[]", "--base", "--out", str(tmp_path / "o"), "--executor", "local"]  # fmt: skip
    done = run_cli(*args)
    assert done.returncode != 0 and "run.split is train" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o" / "data").exists()
