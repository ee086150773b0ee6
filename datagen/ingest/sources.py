"""The four kinds of source `datagen ingest` reads, and `open_source`: row i of a source (in a
fixed order) becomes sample i. Layouts: docs/ingest_sources.md.

- anyinsertion: target `tar_image`, its mask `tar_mask`, name `main_label`, identity `ref_image`
  cut out with `ref_mask`, id `id`. One subject.
- musar: target `tgt_img`, `prompt`, two subjects whose references `cond_img_0`, `cond_img_1`
  are already single-subject images (no masks, no names: later stages find them).
- folder: an image folder (`datasets` imagefolder) whose metadata.jsonl gives per image
  `file_name`, `prompt` and `subjects` [{name, caption, mask, reference, reference_mask}], the
  paths relative to the folder. Rows in file-name order.
- hf: any table, with `columns` naming which column is what.
- dreambooth: a folder per subject; its first image is the reference, each other one a row
  (datagen.ingest.dreambooth, the paper's Table 4 protocol).

`open_source` refuses a source that is not what its kind says (in one line); `row(i)` refuses
one row with BadRow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datagen.config.ingest import HFColumns, SourceConfig
from datagen.errors import UserError
from datagen.ingest.dreambooth import DREAMBOOTH_CITATION, DreamBoothSource
from datagen.ingest.load import cast_images, load_table, require_columns
from datagen.ingest.rows import BadRow, SourceInfo, SourceRow, SourceSubject, identity, inside, mask, required, rgb

if TYPE_CHECKING:
    import datasets

ANYINSERTION_CITATION = (
    "Song, Jiang, Yang, Quan, Yang. Insert Anything: Image Insertion via In-Context Editing in DiT. "
    "arXiv 2504.15009, 2025."
)
MUSAR_CITATION = (
    "Guo, Zhang, Wu, Mou, Zhao, He. MUSAR: Exploring Multi-Subject Customization from Single-Subject "
    "Dataset via Attention Routing. arXiv 2505.02823, 2025."
)
# (licence, citation) when the config gives none. AnyInsertion's card states no licence (its
# code is MIT): None, i.e. unverified, until someone checks.
DEFAULTS: dict[str, tuple[str | None, str | None]] = {
    "anyinsertion": (None, ANYINSERTION_CITATION),
    "musar": ("apache-2.0", MUSAR_CITATION),
    "folder": (None, None),
    "hf": (None, None),
    # Per-image terms in the dataset's references_and_licenses.txt (the Unsplash License, or
    # the authors' own photographs): no single licence to state.
    "dreambooth": (None, DREAMBOOTH_CITATION),
}
FOLDER_SUBJECT_KEYS = ("name", "caption", "mask", "reference", "reference_mask")


class Source:
    """A source's rows in a fixed order; `row(i)` decodes one row (BadRow when it is bad)."""

    def __init__(self, table: datasets.Dataset, info: SourceInfo):
        self.table = table
        self.info = info

    def __len__(self) -> int:
        return len(self.table)

    def row(self, i: int) -> SourceRow:
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} of a source of {len(self)}")
        return self.convert(i, self.table[self.position(i)])

    def position(self, i: int) -> int:
        """Where row i sits in the table."""
        return i

    def convert(self, i: int, r: dict[str, Any]) -> SourceRow:
        raise NotImplementedError


class AnyInsertionSource(Source):
    COLUMNS = ["id", "main_label", "tar_image", "tar_mask", "ref_image", "ref_mask"]
    IMAGES = ["tar_image", "tar_mask", "ref_image", "ref_mask"]

    def convert(self, i: int, r: dict[str, Any]) -> SourceRow:
        row_id, name = str(required(r, "id")), str(required(r, "main_label"))
        image = rgb(r["tar_image"], "tar_image")
        subject_mask = mask(r["tar_mask"], "tar_mask", image.shape[:2])
        ref = identity(r["ref_image"], r["ref_mask"], "ref_image", "ref_mask", mask_expected=True)
        return SourceRow(i, row_id, image, None, [SourceSubject(name, None, subject_mask, ref)])


class MusarSource(Source):
    COLUMNS = ["tgt_img", "prompt", "cond_img_0", "cond_img_1"]
    IMAGES = ["tgt_img", "cond_img_0", "cond_img_1"]

    def convert(self, i: int, r: dict[str, Any]) -> SourceRow:
        prompt = str(required(r, "prompt"))
        image = rgb(r["tgt_img"], "tgt_img")
        refs = [rgb(r[c], c) for c in ("cond_img_0", "cond_img_1")]  # single-subject images: as they are
        return SourceRow(i, str(i), image, prompt, [SourceSubject(None, None, None, ref) for ref in refs])


class HFSource(Source):
    def __init__(self, table: datasets.Dataset, info: SourceInfo, columns: HFColumns):
        super().__init__(table, info)
        self.columns = columns

    def convert(self, i: int, r: dict[str, Any]) -> SourceRow:
        c = self.columns
        image = rgb(r[c.image], c.image)
        subjects = []
        for s in c.subjects:
            subject_mask = mask(r[s.mask], s.mask, image.shape[:2]) if s.mask else None
            ref = None
            if s.reference:
                mask_field = s.reference_mask or "reference_mask"
                ref_mask = r[s.reference_mask] if s.reference_mask else None
                ref = identity(r[s.reference], ref_mask, s.reference, mask_field, mask_expected=bool(s.reference_mask))
            subjects.append(SourceSubject(_text(r, s.name), _text(r, s.caption), subject_mask, ref))
        return SourceRow(i, str(i), image, _text(r, c.prompt), subjects)


