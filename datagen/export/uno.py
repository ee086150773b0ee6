"""`datagen export uno`: the run as UNO training data (bytedance/UNO).

UNO trains from one labels json (`train.py`'s `train_data_json`), a list of entries read by
`uno/dataset/uno.py::FluxPairedDatasetV2`: `prompt`, `image_paths` (the references, or one
`image_path`) and `image_tgt_path` (the image to generate), paths relative to the json's own
folder. UNO-1M ships the same way: `images/` beside its labels json, each entry a pair of images
of one subject (`img_path1`, `img_path2`) with a `caption` per image and the `subject` words.

Entries (`--entries`):
- `pairs` (default): one per (target, subject), as UNO-1M's pairs: the subject's identity image
  is the reference, the target the image to generate. FluxPairedDatasetV2's `collate_fn` batches
  only entries with the same number of references, which pairs always have.
- `samples`: one per sample, every identity image a reference (UNO's multi-subject mode). Entries
  then differ in their reference count: train with batch size 1 (UNO's default).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datagen.errors import UserError
from datagen.export.card import FormatCard
from datagen.export.common import FormatExporter, missing_files, subjects_in, write_sample_images
from datagen.export.tally import ExportTally
from datagen.final.read import FinalSample

LABELS = "uno_labels.json"
IMAGES = "images"  # common.image_dir puts every image under it
ENTRIES = ("pairs", "samples")


def _in_images(path: str) -> str:
    return str(Path(path).relative_to(IMAGES))


def pair_entry(sample: FinalSample, i: int, identity: str, target: str) -> dict[str, Any]:
    """FluxPairedDatasetV2's fields, and UNO-1M's pair fields for the same two images."""
    subject, prompt = sample.subjects[i], sample.meta["prompt"]["full"]
    return {
        "prompt": prompt,
        "image_paths": [identity],
        "image_tgt_path": target,
        "img_path1": _in_images(identity),  # UNO-1M's paths are relative to its images/ folder
        "img_path2": _in_images(target),
        "caption": {"img_path1": subject["caption"], "img_path2": prompt, "subject": [subject["name"]]},
        "key": sample.key,
        "subject": i,
    }


def sample_entry(sample: FinalSample, identities: list[str], target: str) -> dict[str, Any]:
    return {
        "prompt": sample.meta["prompt"]["full"],
        "image_paths": identities,
        "image_tgt_path": target,
        "caption": {"subject": [s["name"] for s in sample.subjects]},
        "key": sample.key,
    }


class UnoExporter(FormatExporter):
    name = "uno"

    def __init__(self, entries: str = "pairs") -> None:
        if entries not in ENTRIES:
            raise UserError(f"--entries {entries!r}: not one of {', '.join(ENTRIES)}")
        self.per = entries

    def start(self, tmp: Path, final: Path) -> None:
        super().start(tmp, final)
        self.entries: list[dict[str, Any]] = []
        self.refs: dict[int, int] = {}  # references per entry -> entries

    def add(self, sample: FinalSample) -> None:
        target, identities = write_sample_images(sample, self.tmp)
        if self.per == "pairs":
            new = [pair_entry(sample, i, identity, target) for i, identity in enumerate(identities)]
        else:
            new = [sample_entry(sample, identities, target)]
        for entry in new:
            self.refs[len(entry["image_paths"])] = self.refs.get(len(entry["image_paths"]), 0) + 1
        self.entries += new

    def finish(self) -> dict[str, int]:
        # One json list, as FluxPairedDatasetV2 json.loads it whole (UNO-1M's labels are one list too).
        (self.tmp / LABELS).write_text(json.dumps(self.entries, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return {"entries": len(self.entries)}

    def expected(self, tally: ExportTally) -> dict[str, int]:
        return {"entries": subjects_in(tally) if self.per == "pairs" else tally.rows}

    def read_back(self) -> dict[str, int]:
        """FluxPairedDatasetV2: the json list; each entry's references (`image_path` or
        `image_paths`), prompt and target, relative to the json's folder (which must exist)."""
        labels = self.tmp / LABELS
        entries = json.loads(labels.read_text(encoding="utf-8"))
        for n, entry in enumerate(entries):
            refs = [entry["image_path"]] if "image_path" in entry else entry["image_paths"]
            gone = missing_files([*refs, entry["image_tgt_path"]], labels.parent)
            if not refs or not entry["prompt"] or gone:
                raise UserError(f"export uno: entry {n} of {LABELS} does not read back (missing: {gone})")
        return {"entries": len(entries)}

    def card(self, entries: dict[str, int]) -> FormatCard:
        per = (
            "one per (target, subject): the subject's identity image is the reference (`image_paths`, one), the target "
            "`image_tgt_path`; UNO-1M's `img_path1` (reference), `img_path2` (target) and `caption` "
            "(`img_path1`: the subject's caption, `img_path2`: the prompt, `subject`: its name) say the same, "
            "relative to `images/` as UNO-1M's are (there is no `vlm_filter_cot`: datagen scores no pair)"
            if self.per == "pairs" else
            "one per sample: every identity image is a reference (`image_paths`, in subject order), the target "
            "`image_tgt_path`; entries differ in reference count ("
            + ", ".join(f"{k}: {v} entries" for k, v in sorted(self.refs.items()))
            + "), so train with batch size 1 (UNO's default), as `collate_fn` batches only equal counts"
        )  # fmt: skip
        return FormatCard(
            title="UNO labels json",
            trainer="UNO (`bytedance/UNO`, `train.py --train_data_json uno_labels.json`): `FluxPairedDatasetV2`.",
            body=f"""- `{LABELS}`: {entries['entries']} entries, {per}. Every entry has `prompt` (the sample's
  prompt), `key` (the sample) and paths relative to this directory, as UNO reads them.
- `images/<shard>/`: `<key>.png` or `.jpg` (the target, the shard's bytes) and `<key>_id_NN.png`
  (identity images).

UNO's README sets the reference's long side to 512 for one subject and 320 for several
(`resolution_ref`).""",
            tags=["uno", "subject-driven-generation"],
        )
