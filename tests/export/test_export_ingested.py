"""datagen export hf on ingested runs: an ingested image keeps its own size, so one run's rows
differ in width and height (and in subject count), none of them the run config's 64x64. Every
row keeps its own sample's size and pixels, the card states the sizes as they are (no single
resolution) and lists the ingested source with its citation, and `datagen validate`, the contact
sheet, the browser and the report take the run as it is.

Two small sources are ingested on the tiny models, three rows each at 64x48, 48x64 and 80x80
(width x height): an AnyInsertion-layout parquet (one subject a row) and an image folder whose
rows have one or two subjects, both with their masks and references given."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import datasets
import huggingface_hub
import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from datagen.config import load_run_config
from datagen.export.card import MAX_SIZE_ROWS, _sizes
from datagen.export.hf import check_row, export_hf
from datagen.export.tally import ExportTally
from datagen.final.read import iter_final_samples
from datagen.final.validate import validate_run
from datagen.ingest.sources import ANYINSERTION_CITATION
from datagen.store.depth_png import LogRange, decode_depth_png

sys.path.insert(0, str(Path(__file__).parents[1] / "ingest"))
from test_sources import AI_FEATURES, img, picture  # noqa: E402  (the ingest tests' dataset builders)

SIZES = [(64, 48), (48, 64), (80, 80)]  # (width, height) of rows 0, 1, 2
FOLDER_SUBJECTS = [2, 1, 2]  # subjects of the folder's rows 0, 1, 2
SAMPLES_LINE = (
    "- **Samples:** 3 (3 image sizes, 48 to 80 px wide and 48 to 80 px high; each row's `width` and `height` give "
    "its own), from 1 of 1 final shards"
)


def _anyinsertion(root: Path) -> dict[str, dict]:
    """An AnyInsertion parquet with one row per size; what each row should become, by source id."""
    rows, want = [], {}
    for k, (w, h) in enumerate(SIZES):
        tar, tar_m = picture(k, h, w)
        ref, ref_m = picture(50 + k, 40, 32)
        rows.append(dict(id=f"train/object/{k}", split="train", category="object", main_label=f"cube{k}",
                         ref_image=img(ref), ref_mask=img(ref_m), tar_image=img(tar), tar_mask=img(tar_m)))  # fmt: skip
        want[f"train/object/{k}"] = {"size": (w, h), "image": tar, "masks": [tar_m]}
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=AI_FEATURES).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return want


def _folder(root: Path) -> dict[str, dict]:
    """An image folder with metadata.jsonl: rows of one or two subjects, masks and references given."""
    (root / "masks").mkdir(parents=True)
    want = {}
    with open(root / "metadata.jsonl", "w") as f:
        for k, ((w, h), n) in enumerate(zip(SIZES, FOLDER_SUBJECTS, strict=True)):
            image, ellipse = picture(300 + k, h, w)
            corner = np.zeros((h, w), bool)
            corner[: h // 3, : w // 3] = True
            image[corner] = (250, 250, 0)
            masks = [ellipse & ~corner, corner][:n]
            subjects = []
            for j, m in enumerate(masks):
                Image.fromarray(m.astype(np.uint8) * 255).save(root / "masks" / f"{k}_{j}.png")
                subjects.append({"name": f"thing{j}", "mask": f"masks/{k}_{j}.png", "reference": f"{k}.png",
                                 "reference_mask": f"masks/{k}_{j}.png"})  # fmt: skip
            Image.fromarray(image).save(root / f"{k}.png")
            f.write(json.dumps({"file_name": f"{k}.png", "prompt": f"scene {k}", "subjects": subjects}) + "\n")
            want[f"{k}.png"] = {"size": (w, h), "image": image, "masks": masks}
    return want


BUILDERS = {"anyinsertion": _anyinsertion, "folder": _folder}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def ingested(request, tiny_models, tmp_path_factory) -> dict:
    """One source ingested with the tiny config and exported once (read it, never write into it)."""
    kind = request.param
    root = tmp_path_factory.mktemp(f"ingested-{kind}")
    source = root / "source"
    want = BUILDERS[kind](source)
    run = root / "run"
    done = run_cli("ingest", kind, str(source), "--config", "ingest_tiny", "--set", f"models_dir={tiny_models}",
                   "--out", str(run), "--executor", "local", timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = root / "hf"
    message = export_hf(run, out, overwrite=False, push_to_hub=None, private=False, say=lambda _: None)
    return {"kind": kind, "source": source, "want": want, "run": run, "out": out, "message": message}


@pytest.fixture(scope="module")
def dataset(ingested):
    return datasets.load_from_disk(str(ingested["out"]))


def test_the_run_really_mixes_sizes(ingested):
    cfg = load_run_config(ingested["run"])
    samples = list(iter_final_samples(ingested["run"]))
    assert len(samples) == len(SIZES)  # every row kept: the checks below cover each size
    sizes = {(s.meta["width"], s.meta["height"]) for s in samples}
    assert sizes == set(SIZES) and (cfg.run.width, cfg.run.height) not in sizes


def test_every_row_keeps_its_own_size_and_pixels(ingested, dataset):
    """Image, instance map and depth are the row's own width x height and hold the source's
    pixels and masks; the identities are stacked at the row's own subject count."""
    assert ingested["message"].startswith(f"wrote {len(SIZES)} rows")
    depth_png = dataset.cast_column("depth", datasets.Image(decode=False))["depth"]
    samples = {s.key: s for s in iter_final_samples(ingested["run"])}
    seen = set()
    for row, stored in zip(dataset, depth_png, strict=True):
        want = ingested["want"][row["source"]["id"]]
        seen.add(row["source"]["id"])
        (w, h), n = want["size"], len(want["masks"])
        assert (row["width"], row["height"]) == (w, h)
        assert row["source"]["kind"] == "ingested" and len(row["subjects"]) == n
        image = np.asarray(row["image"])
        assert image.shape == (h, w, 3)
        np.testing.assert_array_equal(image, want["image"])
        instances = np.asarray(row["instances"])
        assert row["instances"].mode == "L" and instances.shape == (h, w)
        np.testing.assert_array_equal(instances[None] == np.arange(1, n + 1)[:, None, None], np.stack(want["masks"]))
        assert row["depth"].mode in ("I;16", "I") and np.asarray(row["depth"]).shape == (h, w)
        info, sample = row["depth_info"], samples[row["key"]]
        depth = decode_depth_png(stored["bytes"], LogRange(info["log_min"], info["log_max"]))
        assert depth.shape == (h, w) == sample.depth.shape
        known = np.isfinite(sample.depth) & (sample.depth > 0)
        np.testing.assert_array_equal(np.isnan(depth), ~known)
        ident = row["subjects"][0]["identity"]
        assert np.asarray(row["identities"]).shape == (n * ident["height"], ident["width"], 3)
        assert {s["identity"]["source"] for s in row["subjects"]} == {"reference"}
        assert check_row(row) is None
    assert seen == set(ingested["want"])