class FolderSource(Source):
    """Rows in file-name order (imagefolder keeps metadata.jsonl's line order instead)."""

    def __init__(self, table: datasets.Dataset, info: SourceInfo, root: Path):
        super().__init__(table, info)
        self.root = root
        names = [os.path.relpath(v["path"], root) for v in table["image"]]
        self.order = sorted(range(len(names)), key=names.__getitem__)
        self.names = [Path(n).as_posix() for n in names]

    def position(self, i: int) -> int:
        return self.order[i]

    def convert(self, i: int, r: dict[str, Any]) -> SourceRow:
        image = rgb(r["image"], "image")
        entries = r.get("subjects") or []
        if not entries:
            raise BadRow("no_subjects", "metadata.jsonl gives this image no subjects")
        subjects = [self.subject(e, f"subjects[{k}]", image.shape[:2]) for k, e in enumerate(entries)]
        return SourceRow(i, self.names[self.order[i]], image, r.get("prompt"), subjects)

    def subject(self, e: dict[str, Any] | None, where: str, shape: tuple[int, int]) -> SourceSubject:
        """One metadata.jsonl subject; its paths are relative to the folder and stay inside it."""
        if e is None:
            raise BadRow("missing_field", f"{where} is empty")
        subject_mask = None
        if e.get("mask") is not None:
            subject_mask = mask(inside(self.root, e["mask"], f"{where}.mask"), f"{where}.mask", shape)
        ref, ref_field, mask_field = None, f"{where}.reference", f"{where}.reference_mask"
        if e.get("reference") is not None:
            ref_mask = None if e.get("reference_mask") is None else inside(self.root, e["reference_mask"], mask_field)
            ref = identity(inside(self.root, e["reference"], ref_field), ref_mask, ref_field, mask_field, mask_expected=False)
        elif e.get("reference_mask") is not None:
            raise BadRow("missing_field", f"{where} has a reference_mask but no reference")
        return SourceSubject(e.get("name"), e.get("caption"), subject_mask, ref)


def _text(r: dict[str, Any], column: str | None) -> str | None:
    value = None if column is None else r[column]
    return None if value is None else str(value)


def open_source(cfg: SourceConfig, cache_dir: str | os.PathLike | None = None) -> Source | DreamBoothSource:
    """The source `cfg` names, checked against its kind (UserError in one line otherwise).
    `cache_dir`: where `datasets` keeps its Arrow cache (its default cache when None)."""
    licence, citation = DEFAULTS[cfg.kind]
    info = SourceInfo(
        kind=cfg.kind,
        dataset=cfg.path,
        licence=cfg.licence if cfg.licence is not None else licence,
        citation=cfg.citation if cfg.citation is not None else citation,
    )
    cache = None if cache_dir is None else os.fspath(cache_dir)
    table = load_table(cfg.kind, cfg.path, cfg.split, cfg.revision, cache)
    where = cfg.path
    if cfg.kind in ("anyinsertion", "musar"):
        cls, what = (AnyInsertionSource, "an AnyInsertion") if cfg.kind == "anyinsertion" else (MusarSource, "a MUSAR-Gen")
        require_columns(where, table, cls.COLUMNS, f"{what} source")
        return cls(cast_images(where, table.select_columns(cls.COLUMNS), cls.IMAGES), info)
    if cfg.kind == "hf":
        c = cfg.columns
        images = [c.image, *(x for s in c.subjects for x in (s.mask, s.reference, s.reference_mask) if x)]
        texts = [x for x in (c.prompt, *(x for s in c.subjects for x in (s.name, s.caption))) if x]
        used = list(dict.fromkeys(images + texts))
        require_columns(where, table, used, "the table `columns` describes")
        return HFSource(cast_images(where, table.select_columns(used), images), info, c)
    root = Path(cfg.path).expanduser().resolve()
    if cfg.kind == "dreambooth":
        return DreamBoothSource(cast_images(where, table, ["image"]), info, root)
    _check_folder(where, table)
    return FolderSource(cast_images(where, table, ["image"]), info, root)


def _check_folder(where: str, table: datasets.Dataset) -> None:
    """A folder needs metadata.jsonl with a `subjects` list per image, of known keys only."""
    import datasets

    if "subjects" not in table.column_names:
        raise UserError(f"{where}: not an ingest folder: no metadata.jsonl giving `subjects` per image")
    feature = table.features["subjects"]
    inner = getattr(feature, "feature", None)
    if not isinstance(feature, datasets.List) or not isinstance(inner, dict):
        raise UserError(f"{where}: metadata.jsonl `subjects` must be a list of objects, not {feature}")
    unknown = sorted(set(inner) - set(FOLDER_SUBJECT_KEYS))
    if unknown:
        raise UserError(f"{where}: metadata.jsonl subjects have unknown keys {unknown} (known: {list(FOLDER_SUBJECT_KEYS)})")
