"""source: an ingest run's first stage. Sample i is row i of the run's dataset (`source:`, read
by datagen.ingest.sources in a fixed order), so a run is reproducible and resumable like a
generating one.

What the row gives, the sample keeps, and later stages do not redo it: the target image (what
t2i makes), masks (segment keeps them, `given.masks`), identity images cut out of reference
images (repose and idcheck leave them, `identity.source: reference`), names, captions and the
prompt (caption writes what is missing). A bad row (a missing field, an image that does not
decode, a mask of another size or empty, a reference without its mask) is rejected with its
reason; the run goes on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from datagen.stages.base import Backend, BackendStage
from datagen.stages.t2i import set_image
from datagen.store.inflight import Rejected, Sample

GIVEN = "given"  # meta: what the source gave, {"masks": bool, "identity": bool, "references": bool}
REFERENCES = "references"  # array: whole reference photographs, until segment cuts them out


def square(image: np.ndarray, size: int) -> np.ndarray:
    """An identity image (already square) at the run's identity size."""
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def set_references(s: Sample, refs: list[np.ndarray]) -> None:
    """Whole reference photographs as one (N, H, W, 3) array, each at the top left of the largest
    one's frame (its own size in its subject's `reference` record), for segment to cut out."""
    height, width = max(r.shape[0] for r in refs), max(r.shape[1] for r in refs)
    stack = np.zeros((len(refs), height, width, 3), dtype=np.uint8)
    for i, (r, subj) in enumerate(zip(refs, s.subjects, strict=True)):
        stack[i, : r.shape[0], : r.shape[1]] = r
        subj["reference"] = {"width": int(r.shape[1]), "height": int(r.shape[0])}
    s.set_array(REFERENCES, stack)


def reference_photo(s: Sample, i: int, stage: str) -> np.ndarray:
    """Subject i's whole reference photograph, at its own size."""
    size = s.subjects[i]["reference"]
    return s.array(REFERENCES, stage)[i, : size["height"], : size["width"]]


def take_identities(s: Sample, identities: list[np.ndarray], size: int) -> None:
    """The subjects' identity images, cut out of their references: `identity.source: reference`;
    the whole photographs are no longer needed."""
    s.set_array("identity", np.stack([square(r, size) for r in identities]))
    for subj in s.subjects:
        subj.pop("reference", None)
        subj["identity"] = {"width": size, "height": size, "source": "reference"}
    s.arrays.pop(REFERENCES, None)
    s.changed.discard(REFERENCES)
    s.meta[GIVEN] = {**s.meta.get(GIVEN, {}), "identity": True, "references": False}


class DatasetsSource(Backend):
    """Rows through `datasets` (local parquet, save_to_disk, imagefolder, or the hub cache)."""

    table: Any = None

    def load(self) -> None:
        from datagen.ingest.sources import open_source

        run_dir = self.stage.run_dir
        cache = str(run_dir / "cache" / "datasets") if run_dir is not None else None
        self.table = open_source(self.stage.run_cfg.source, cache_dir=cache)

    def read(self, samples: list[Sample]) -> list[Sample | Rejected]:
        if self.table is None:
            self.load()
        return [self._one(s) for s in samples]

    def _one(self, s: Sample) -> Sample | Rejected:
        from datagen.ingest.rows import BadRow

        try:
            row = self.table.row(s.index)
        except BadRow as e:
            return self.stage.reject(s, f"bad_row:{e.reason}")
        except IndexError:
            return self.stage.reject(s, "bad_row:no_such_row")
        info = self.table.info
        set_image(s, row.image)
        s.meta["prompt"] = {"full": row.prompt or "", "background": ""}
        s.meta["requested_subjects"] = len(row.subjects)
        s.meta["subjects"] = [{"sid": i, "name": x.name or "", "caption": x.caption or ""} for i, x in enumerate(row.subjects)]
        # licence / citation only where the source states them: an absent key reads as null.
        terms = {k: v for k, v in (("licence", info.licence), ("citation", info.citation)) if v is not None}
        s.meta["source"] = {"kind": "ingested", "dataset": info.dataset, "id": str(row.id), **terms}
        masks = [x.mask for x in row.subjects]
        refs = [x.reference for x in row.subjects]
        whole = [x.segment_reference for x in row.subjects]
        given = {"masks": all(m is not None for m in masks), "identity": all(r is not None for r in refs) and not any(whole),
                 "references": all(whole) and all(r is not None for r in refs)}  # fmt: skip
        if given["masks"]:
            s.set_array("masks", np.stack(masks).astype(bool))
        if given["references"]:  # whole photographs: segment cuts the subjects out
            set_references(s, refs)
        s.meta[GIVEN] = given
        size = self.stage.run_cfg.stages.repose.identity_size
        if given["identity"]:
            take_identities(s, refs, size)
        elif not any(whole) and any(r is not None for r in refs):
            # Some subjects have a reference: theirs are kept, repose makes the others' (each
            # subject's identity.source says which); a stand-in holds the place of the others.
            blank = np.zeros((size, size, 3), np.uint8)
            s.set_array("identity", np.stack([blank if r is None else square(r, size) for r in refs]))
            for subj, r in zip(s.subjects, refs, strict=True):
                if r is not None:
                    subj["identity"] = {"width": size, "height": size, "source": "reference"}
        return s


class SourceStage(BackendStage):
    name = "source"
    provides = ("prompts", "t2i")  # the image, the subjects and what they are called
    reads = ("source", "run")
    backend_types = {"datasets": DatasetsSource}
    backends = tuple(backend_types)

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        return self.backend.read(samples)


def given(s: Sample, what: str) -> bool:
    """Whether the source gave this sample's `what` ("masks", "identity" of every subject, or
    whole "references" for segment to cut out)."""
    return bool(s.meta.get(GIVEN, {}).get(what))


def has_reference(subject: dict) -> bool:
    """Whether this subject's identity is its source's reference (repose and idcheck leave it)."""
    return subject.get("identity", {}).get("source") == "reference"