def test_check_row_holds_the_image_to_the_rows_own_size(dataset):
    row = dataset[0]
    w, h = row["width"], row["height"]
    assert check_row(row) is None
    assert check_row({**row, "image": Image.new("RGB", (w + 1, h))}) == f"image is {(w + 1, h)}, expected {(w, h)}"
    other = Image.new("L", (h, w)) if w != h else Image.new("L", (w, h + 1))
    assert check_row({**row, "instances": other}).startswith("instances is mode L")


def test_card_states_the_sizes_as_they_are(ingested):
    card = huggingface_hub.DatasetCard.load(ingested["out"] / "README.md")
    text = card.text
    assert SAMPLES_LINE in text
    assert "**Samples:** 3 (64x64)" not in text  # the run config's size, which no row has
    sizes = re.search(r"## Image sizes\n(.*?)\n## ", text, re.S)
    assert sizes, text
    table = [line for line in sizes.group(1).splitlines() if line.startswith("| ") and "---" not in line]
    assert sorted(table[1:]) == sorted(f"| {w}x{h} | 1 |" for w, h in SIZES), table
    assert "the run config's `run.width` x `run.height` (64x64) applies to generated images only" in " ".join(text.split())
    assert "image size in pixels: `image`, `instances` and `depth` are `width` x `height` (rows differ in size)" in text
    assert "synthetic" not in card.data.tags  # every row is from an existing dataset


