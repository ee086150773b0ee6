"""The DreamBooth layout (Ruiz et al. 2023, github.com/google/dreambooth `dataset/`): one folder
per subject of a few photographs, and `prompts_and_classes.txt` giving each subject's class.

SIGMA-GEN's Table 4 protocol (appendix A.10): "we use the first image of every identity as the
reference image and extract controls - depth and masks from all the other images which we treat
as the targets", masks from Grounded-SAM on both the reference and the targets, captions from
Qwen-2.5-VL. So row i is one (subject, target) pair, in subject-folder then file-name order; its
reference is the subject's first image, a whole photograph that segment cuts the subject out of
(`segment_reference`), and its name is the subject's class (a grounding phrase: "dog", not "dog2").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datagen.errors import UserError
from datagen.ingest.rows import SourceInfo, SourceRow, SourceSubject, rgb

if TYPE_CHECKING:
    import datasets

CLASSES_FILE = "prompts_and_classes.txt"
CLASSES_HEADER = "subject_name,class"
DREAMBOOTH_CITATION = (
    "Ruiz, Li, Jampani, Pritch, Rubinstein, Aberman. DreamBooth: Fine Tuning Text-to-Image Diffusion "
    "Models for Subject-Driven Generation. CVPR 2023."
)


def read_classes(root: Path) -> dict[str, str]:
    """subject folder -> class, from the table under `subject_name,class` in prompts_and_classes.txt
    (the lines up to the first blank one); {} when the file is absent."""
    path = root / CLASSES_FILE
    if not path.is_file():
        return {}
    classes: dict[str, str] = {}
    in_table = False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.replace(" ", "") == CLASSES_HEADER:
            in_table = True
        elif in_table:
            name, sep, cls = line.partition(",")
            if not sep:
                break  # a blank line or the prompts: the table is over
            classes[name.strip()] = " ".join(cls.split())
    return classes


def class_from_folder(folder: str) -> str:
    """A class for a subject the table does not list: its folder name without a trailing number,
    underscores as spaces ("bear_plushie" -> "bear plushie", "dog2" -> "dog")."""
    name = re.sub(r"\d+$", "", folder).replace("_", " ").strip()
    return name or folder


class DreamBoothSource:
    """A `datasets` imagefolder over the subject folders, read as (subject, target) rows."""

    def __init__(self, table: datasets.Dataset, info: SourceInfo, root: Path):
        self.table = table
        self.info = info
        classes = read_classes(root)
        by_subject: dict[str, list[tuple[str, int]]] = {}
        for pos, value in enumerate(table["image"]):
            rel = Path(value["path"]).resolve().relative_to(root)
            if len(rel.parts) != 2:
                raise UserError(f"{root}: not a DreamBooth folder: {rel.as_posix()} is not in a subject folder "
                                "(the layout is SUBJECT/IMAGE, one folder per subject)")  # fmt: skip
            by_subject.setdefault(rel.parts[0], []).append((rel.parts[1], pos))
        # (the subject's class, its reference's position, the target's position, row id)
        self.rows: list[tuple[str, int, int, str]] = []
        for subject in sorted(by_subject):
            images = sorted(by_subject[subject])
            name = classes.get(subject) or class_from_folder(subject)
            for file, pos in images[1:]:
                self.rows.append((name, images[0][1], pos, f"{subject}/{file}"))
        self.subjects = len(by_subject)

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, i: int) -> SourceRow:
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} of a source of {len(self)}")
        name, ref_pos, target_pos, row_id = self.rows[i]
        image = rgb(self._image(target_pos), "image")
        reference = rgb(self._image(ref_pos), "reference")
        subject = SourceSubject(name, None, None, reference, segment_reference=True)
        return SourceRow(i, row_id, image, None, [subject])

    def _image(self, pos: int) -> Any:
        return self.table[pos]["image"]
