"""idcheck (beyond the paper): does each identity image still show its subject, re-posed?

Each identity image is compared with the subject as it was in the target image. Below
`min_similarity` the edit lost the subject; above `max_similarity` it is a copy with no
re-pose, which teaches the generator to paste. Either way the subject is dropped, and a sample
left with too few subjects is rejected. It runs right after repose: it reads repose's output
and is cheap, so a sample it rejects costs nothing more downstream.

Backends: `histogram` (model-free colour histograms: catches lost subjects only) and
`transformers` (DINOv2 CLS cosine, what the DINO-I metric compares). The score is kept in
each subject's json under `idcheck`.

With `stages.repose.retries` > 0, repose borrows this stage's backend (`score`, `identity_reason`)
to edit a failing subject again before it gets here (see stages/repose.py); this stage stays the
one verdict. Its marker counts, per checked subject, `identity_repair`: passed on the first edit
(`first_try`), on a later one (`repaired`, `repose.attempts` > 1), or not at all (`dropped`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from datagen.config import IdcheckConfig
from datagen.recipe.colour_similarity import histogram_similarity
from datagen.recipe.identity_input import identity_input
from datagen.stages.base import Backend, BackendAttribute, BackendStage
from datagen.stages.source import given, has_reference
from datagen.store.inflight import Rejected, Sample

# One identity to score: (sample, subject position, identity image). The image is passed apart
# from the sample so that repose can score a candidate before it keeps it.
Pair = tuple[Sample, int, np.ndarray]
# Per-sample tally of the outcomes above, summed into the shard marker (shard_figures).
REPAIR_KEY = "identity_repair"
OUTCOMES = ("first_try", "repaired", "dropped")


def identity_reason(similarity: float, cfg: IdcheckConfig) -> str | None:
    """Why an identity image fails the check; None when it passes."""
    if similarity < cfg.min_similarity:
        return "identity_lost"
    if similarity > cfg.max_similarity:
        return "identity_copy"
    return None


def attempts(subject: dict) -> int:
    """How many edits repose made of this subject (1 when it made one, or before retries existed)."""
    return int(subject.get("repose", {}).get("attempts", 1))


class HistogramIdcheck(Backend):
    """Colour histograms of the subject and its identity image: no model."""

    def score(self, pairs: list[Pair]) -> list[float]:
        name = self.stage.name
        return [histogram_similarity(s.array("image", name), s.array("masks", name)[i], ident) for s, i, ident in pairs]


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

    def score(self, pairs: list[Pair]) -> list[float]:
        from datagen.models.dinov2 import cosine_pairs

        if not pairs:
            return []
        # The crop as repose saw it (subject on grey, padded square), so framing does not count.
        name, repose = self.stage.name, self.stage.run_cfg.stages.repose
        crops = [
            identity_input(s.array("image", name), s.array("masks", name)[i], s.subjects[i]["box_2d"],
                           ident.shape[0], repose.subject_fill, repose.background_grey)
            for s, i, ident in pairs
        ]  # fmt: skip
        identities = [ident for _, _, ident in pairs]
        return cosine_pairs(self.embedder.embed(crops), self.embedder.embed(identities)).tolist()


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
        # A source's reference identity is another photograph of the subject, not an edit:
        # nothing to check.
        checked = [s for s in samples if not given(s, "identity")]
        if checked:
            self.load_if_pending()
        pairs = [(s, i, s.array("identity", self.name)[i]) for s in checked
                 for i, subj in enumerate(s.subjects) if not has_reference(subj)]  # fmt: skip
        sims = {(s.key, i): sim for (s, i, _), sim in zip(pairs, self.backend.score(pairs), strict=True)}
        done = {s.key for s in checked}
        out: list[Sample | Rejected] = []
        for s in samples:
            if s.key not in done:
                out.append(s)
                continue
            reasons: dict[int, str] = {}
            tally: Counter = Counter()
            for i, subj in enumerate(s.subjects):
                if (s.key, i) not in sims:  # a reference identity
                    continue
                sim = sims[s.key, i]
                subj["idcheck"] = {"similarity": round(float(sim), 6)}
                reason = identity_reason(sim, self.cfg)
                if reason:
                    reasons[i] = reason
                tally["dropped" if reason else "first_try" if attempts(subj) == 1 else "repaired"] += 1
            s.meta[REPAIR_KEY] = {k: tally[k] for k in OUTCOMES}
            self.drop_subjects(s, reasons)
            out.append(self.check_subject_count(s))
        return out

    def shard_figures(self, samples: list[Sample]) -> dict[str, Any]:
        # Every sample this stage checked, kept or rejected: a rejected one's subjects were checked too.
        total = Counter({k: 0 for k in OUTCOMES})
        for s in samples:
            total.update(s.meta.get(REPAIR_KEY, {}))
        return {REPAIR_KEY: {k: total[k] for k in OUTCOMES}}
