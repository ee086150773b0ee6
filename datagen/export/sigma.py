"""`datagen export sigma`: the run as SIGMA's interleaved training data (Bagel-style parquet).

SIGMA (auihund/SIGMA, "Selective-Interleaved Generation with Multi-Attribute Tokens") post-trains
Bagel on rows of two columns, read by `data/interleave_datasets/edit_dataset_interleave.py`
(`SepPhotoTokenIterableDataset.parse_row`):
- `image_list`: the row's images as encoded bytes; the last one is the image to generate;
- `instruction_list`: `[[instruction]]`; the instruction interleaves text with `<image N>`
  placeholders (1-based, the regex of its `change_format`), each bound to its attribute by one of
  the tokens its tokenizer adds (`data/data_utils_token.py::add_special_tokens`), written as
  "<token> text <image N>" (the grouping its `use_mask_attn` flag documents).
Chunks are found through a `parquet_info.json` (`{chunk path: {"num_row_groups", "num_rows"}}`,
`data/interleave_datasets/interleave_t2i_dataset.py::ParquetStandardIterableDataset`), keyed by
the absolute path its loader joins from `data_dir` and the file name; workers split the data by
row group, so chunks hold small row groups like its example (`data/bagel_example/editing`: 100
rows in 10 groups).

Three of SIGMA's task families come from our samples, one directory of chunks each:
- compositional: the identities (`<subject>`) and the prompt -> the target;
- extraction: the target (`<select>`: pick one subject out of it, by name) -> that subject's identity;
- layout: the identities and a box layout image (`<layout>`) -> the target.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import yaml

from datagen.errors import UserError
from datagen.export.card import FormatCard
from datagen.export.common import FormatExporter, subjects_in, target_field
from datagen.export.tally import ExportTally
from datagen.final.read import FinalSample

FAMILIES = ("compositional", "extraction", "layout")
ROWS_PER_CHUNK = 100  # as data/bagel_example/editing/parquet_info: 100 rows ...
ROWS_PER_GROUP = 10  # ... in 10 row groups (the unit workers are given)
GROUP = "data_specialtoken"  # SIGMA's DATASET_REGISTRY key for SepPhotoTokenIterableDataset
# SIGMA's data/configs/all_specialtoken.yaml transforms, so the written data config runs as theirs.
TRANSFORMS = {
    "image_transform_args": {"image_stride": 16, "max_image_size": 1024, "min_image_size": 512},
    "vit_image_transform_args": {"image_stride": 14, "max_image_size": 518, "min_image_size": 224},
    "image_generate_transform_args": {"image_stride": 16, "max_image_size": 1024, "min_image_size": 512},
}
SUBJECT, SELECT, LAYOUT = "<subject>", "<select>", "<layout>"  # tokens of add_special_tokens
BOX_GRID = 1000  # boxes in the text are on a 0..1000 grid of the target, whatever its size
# Box colours of the layout image, named in the text that binds each box to its subject.
COLOURS = (
    ("red", (255, 0, 0)), ("green", (0, 255, 0)), ("blue", (0, 96, 255)), ("yellow", (255, 255, 0)),
    ("magenta", (255, 0, 255)), ("cyan", (0, 255, 255)), ("orange", (255, 128, 0)), ("purple", (144, 64, 255)),
    ("white", (255, 255, 255)), ("pink", (255, 128, 192)),
)  # fmt: skip


def image_tag(n: int) -> str:
    """The placeholder of the row's n-th image (1-based), as change_format's regex reads it."""
    return f"<image {n}>"


def grid_box(box: list[int], width: int, height: int) -> list[int]:
    """A pixel box [x0, y0, x1, y1] on the 0..BOX_GRID grid."""
    x0, y0, x1, y1 = box
    return [round(x0 * BOX_GRID / width), round(y0 * BOX_GRID / height), round(x1 * BOX_GRID / width), round(y1 * BOX_GRID / height)]


def layout_png(sample: FinalSample) -> bytes:
    """The target's size in black, each subject's 2D box outlined in its colour (COLOURS, in
    subject order): SIGMA's layout references are such line drawings on black."""
    from PIL import Image, ImageDraw

    width, height = sample.meta["width"], sample.meta["height"]
    canvas = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    line = max(2, min(width, height) // 128)
    for i, subject in enumerate(sample.subjects):
        x0, y0, x1, y1 = subject["box_2d"]
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=COLOURS[i % len(COLOURS)][1], width=line)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def _refs(names: list[str]) -> str:
    return " ".join(f"{SUBJECT} the {name} {image_tag(i + 1)}" for i, name in enumerate(names))


