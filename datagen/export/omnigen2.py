"""`datagen export omnigen2`: the run as OmniGen2 in-context ("ic") training data.

OmniGen2 (VectorSpaceLab/OmniGen2) fine-tunes from a data config YAML (`options/ft.yml`'s
`data.data_path`) that lists jsonl files with a type and a ratio, as its example
`data_configs/train/example/ic/ic.yml` does. Each jsonl line is one sample
(`data_configs/train/example/ic/jsonls/0.jsonl`): `task_type`, `instruction`, `input_images`
(the in-context references) and `output_image`, image paths that
`omnigen2/dataset/omnigen2_train_dataset.py::OmniGen2TrainDataset.process_item` opens as they
are: absolute here, so the config works from any working directory.

One line per sample: the subjects' identity images are the inputs, in subject order, the target
is the output, and the instruction names each subject by its image ("image 1", ...), as
OmniGen2's in-context examples do (`example_in_context_generation.sh`).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from datagen.errors import UserError
from datagen.export.card import FormatCard
from datagen.export.common import FormatExporter, missing_files, subjects_in, write_sample_images
from datagen.export.tally import ExportTally
from datagen.final.read import FinalSample

TASK_TYPE = "ic"  # OmniGen2's in-context generation type
JSONL = "jsonls/0.jsonl"
CONFIG = "ic.yml"
# OmniGen2's options/ft.yml allows this many input images (max_input_pixels has one entry per
# input count, and the loader indexes it by the count); a sample with more needs a longer list.
FT_MAX_INPUTS = 4


def _ordinal_list(names: list[str]) -> str:
    parts = [f"the {name} in image {i + 1}" for i, name in enumerate(names)]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" and {parts[-1]}"


def instruction(sample: FinalSample) -> str:
    names = [s["name"] for s in sample.subjects]
    return f"Generate an image with {_ordinal_list(names)}. {sample.meta['prompt']['full']}"


class OmniGen2Exporter(FormatExporter):
    name = "omnigen2"

    def start(self, tmp: Path, final: Path) -> None:
        super().start(tmp, final)
        (tmp / JSONL).parent.mkdir(parents=True)
        self.jsonl = (tmp / JSONL).open("w", encoding="utf-8")
        self.lines, self.inputs, self.most = 0, 0, 0

    def add(self, sample: FinalSample) -> None:
        target, identities = write_sample_images(sample, self.tmp)
        line = {
            "task_type": TASK_TYPE,
            "instruction": instruction(sample),
            "input_images": [str(self.final / p) for p in identities],
            "output_image": str(self.final / target),
            "key": sample.key,  # not read by OmniGen2: the sample each line came from
        }
        self.jsonl.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.lines += 1
        self.inputs += len(identities)
        self.most = max(self.most, len(identities))

    def finish(self) -> dict[str, int]:
        self.jsonl.close()
        # As ic.yml: a list of jsonl files, each with its type and sampling ratio.
        config = {"data": [{"path": str(self.final / JSONL), "type": TASK_TYPE, "ratio": 1.0}]}
        (self.tmp / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
        return {"lines": self.lines, "input images": self.inputs}

    def expected(self, tally: ExportTally) -> dict[str, int]:
        return {"lines": tally.rows, "input images": subjects_in(tally)}

    def read_back(self) -> dict[str, int]:
        """OmniGen2's `_collect_annotations`: the config's jsonl paths; `process_item`: every
        line's instruction, input images and output image (which must exist)."""
        config = yaml.safe_load((self.tmp / CONFIG).read_text())
        lines = inputs = 0
        for entry in config["data"]:
            for text in self.local(entry["path"]).read_text(encoding="utf-8").splitlines():
                item = json.loads(text)
                paths = [*item["input_images"], item["output_image"]]
                gone = missing_files([str(Path(p).relative_to(self.final)) for p in paths], self.tmp)
                if not item["instruction"] or item["task_type"] != entry["type"] or gone:
                    raise UserError(f"export omnigen2: line {lines + 1} of {entry['path']} does not read back (missing: {gone})")
                lines += 1
                inputs += len(item["input_images"])
        return {"lines": lines, "input images": inputs}

    def card(self, entries: dict[str, int]) -> FormatCard:
        more = (
            f" Samples here have up to {self.most} input images: list as many entries in `data.max_input_pixels` "
            f"(its example has {FT_MAX_INPUTS}; OmniGen2 indexes it by the input count), e.g. `262144` for each one beyond."
            if self.most > FT_MAX_INPUTS else ""
        )  # fmt: skip
        return FormatCard(
            title="OmniGen2 in-context jsonl",
            trainer="OmniGen2 (`VectorSpaceLab/OmniGen2`, `train.py` with `options/ft.yml` or `ft_lora.yml`): "
            "`OmniGen2TrainDataset`, task type `ic`.",
            body=f"""- `{CONFIG}`: the data config; set `data.data_path` in OmniGen2's `options/ft.yml` to its path
  (or list it in a mix config beside your other data, with a `ratio`).
- `{JSONL}`: {entries['lines']} lines, one per sample: `task_type` `{TASK_TYPE}`, `instruction`,
  `input_images` (the identity images, subject order), `output_image` (the target), and `key`.
- `images/<shard>/`: `<key>.png` or `.jpg` (the target, the shard's bytes) and `<key>_id_NN.png`
  ({entries['input images']} identity images).

Image paths are absolute, as OmniGen2 opens them: if you move this directory, run the export
again (or rewrite the paths).{more}""",
            tags=["omnigen2", "in-context-generation"],
        )
