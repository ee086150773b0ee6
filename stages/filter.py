"""filter: the final sample rules, so every kept sample meets FORMAT.md's invariants.

Drops what earlier stages marked (with `filters.apply: last`, nothing is dropped before this
stage), then re-checks the recipe's subject filters on what is left (box area, overlap), that
every subject has a 3D box whose corners project inside the image and near its 2D box, and
the subject count. The runner writes what survives as the final shard.
"""

from __future__ import annotations

from datagen.recipe.filters import box3d_reason, subject_count_reason, subject_rejections
from datagen.store.inflight import Rejected, Sample
from datagen.stages.base import PENDING, Stage


class FilterStage(Stage):
    name = "filter"
    requires = ("segment", "boxes", "repose")
    reads = ("filters", "output")
    backends = ("rules",)

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        return [self._one(s) for s in samples]

    def _one(self, s: Sample) -> Sample | Rejected:
        if PENDING in s.meta:
            return self.reject(s, s.meta[PENDING])
        rules = self.run_cfg.filters
        width, height = s.meta["width"], s.meta["height"]
        reasons: dict[int, str] = {}
        for i, subj in enumerate(s.subjects):
            if PENDING in subj:
                reasons[i] = subj[PENDING]
            elif "box_3d" not in subj:
                reasons[i] = "no_box_3d"
            elif "identity" not in subj:
                reasons[i] = "no_identity"
            else:
                why = box3d_reason(subj, s.meta["camera"], width, height, rules)
                if why:
                    reasons[i] = why
        masks = s.array("masks", self.name)
        scores = [subj["score"] for subj in s.subjects]
        for i, why in subject_rejections(masks, scores, rules).items():
            reasons.setdefault(i, why)
        s.drop_subjects(reasons, self.name)
        identity = s.arrays.get("identity")
        if identity is None or len(identity) != len(s.subjects):
            return self.reject(s, "identity_missing")
        reason = subject_count_reason(len(s.subjects), rules)
        return self.reject(s, reason) if reason else s