def compositional_row(sample: FinalSample, ids: list[bytes]) -> dict[str, Any]:
    names = [s["name"] for s in sample.subjects]
    text = f"{_refs(names)} Generate one image of all of them: {sample.meta['prompt']['full']}"
    return _row(sample, "compositional", text, [*ids, sample.members[target_field(sample)]])


def extraction_rows(sample: FinalSample, ids: list[bytes]) -> list[dict[str, Any]]:
    target = sample.members[target_field(sample)]
    rows = []
    for i, subject in enumerate(sample.subjects):
        name = subject["name"]
        text = f"{SELECT} the {name} {image_tag(1)} Extract the {name} from this image, on its own: {subject['caption']}"
        rows.append(_row(sample, "extraction", text, [target, ids[i]], subject=i))
    return rows


def layout_row(sample: FinalSample, ids: list[bytes]) -> dict[str, Any]:
    subjects, width, height = sample.subjects, sample.meta["width"], sample.meta["height"]
    names = [s["name"] for s in subjects]
    boxes = "; ".join(
        f"the {s['name']} in the {COLOURS[i % len(COLOURS)][0]} box {grid_box(s['box_2d'], width, height)}" for i, s in enumerate(subjects)
    )
    n = len(subjects)
    text = (
        f"{_refs(names)} {LAYOUT} boxes on a 0-{BOX_GRID} grid: {boxes} {image_tag(n + 1)} "
        f"Generate one image with each subject inside its box: {sample.meta['prompt']['full']}"
    )
    return _row(sample, "layout", text, [*ids, layout_png(sample), sample.members[target_field(sample)]])


def _row(sample: FinalSample, family: str, text: str, images: list[bytes], subject: int = -1) -> dict[str, Any]:
    return {"image_list": images, "instruction_list": [[text]], "data_prep_method": family, "key": sample.key, "subject": subject}


def row_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("image_list", pa.list_(pa.binary())),
            ("instruction_list", pa.list_(pa.list_(pa.string()))),
            ("data_prep_method", pa.string()),  # the family; SIGMA's inference script prints it
            ("key", pa.string()),  # the sample it came from
            ("subject", pa.int32()),  # extraction: the subject extracted; else -1
        ]
    )


