"""What a source row becomes (SourceRow, SourceSubject), why a row is refused (BadRow), and the
image rules every kind shares: decoding one image per call, masks, the cut-out identity.

Images arrive undecoded ({"bytes", "path"} dicts, `datasets.Image(decode=False)`) and are
decoded here one at a time with `datasets.Image().decode_example`, the library's own decoder
(EXIF orientation included): one bad image is one BadRow, never a failed dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from datagen.config.stages import ReposeConfig

# The background of a cut-out identity. Not white: datagen's own identity crops sit on a
# neutral grey (repose's `background_grey`, 200 by default, datagen.recipe.identity_input;
# the procedural renders use a light grey), so ingested identities follow the same convention.
IDENTITY_BACKGROUND: int = ReposeConfig.model_fields["background_grey"].default
MASK_THRESHOLD = 127  # L value above which a mask pixel is subject (white = subject)


@dataclass(frozen=True)
class SourceInfo:
    """Where the rows come from: travels into every sample's `source` and the dataset card."""

    kind: str  # anyinsertion | musar | folder | hf | dreambooth
    dataset: str  # the hub id or the local path as given
    licence: str | None
    citation: str | None


@dataclass
class SourceSubject:
    name: str | None
    caption: str | None
    mask: np.ndarray | None  # (H, W) bool at the target's size, or None (segmentation finds it)
    reference: np.ndarray | None  # (h, w, 3) uint8 identity, already cut out, or None (repose makes one)
    # True: `reference` is a whole photograph; segment cuts the subject out of it (DreamBooth's
    # protocol: Grounded-SAM masks on the reference images too).
    segment_reference: bool = False


@dataclass
class SourceRow:
    index: int  # position in the source's fixed order
    id: str  # the source's own row id
    image: np.ndarray  # (H, W, 3) uint8 target
    prompt: str | None
    subjects: list[SourceSubject]


class BadRow(ValueError):
    """One row's problem: the run rejects that row with `.reason` and goes on.

    Reasons: missing_field, undecodable_image, mask_size, empty_mask, reference_without_mask,
    no_subjects, unsafe_path (a folder's relative path that leaves the folder).
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(reason, detail)  # args hold both, so the error pickles across processes
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def required(row: dict[str, Any], key: str) -> Any:
    """row[key], or BadRow missing_field when the row has None there."""
    value = row.get(key)
    if value is None:
        raise BadRow("missing_field", f"{key} is empty")
    return value


def decode(value: Any, field: str) -> Image.Image:
    """One undecoded image value ({"bytes", "path"} dict, path string or PIL image) as a PIL image."""
    import datasets

    if value is None:
        raise BadRow("missing_field", f"{field} is empty")
    if isinstance(value, str):
        value = {"path": value, "bytes": None}
    elif isinstance(value, bytes):
        value = {"path": None, "bytes": value}
    try:
        return datasets.Image().decode_example(value)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # OSError: unidentified, truncated or missing files; SyntaxError: some of PIL's parsers
        raise BadRow("undecodable_image", f"{field}: {type(e).__name__}: {one_line(str(e))}") from None


def rgb(value: Any, field: str) -> np.ndarray:
    """(H, W, 3) uint8."""
    return np.asarray(decode(value, field).convert("RGB"), dtype=np.uint8)


def mask(value: Any, field: str, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool, white = subject; must be `shape` and not empty."""
    m = np.asarray(decode(value, field).convert("L")) > MASK_THRESHOLD
    if m.shape != tuple(shape):
        raise BadRow("mask_size", f"{field} is {m.shape[1]}x{m.shape[0]}, its image {shape[1]}x{shape[0]}")
    if not m.any():
        raise BadRow("empty_mask", f"{field} has no subject pixel")
    return m


def cut_out(image: np.ndarray, m: np.ndarray, background: int = IDENTITY_BACKGROUND) -> np.ndarray:
    """The image cropped to its (non-empty) mask's bounding box, `background` outside the mask,
    padded with `background` to a square, centred. No resize: the identity size is applied later."""
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = np.where(m[y0:y1, x0:x1, None], image[y0:y1, x0:x1], np.uint8(background)).astype(np.uint8)
    h, w = crop.shape[:2]
    side = max(h, w)
    out = np.full((side, side, 3), background, dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = crop
    return out


def identity(ref: Any, ref_mask: Any, ref_field: str, mask_field: str, mask_expected: bool) -> np.ndarray:
    """The identity image of a reference: cut out with its mask when it has one, else as it is
    (already single-subject). `mask_expected`: the source promises a mask, so None is a BadRow."""
    image = rgb(ref, ref_field)
    if ref_mask is None:
        if mask_expected:
            raise BadRow("reference_without_mask", f"{ref_field} has no {mask_field}")
        return image
    return cut_out(image, mask(ref_mask, mask_field, image.shape[:2]))


def inside(root: Path, rel: Any, field: str) -> dict[str, Any]:
    """An undecoded image value for `rel`, a path relative to the folder `root` (resolved), that
    must stay inside it: no absolute path, no `..`, no symlink leading out."""
    if not isinstance(rel, str) or not rel:
        raise BadRow("missing_field", f"{field} is not a relative path: {rel!r}")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or rel.startswith("~"):
        raise BadRow("unsafe_path", f"{field} {rel!r} leaves the folder")
    full = (root / pure).resolve()
    if not full.is_relative_to(root):
        raise BadRow("unsafe_path", f"{field} {rel!r} leads out of the folder (symlink)")
    return {"path": os.fspath(full), "bytes": None}


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
