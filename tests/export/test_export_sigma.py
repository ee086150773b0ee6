"""datagen export sigma: the run read back the way SIGMA's trainer reads it.

The reader below rebuilds, step for step, the loader of auihund/SIGMA (its example parquet chunks
are not in its repository, only their `parquet_info` index, so the rows are checked against the
loader's code rather than against example files):
- `data/dataset_base.py::PackedDataset.build_datasets`: a group's `dataset_names` looked up in
  `DATASET_INFO`, their `data_dir` and `parquet_info_path` (the json's dicts merged);
- `data/parquet_utils.py::get_parquet_data_paths`: the `.parquet` files listed in each `data_dir`,
  joined to it, repeated up to `num_used_data`;
- `data/interleave_datasets/interleave_t2i_dataset.py::ParquetStandardIterableDataset`:
  `get_data_paths` keeps the files `parquet_info` names, one item per row group, and `__iter__`
  reads each with `pq.ParquetFile(f).read_row_group(i).to_pandas()`, row by row;
- `data/interleave_datasets/edit_dataset_interleave.py::SepPhotoTokenIterableDataset.parse_row`:
  `instruction_list[0][0]` split by `change_format` at `<image N>`, each image decoded with
  `pil_img2rgb`, the last image the generation target (added if no placeholder names it);
- `data/data_utils_token.py::add_special_tokens`: the attribute tokens the tokenizer knows.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import run_cli
from PIL import Image

from datagen.export.common import ExportRequest, export_format
from datagen.export.sigma import COLOURS, GROUP, ROWS_PER_GROUP, SigmaExporter
from datagen.final.read import iter_final_samples

# data/data_utils_token.py::add_special_tokens: the tokens SIGMA adds to Bagel's Qwen2 tokenizer.
SIGMA_TOKENS = {"<style>", "<subject>", "<id>", "<icon>", "<text>", "<pose>", "<layout>", "<perspective>", "<lighting>",
                "<background>", "<environment>", "<emotion>", "<clothing>", "<texture>", "<select>"}  # fmt: skip
IMAGE_RE = re.compile(r"<image(?:[_\s]+)(\d+)>")  # change_format's pattern


def change_format(text: str) -> list[dict]:
    """SepPhotoTokenIterableDataset.change_format: text parts and 0-based image indexes, in order."""
    elements, last = [], 0
    for match in IMAGE_RE.finditer(text):
        start, end = match.span()
        if text[last:start].strip():
            elements.append({"type": "text", "text": text[last:start].strip()})
        elements.append({"type": "image", "index": int(match.group(1)) - 1})
        last = end
    if text[last:].strip():
        elements.append({"type": "text", "text": text[last:].strip()})
    return elements


def pil_img2rgb(image: Image.Image) -> Image.Image:
    """data/data_utils.py::pil_img2rgb: transparency on white, else RGB."""
    if image.mode == "RGBA" or image.info.get("transparency") is not None:
        image = image.convert("RGBA")
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image, mask=image.split()[3])
        return white
    return image.convert("RGB")


def parse_row(row) -> list[tuple]:
    """SepPhotoTokenIterableDataset.parse_row, with _add_text/_add_image recording what they get:
    ("text", text) and ("image", index, need_loss, need_vae, need_vit, generate, array)."""
    instruction = row["instruction_list"][0][0]
    images = [pil_img2rgb(Image.open(io.BytesIO(data))) for data in row["image_list"]]
    plan, used = [], set()
    for item in change_format(instruction):
        if item["type"] == "text":
            plan.append(("text", item["text"]))
            continue
        idx = item["index"]
        if idx >= len(images):
            continue  # the loader warns and skips it
        used.add(idx)
        last = idx == len(images) - 1
        plan.append(("image", idx, last, not last, not last, last, np.asarray(images[idx])))
    if len(images) - 1 not in used:
        plan.append(("image", len(images) - 1, True, False, False, True, np.asarray(images[-1])))
    return plan


def sigma_rows(out: Path) -> list[tuple[str, dict, list[tuple]]]:
    """Every row SIGMA's trainer would see with the export's data_config.yaml and dataset_info.json."""
    config = yaml.safe_load((out / "data_config.yaml").read_text())[GROUP]
    info = json.loads((out / "dataset_info.json").read_text())[GROUP]
    data_dirs, parquet_info = [], {}
    for name in config["dataset_names"]:
        meta = info[name]
        data_dirs.append(meta["data_dir"])
        parquet_info.update(json.loads(Path(meta["parquet_info_path"]).read_text()))
    row_groups = []
    for data_dir, num_used in zip(data_dirs, config["num_used_data"], strict=True):
        paths = [os.path.join(data_dir, name) for name in os.listdir(data_dir) if name.endswith(".parquet")]
        paths = (paths * (num_used // len(paths) + 1))[:num_used]
        row_groups += [(p, rg) for p in paths if p in parquet_info for rg in range(parquet_info[p]["num_row_groups"])]
    rows = []
    for path, rg in sorted(row_groups):
        with open(path, "rb") as f:
            df = pq.ParquetFile(f).read_row_group(rg).to_pandas()
        for _, row in df.iterrows():
            rows.append((path, row, parse_row(row)))
    return rows


@pytest.fixture(scope="module")
def exported(finished_run, tmp_path_factory) -> tuple[Path, str, list]:
    out = tmp_path_factory.mktemp("sigma") / "sigma"
    message = export_format(SigmaExporter(), ExportRequest(finished_run, out))
    return out, message, sigma_rows(out)


def test_every_family_reads_back_through_sigmas_loader(exported, finished_run):
    out, message, rows = exported
    samples = {s.key: s for s in iter_final_samples(finished_run)}
    subjects = sum(len(s.subjects) for s in samples.values())
    families = Counter(row["data_prep_method"] for _, row, _ in rows)
    assert families == {"compositional": len(samples), "extraction": subjects, "layout": len(samples)}
    assert message.startswith(f"wrote {len(samples)} compositional rows, {subjects} extraction rows, {len(samples)} layout rows")
    for path, row, plan in rows:
        sample = samples[row["key"]]
        n, text = len(sample.subjects), row["instruction_list"][0][0]
        assert set(re.findall(r"<[a-z_]+>", text)) <= SIGMA_TOKENS, text
        images = [step for step in plan if step[0] == "image"]
        target = images[-1]
        assert target[2:6] == (True, False, False, True)  # the loss image, generated, not a condition
        assert all(step[2:6] == (False, True, True, False) for step in images[:-1])  # conditions: VAE and ViT
        if row["data_prep_method"] == "extraction":
            i = int(row["subject"])
            assert text.startswith(f"<select> the {sample.subjects[i]['name']} <image 1>")
            np.testing.assert_array_equal(images[0][6], sample.image)
            np.testing.assert_array_equal(target[6], sample.identities[i])
            continue
        np.testing.assert_array_equal(target[6], sample.image)
        assert text.count("<subject>") == n
        for i in range(n):  # "<subject> the NAME <image i+1>": each identity bound to its subject
            assert f"<subject> the {sample.subjects[i]['name']} <image {i + 1}>" in text
            np.testing.assert_array_equal(images[i][6], sample.identities[i])
        assert sample.meta["prompt"]["full"] in text
        if row["data_prep_method"] == "layout":
            assert f"<image {n + 1}>" in text.split("<layout>")[1]
            layout = images[n][6]
            assert layout.shape == sample.image.shape and layout[..., :].max() > 0
            last = sample.subjects[-1]  # drawn last, so no other box covers its outline
            colour, rgb = COLOURS[(n - 1) % len(COLOURS)]
            x0, y0, _, _ = last["box_2d"]
            assert tuple(layout[y0, x0]) == rgb, (row["key"], last["box_2d"], tuple(layout[y0, x0]))
            assert f"the {last['name']} in the {colour} box" in text


def test_chunks_and_index_follow_bagels_example(exported):
    out, _, rows = exported
    info = json.loads((out / "parquet_info.json").read_text())
    assert info and all(Path(p).is_absolute() and Path(p).parent.parent == out.resolve() for p in info)
    for path, entry in info.items():
        meta = pq.ParquetFile(path).metadata
        assert (meta.num_row_groups, meta.num_rows) == (entry["num_row_groups"], entry["num_rows"])
        assert entry["num_row_groups"] == -(-entry["num_rows"] // ROWS_PER_GROUP)
        assert [f.name for f in pq.ParquetFile(path).schema_arrow][:2] == ["image_list", "instruction_list"]
    assert sum(e["num_rows"] for e in info.values()) == len(rows)
    config = yaml.safe_load((out / "data_config.yaml").read_text())[GROUP]
    assert config["dataset_names"] == ["compositional", "extraction", "layout"] and config["weight"] == 1


def test_card_names_the_format(exported):
    out, _, rows = exported
    card = (out / "README.md").read_text()
    assert "pretty_name: small (sigma-set/2) as SIGMA (Bagel interleaved parquet)" in card
    assert "## Format: SIGMA (Bagel interleaved parquet)" in card and "SepPhotoTokenIterableDataset" in card
    assert "## Pipeline" in card and "## Licence" in card  # the run's card ...
    assert "## Columns" not in card and "load_from_disk" not in card  # ... without the Arrow rows' sections


def test_cli_guards_the_output_and_the_run(finished_run, tmp_path):
    out = tmp_path / "sigma"
    out.mkdir()
    done = run_cli("export", "sigma", str(finished_run), "--out", str(out))
    assert done.returncode == 2 and done.stderr.strip() == f"datagen: error: --out {out}: already exists (pass --overwrite to replace it)"
    done = run_cli("export", "sigma", str(finished_run), "--out", str(finished_run), "--overwrite")
    assert done.returncode == 2 and "would replace the run" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = run_cli("export", "sigma", str(finished_run), "--out", str(tmp_path / "one"), "--limit", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote 1 compositional rows, ") and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