class ChunkWriter:
    """Rows of one family into chunk_N.parquet files of ROWS_PER_CHUNK rows, written a row group
    (ROWS_PER_GROUP rows) at a time, so memory holds one group whatever the run's size."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.pending, self.chunks = folder, [], []
        self.writer, self.in_chunk = None, 0
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, row: dict[str, Any]) -> None:
        self.pending.append(row)
        if len(self.pending) == ROWS_PER_GROUP:
            self._write_group()

    def _write_group(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.chunks.append(self.folder / f"chunk_{len(self.chunks)}.parquet")
            self.writer = pq.ParquetWriter(self.chunks[-1], row_schema(), compression="none")  # images are compressed already
        self.writer.write_table(pa.Table.from_pylist(self.pending, schema=row_schema()), row_group_size=ROWS_PER_GROUP)
        self.in_chunk += len(self.pending)
        self.pending = []
        if self.in_chunk >= ROWS_PER_CHUNK:
            self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer, self.in_chunk = None, 0

    def flush(self) -> None:
        if self.pending:
            self._write_group()
        self._close()


class SigmaExporter(FormatExporter):
    name = "sigma"
    requires = ("pyarrow",)

    def start(self, tmp: Path, final: Path) -> None:
        super().start(tmp, final)
        self.writers = {family: ChunkWriter(tmp / family) for family in FAMILIES}
        self.rows = dict.fromkeys(FAMILIES, 0)

    def add(self, sample: FinalSample) -> None:
        ids = [sample.identity_png(i) for i in range(len(sample.subjects))]  # a /2 sample's are encoded: once
        for row in [compositional_row(sample, ids), *extraction_rows(sample, ids), layout_row(sample, ids)]:
            self.writers[row["data_prep_method"]].add(row)
            self.rows[row["data_prep_method"]] += 1

    def finish(self) -> dict[str, int]:
        import pyarrow.parquet as pq

        info = {}
        for family, writer in self.writers.items():
            writer.flush()
            for chunk in writer.chunks:
                meta = pq.ParquetFile(chunk).metadata
                info[str(self.final / family / chunk.name)] = {"num_row_groups": meta.num_row_groups, "num_rows": meta.num_rows}
        (self.tmp / "parquet_info.json").write_text(json.dumps(info, indent=1) + "\n")
        files = {f: len(w.chunks) for f, w in self.writers.items()}
        dataset_info = {GROUP: {f: {"data_dir": str(self.final / f), "num_files": files[f], "num_total_samples": self.rows[f],
                                    "parquet_info_path": str(self.final / "parquet_info.json")} for f in FAMILIES if files[f]}}  # fmt: skip
        (self.tmp / "dataset_info.json").write_text(json.dumps(dataset_info, indent=1) + "\n")
        used = [f for f in FAMILIES if files[f]]
        config = {GROUP: {"dataset_names": used, **TRANSFORMS, "is_mandatory": False, "num_used_data": [files[f] for f in used], "weight": 1}}
        (self.tmp / "data_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return {f"{family} rows": n for family, n in self.rows.items()}

    def expected(self, tally: ExportTally) -> dict[str, int]:
        return {"compositional rows": tally.rows, "extraction rows": subjects_in(tally), "layout rows": tally.rows}

    def read_back(self) -> dict[str, int]:
        """SIGMA's loader: each parquet_info entry's row groups, each row's instruction split
        at its <image N> (every one naming an image the row has), each image decodable."""
        import pyarrow.parquet as pq
        from PIL import Image

        found = dict.fromkeys((f"{f} rows" for f in FAMILIES), 0)
        for path, entry in json.loads((self.tmp / "parquet_info.json").read_text()).items():
            chunk = pq.ParquetFile(self.local(path))
            if (chunk.metadata.num_row_groups, chunk.metadata.num_rows) != (entry["num_row_groups"], entry["num_rows"]):
                raise UserError(f"export sigma: {path} does not hold the row groups parquet_info.json says")
            for group in range(entry["num_row_groups"]):
                for row in chunk.read_row_group(group).to_pylist():
                    _check_row(row, path)
                    found[f"{row['data_prep_method']} rows"] += 1
        for row in (r for w in self.writers.values() for r in _first_rows(w.chunks)):
            for data in row["image_list"]:
                Image.open(io.BytesIO(data)).verify()
        return found

    def card(self, entries: dict[str, int]) -> FormatCard:
        return FormatCard(
            title="SIGMA (Bagel interleaved parquet)",
            trainer="SIGMA (`auihund/SIGMA`, `train/finetune_specialtoken.py`): `SepPhotoTokenIterableDataset`, "
            "registered as `data_specialtoken`, reads these chunks through `parquet_info.json`.",
            body=_card_body(entries),
            tags=["sigma-bagel", "interleaved"],
        )


def _first_rows(chunks: list[Path]) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.ParquetFile(chunks[0]).read_row_group(0).to_pylist()[:1] if chunks else []


def _check_row(row: dict[str, Any], path: str) -> None:
    import re

    text, images = row["instruction_list"][0][0], row["image_list"]
    tags = [int(n) for n in re.findall(r"<image(?:[_\s]+)(\d+)>", text)]
    if not images or any(not 1 <= n < len(images) for n in tags):
        raise UserError(f"export sigma: {path}: row {row['key']} names images {tags} of its {len(images)}")


def _card_body(entries: dict[str, int]) -> str:
    rows = "\n".join(f"| `{kind.split()[0]}/` | {n} |" for kind, n in entries.items())
    return f"""| directory | rows |
| --- | ---: |
{rows}

Each `chunk_N.parquet` holds up to {ROWS_PER_CHUNK} rows in row groups of {ROWS_PER_GROUP}, with the columns
`image_list` (encoded images, the last one to generate), `instruction_list` (`[[instruction]]`),
`data_prep_method` (the family), `key` (the sample) and `subject` (extraction: which subject).
The instructions interleave text with `<image N>` and bind each image with SIGMA's tokens:
`{SUBJECT}` for an identity image (compositional, layout), `{SELECT}` for the image a named
subject is extracted from (extraction), `{LAYOUT}` for the box image (layout: boxes outlined on
black in the colours the text names, coordinates on a 0-{BOX_GRID} grid of the target).

To train: merge `dataset_info.json` into `DATASET_INFO` in SIGMA's `data/dataset_info.py` and pass
`--dataset_config_file data_config.yaml` (its transforms are SIGMA's `all_specialtoken.yaml`).
`parquet_info.json` is keyed by the chunks' absolute paths, as SIGMA's loader looks them up: if
you move this directory, run the export again (or rewrite those keys and `data_dir`). Workers
split the data by row group; set `num_used_data` (chunks, repeated as needed) so that every
rank and worker gets some."""
