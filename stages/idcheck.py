"""idcheck (beyond the paper): does each identity image still show its subject, re-posed?

Each identity image is compared with the subject as it was in the target image. Below
`min_similarity` the edit lost the subject; above `max_similarity` it is a copy with no
re-pose, which teaches the generator to paste. Either way the subject is dropped, and a sample
left with too few subjects is rejected. It runs right after repose: it reads repose's output
and is cheap, so a sample it rejects costs nothing more downstream.

Backends: `histogram` (model-free colour histograms: catches lost subjects only) and
`transformers` (DINOv2 CLS cosine, what the DINO-I metric compares). The score is kept in
each subject's json under `idcheck`.
"""

from __future__ import annotations

from typing import Any

from datagen.recipe.colour_similarity import histogram_similarity
from datagen.recipe.identity_input import identity_input
from datagen.stages.base import Backend, BackendAttribute, BackendStage
from datagen.stages.source import given, has_reference
from datagen.store.inflight import Rejected, Sample


class HistogramIdcheck(Backend):
    """Colour histograms of the subject and its identity image: no model."""

    def similarities(self, samples: list[Sample]) -> list[list[float]]:
        name = self.stage.name
        return [
            [histogram_similarity(s.array("image", name), mask, ident)
             for mask, ident in zip(s.array("masks", name), s.array("identity", name), strict=True)]
            for s in samples
        ]  # fmt: skip


class DinoIdcheck(Backend):
    """DINOv2 CLS cosine between the subject's crop and its identity image."""

    embedder: Any = None

    def load(self) -> None:
        from datagen.models.dinov2 import DinoEmbedder

        self.embedder = DinoEmbedder.load(self.cfg, self.stage.run_cfg.models_dir)

    def generation_settings(self) -> dict | None:
        c = self.cfg
        return {"backend": c.backend, "model": c.model, "revision": c.revision, "dtype": c.dtype,
                "min_similarity": c.min_similarity, "max_similarity": c.max_similarity}  # fmt: skip

    def similarities(self, samples: list[Sample]) -> list[list[float]]:
        from datagen.models.dinov2 import cosine_pairs

        # The crop as repose saw it (subject on grey, padded square), so framing does not count.
        name, repose = self.stage.name, self.stage.run_cfg.stages.repose
        crops, identities = [], []
        for s in samples:
            image = s.array("image", name)
            for subj, mask, ident in zip(s.subjects, s.array("masks", name), s.array("identity", name), strict=True):
                size, fill, grey = ident.shape[0], repose.subject_fill, repose.background_grey
                crops.append(identity_input(image, mask, subj["box_2d"], size, fill, grey))
                identities.append(ident)
        sims = cosine_pairs(self.embedder.embed(crops), self.embedder.embed(identities)).tolist()
        out, pos = [], 0
        for s in samples:
            out.append(sims[pos : pos + len(s.subjects)])
            pos += len(s.subjects)
        return out


class IdcheckStage(BackendStage):
    name = "idcheck"
    requires = ("repose",)
    loads_when_needed = True  # an ingest source may give every identity
    reads = ("filters",)
    backend_types = {"histogram": HistogramIdcheck, "transformers": DinoIdcheck}
    backends = tuple(backend_types)

    embedder = BackendAttribute()  # DINOv2, once loaded

    def passes_over(self, sample: Sample) -> bool:
        return given(sample, "identity")

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        # Per sample, the similarity of each subject's identity image with the subject. A source's
        # reference identity is another photograph of the subject, not an edit: nothing to check.
        checked = [s for s in samples if not given(s, "identity")]
        if checked:
            self.load_if_pending()
        scores = dict(zip([s.key for s in checked], self.backend.similarities(checked), strict=True)) if checked else {}
        out: list[Sample | Rejected] = []
        for s in samples:
            if s.key not in scores:
                out.append(s)
                continue
            sims = scores[s.key]
            reasons: dict[int, str] = {}
            for i, (subj, sim) in enumerate(zip(s.subjects, sims, strict=True)):
                if has_reference(subj):  # another photograph of the subject: nothing to check
                    continue
                subj["idcheck"] = {"similarity": round(float(sim), 6)}
                if sim < self.cfg.min_similarity:
                    reasons[i] = "identity_lost"
                elif sim > self.cfg.max_similarity:
                    reasons[i] = "identity_copy"
            self.drop_subjects(s, reasons)
            out.append(self.check_subject_count(s))
        return out