def test_card_counts_subjects_and_lists_the_source(ingested, dataset):
    text = huggingface_hub.DatasetCard.load(ingested["out"] / "README.md").text
    kept = Counter(len(s) for s in dataset["subjects"])
    assert kept == Counter(len(w["masks"]) for w in ingested["want"].values())
    subjects = text.split("## Subjects per sample", 1)[1].split("## Pipeline", 1)[0]
    assert "| subjects | kept |" in subjects and "requested" not in subjects.split("The run had no prompts stage")[0]
    for n, count in kept.items():
        assert f"| {n} | {count} |" in subjects
    lo, hi = min(kept), max(kept)
    of = f"{lo} subject" if lo == hi == 1 else f"{lo} to {hi} subjects"
    assert f"Each row is one image of {of} ingested from an existing dataset" in " ".join(text.split())
    citation = ANYINSERTION_CITATION if ingested["kind"] == "anyinsertion" else "none given"
    assert f"| {ingested['source']} | {len(SIZES)} | not stated by the source | {citation} |" in text


def test_validate_passes(ingested):
    run = ingested["run"]
    checked, problems = validate_run(run, load_run_config(run))
    assert (checked, problems) == (len(SIZES), [])


def test_viewers_draw_each_sample_at_its_own_size(ingested, tmp_path):
    """The contact sheet, the one-sample page, the browser and the report's figures read a
    mixed-size run (the browser states each sample's own size)."""
    from datagen.views.browse import write_browser
    from datagen.views.contact_sheet import write_contact_sheet
    from datagen.views.report import build_report

    run = ingested["run"]
    samples = list(iter_final_samples(run))
    sheet = write_contact_sheet(run, tmp_path / "sheet.png", n=8, key=None, overwrite=False)
    assert Image.open(sheet).size[0] > 0
    for s in samples:
        page = write_contact_sheet(run, tmp_path / f"{s.key}.png", n=1, key=s.key, overwrite=False)
        assert Image.open(page).size[0] > 0
    out = write_browser(run, tmp_path / "browse").parent  # returns its index.html
    for s in samples:
        w, h = s.meta["width"], s.meta["height"]
        html = (out / "samples" / f"{s.key}.html").read_text()
        assert f"{w}&times;{h} px" in html
        assert Image.open(out / "samples" / s.key / "image.png").size == (w, h)
    report = build_report(run)
    assert report["kept"] == len(SIZES)
    assert report["box_area"]["box_area_frac"]["n"] == sum(len(s.subjects) for s in samples)


def test_size_summary_of_one_size_and_of_many():
    class Run:  # _sizes reads only the config's run.width and run.height
        width, height = 64, 64

    class Cfg:
        run = Run()

    one = _sizes(Cfg(), ExportTally(rows=5, sizes=Counter({(32, 24): 5}), kinds=Counter(ingested=5)))
    assert (one["summary"], one["varied"], one["rows"]) == ("32x24", False, [])
    many = Counter({(10 + i, 20): 1 for i in range(MAX_SIZE_ROWS + 3)}) + Counter({(50, 7): 4})
    out = _sizes(Cfg(), ExportTally(rows=sum(many.values()), sizes=many, kinds=Counter(ingested=1)))
    assert out["varied"] and out["summary"].startswith(f"{len(many)} image sizes, 10 to 50 px wide and 7 to 20 px high")
    assert out["rows"][0] == {"size": "50x7", "samples": 4} and len(out["rows"]) == MAX_SIZE_ROWS
    assert out["more"] == {"sizes": len(many) - MAX_SIZE_ROWS, "samples": len(many) - MAX_SIZE_ROWS}
