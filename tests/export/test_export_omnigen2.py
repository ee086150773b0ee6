"""datagen export omnigen2: the run read back the way OmniGen2's trainer reads it.

The reader below rebuilds VectorSpaceLab/OmniGen2's
`omnigen2/dataset/omnigen2_train_dataset.py::OmniGen2TrainDataset`: `_collect_annotations` (the
data config's `data` list; a `.jsonl` path read with `datasets.load_dataset('json', ...)['train']`,
the datasets concatenated) and `process_item` (`instruction`, every `input_images` path and the
`output_image` path opened with `Image.open(path).convert("RGB")`), with the line layout of its
example `data_configs/train/example/ic/jsonls/0.jsonl` and the config layout of `ic.yml`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from PIL import Image

from datagen.errors import UserError
from datagen.export.common import ExportRequest, export_format
from datagen.export.omnigen2 import OmniGen2Exporter
from datagen.final.read import iter_final_samples

FIXTURE_V1 = Path(__file__).resolve().parents[1] / "fixtures" / "v1_run"
EXAMPLE_LINE_KEYS = {"task_type", "instruction", "input_images", "output_image"}  # ic/jsonls/0.jsonl


def collect_annotations(config_path: Path, cache: Path) -> datasets.Dataset:
    """OmniGen2TrainDataset._collect_annotations (a local cache dir instead of the user's)."""
    config = yaml.load(config_path.read_text(), Loader=yaml.FullLoader)
    parts = []
    for data in config["data"]:
        path = data["path"]
        if os.path.isdir(path):
            files = glob.glob(os.path.join(path, "**/*.jsonl"), recursive=True)
            parts.append(datasets.load_dataset("json", data_files=files, cache_dir=str(cache))["train"])
        else:
            assert os.path.splitext(path)[-1] in (".json", ".jsonl")
            parts.append(datasets.load_dataset("json", data_files=path, cache_dir=str(cache))["train"])
    return datasets.concatenate_datasets(parts)


def process_item(item: dict) -> dict:
    """OmniGen2TrainDataset.process_item, before its resizing: the instruction and the images."""
    assert item["instruction"] is not None
    inputs = [np.asarray(Image.open(p).convert("RGB")) for p in item["input_images"]] if item.get("input_images") else None
    return {"task_type": item["task_type"], "instruction": item["instruction"], "input_images": inputs,
            "output_image": np.asarray(Image.open(item["output_image"]).convert("RGB"))}  # fmt: skip


def _export(run: Path, out: Path, **kw) -> str:
    return export_format(OmniGen2Exporter(), ExportRequest(run, out, **kw))


@pytest.fixture(scope="module")
def exported(finished_run, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("omnigen2") / "omnigen2"
    return out, _export(finished_run, out)


def test_every_sample_reads_back_through_omnigen2s_loader(exported, finished_run, tmp_path):
    out, message = exported
    samples = list(iter_final_samples(finished_run))
    data = collect_annotations(out / "ic.yml", tmp_path / "cache")
    assert len(data) == len(samples) > 0
    assert message.startswith(f"wrote {len(samples)} lines, {sum(len(s.subjects) for s in samples)} input images")
    for sample, line in zip(samples, data, strict=True):
        assert EXAMPLE_LINE_KEYS <= set(line) and line["key"] == sample.key
        item = process_item(line)
        assert item["task_type"] == "ic"
        np.testing.assert_array_equal(item["output_image"], sample.image)
        assert len(item["input_images"]) == len(sample.subjects)
        for i, image in enumerate(item["input_images"]):
            np.testing.assert_array_equal(image, sample.identities[i])
            assert f"the {sample.subjects[i]['name']} in image {i + 1}" in item["instruction"]
        assert item["instruction"].endswith(sample.meta["prompt"]["full"])
        assert all(Path(p).is_absolute() for p in [*line["input_images"], line["output_image"]])


def test_config_and_card(exported):
    out, _ = exported
    config = yaml.safe_load((out / "ic.yml").read_text())
    assert config == {"data": [{"path": str(out.resolve() / "jsonls" / "0.jsonl"), "type": "ic", "ratio": 1.0}]}
    card = (out / "README.md").read_text()
    assert "## Format: OmniGen2 in-context jsonl" in card and "as OmniGen2 in-context jsonl" in card
    most = max(len(json.loads(line)["input_images"]) for line in (out / "jsonls" / "0.jsonl").read_text().splitlines())
    assert ("max_input_pixels" in card) == (most > 4)  # options/ft.yml lists four input counts


def test_limit_reads_the_first_samples_and_a_v1_run_exports(finished_run, tmp_path):
    out = tmp_path / "two"
    assert _export(finished_run, out, limit=2).startswith("wrote 2 lines")
    keys = [json.loads(line)["key"] for line in (out / "jsonls" / "0.jsonl").read_text().splitlines()]
    assert keys == [s.key for s in iter_final_samples(finished_run, 2)]
    with pytest.raises(UserError, match=r"^--limit 0: must be at least 1$"):
        _export(finished_run, tmp_path / "none", limit=0)
    v1 = shutil.copytree(FIXTURE_V1, tmp_path / "v1")
    _export(v1, tmp_path / "v1_out")
    data = collect_annotations(tmp_path / "v1_out" / "ic.yml", tmp_path / "cache")
    for sample, line in zip(iter_final_samples(v1), data, strict=True):  # /1: one identity PNG per subject, as stored
        assert [Path(p).read_bytes() for p in line["input_images"]] == [sample.identity_png(i) for i in range(len(sample.subjects))]
