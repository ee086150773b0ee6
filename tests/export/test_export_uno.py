"""datagen export uno: the run read back the way UNO's trainer reads it.

The reader below rebuilds bytedance/UNO's `uno/dataset/uno.py::FluxPairedDatasetV2`: `__init__`
(`json.load` of the labels file, `image_root` its folder), `__getitem__` (`image_path` or
`image_paths`, `prompt`, `image_tgt_path`, each image opened as `os.path.join(image_root, path)`
and converted to RGB) and the check of `collate_fn` (a batch's entries have as many references).
UNO-1M's own pair fields (`img_path1`, `img_path2`, `caption`) are checked as its labels have
them: paths relative to `images/`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datagen.errors import UserError
from datagen.export.common import ExportRequest, export_format
from datagen.export.uno import LABELS, UnoExporter
from datagen.final.read import iter_final_samples


class FluxPairedDatasetV2:
    """UNO's loader without its tensors: the entry's prompt, reference and target arrays."""

    def __init__(self, json_file: Path) -> None:
        self.image_root = os.path.dirname(json_file)
        with open(json_file, "rt") as f:
            self.data_dicts = json.load(f)

    def __len__(self) -> int:
        return len(self.data_dicts)

    def __getitem__(self, idx: int) -> dict:
        d = self.data_dicts[idx]
        paths = [d["image_path"]] if "image_path" in d else d["image_paths"]
        refs = [np.asarray(Image.open(os.path.join(self.image_root, p)).convert("RGB")) for p in paths]
        tgt = d.get("image_tgt_path")
        img = None if tgt is None else np.asarray(Image.open(os.path.join(self.image_root, tgt)).convert("RGB"))
        return {"img": img, "txt": d["prompt"], "ref_imgs": refs}

    def collates(self, batch: list[dict]) -> bool:
        """collate_fn's assert: every entry of a batch has the first one's number of references."""
        return all(len(b["ref_imgs"]) == len(batch[0]["ref_imgs"]) for b in batch)


def _export(run: Path, out: Path, entries: str = "pairs", **kw) -> str:
    return export_format(UnoExporter(entries), ExportRequest(run, out, **kw))


@pytest.fixture(scope="module")
def exported(finished_run, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("uno") / "uno"
    return out, _export(finished_run, out)


def test_one_entry_per_target_and_subject_reads_back_through_unos_loader(exported, finished_run):
    out, message = exported
    samples = list(iter_final_samples(finished_run))
    pairs = [(s, i) for s in samples for i in range(len(s.subjects))]
    dataset = FluxPairedDatasetV2(out / LABELS)
    assert len(dataset) == len(pairs) > 0 and message.startswith(f"wrote {len(pairs)} entries from {len(samples)} samples")
    items = [dataset[i] for i in range(len(dataset))]
    assert dataset.collates(items)  # one reference each: any batch size works
    for (sample, i), item, entry in zip(pairs, items, dataset.data_dicts, strict=True):
        assert entry["key"] == sample.key and entry["subject"] == i
        assert item["txt"] == sample.meta["prompt"]["full"]
        np.testing.assert_array_equal(item["img"], sample.image)
        np.testing.assert_array_equal(item["ref_imgs"][0], sample.identities[i])
        # UNO-1M's pair fields name the same two images, relative to images/
        assert [entry["img_path1"], entry["img_path2"]] == [str(Path(p).relative_to("images")) for p in (entry["image_paths"][0], entry["image_tgt_path"])]
        assert entry["caption"] == {"img_path1": sample.subjects[i]["caption"], "img_path2": item["txt"], "subject": [sample.subjects[i]["name"]]}
    card = (out / "README.md").read_text()
    assert "## Format: UNO labels json" in card and "FluxPairedDatasetV2" in card


def test_one_entry_per_sample(finished_run, tmp_path):
    samples = list(iter_final_samples(finished_run))
    _export(finished_run, tmp_path / "uno", entries="samples")
    dataset = FluxPairedDatasetV2(tmp_path / "uno" / LABELS)
    assert len(dataset) == len(samples)
    for sample, i in zip(samples, range(len(dataset)), strict=True):
        item = dataset[i]
        assert len(item["ref_imgs"]) == len(sample.subjects)
        for ref, identity in zip(item["ref_imgs"], sample.identities, strict=True):
            np.testing.assert_array_equal(ref, identity)
    assert "batch size 1" in (tmp_path / "uno" / "README.md").read_text()
    with pytest.raises(UserError, match=r"^--entries 'both': not one of pairs, samples$"):
        _export(finished_run, tmp_path / "bad", entries="both")


def test_stats_that_disagree_with_the_shards_fail_with_nothing_written(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    marker = run / "final" / "shard-000000.stats.json"
    stats = json.loads(marker.read_text())
    stats["samples_written"] += 1
    marker.write_text(json.dumps(stats))
    n = len(list(iter_final_samples(finished_run)))
    with pytest.raises(UserError, match=rf"^export: read {n} samples but the final shards' stats say {n + 1} "):
        _export(run, tmp_path / "uno")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no output, no staged leftovers
