"""segment: a box and a mask per subject from its caption, then RECIPE.md's filters.

Backend `procedural`: oracle masks from the renderer's instance ids (score 1.0). The filters
(box area 1%-40%, duplicate/overlapping masks keep one, enough subjects) are shared with every
backend (datagen.filters); with `filters.apply: last` they only mark what the filter stage drops.
"""

from __future__ import annotations

import numpy as np

from datagen.filters import box_area_frac, subject_rejections
from datagen.geometry import mask_box_2d
from datagen.sample import Rejected, Sample
from datagen.stage import Stage


class SegmentStage(Stage):
    name = "segment"
    requires = ("t2i",)
    reads = ("filters",)
    backends = ("procedural",)

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        return [self._one(s) for s in samples]

    def _one(self, s: Sample) -> Sample | Rejected:
        instance = s.array("truth_instance", self.name)
        masks = np.stack([instance == subj["sid"] + 1 for subj in s.subjects]) if s.subjects else np.zeros(
            (0, *instance.shape), dtype=bool
        )
        scores = [1.0] * len(s.subjects)
        return finish_segmentation(self, s, masks, scores)


def finish_segmentation(stage: Stage, s: Sample, masks: np.ndarray, scores: list[float]) -> Sample | Rejected:
    """Record masks, 2D boxes and scores, then apply the recipe's filters (any backend)."""
    height, width = masks.shape[1:]
    rules = stage.run_cfg.filters
    s.set_array("masks", masks)
    for subj, mask, score in zip(s.subjects, masks, scores, strict=True):
        box = mask_box_2d(mask)
        subj["score"] = float(score)
        subj["box_2d"] = box
        subj["box_area_frac"] = box_area_frac(box, width, height) if box else 0.0
        subj["mask_area_frac"] = float(mask.sum()) / (width * height)
    stage.drop_subjects(s, subject_rejections(masks, scores, rules))
    return stage.check_subject_count(s)
