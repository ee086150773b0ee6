"""segment: a box and a mask per subject from its caption, then RECIPE.md's filters.

Backends:
- `procedural`: oracle masks from the renderer's instance ids (score 1.0).
- `transformers` (datagen.models.grounding): Grounding DINO finds each caption's box, one
  caption per pass; SAM (or SAM 2) turns the box into a mask.
- `gsam` (datagen.models.gsam): the paper's own stack, groundingdino-py + segment-anything.
The real backends share what follows the models: captions that ground nothing or ground another
caption's object are dropped, masks are cleaned (specks, pin holes) and their tight box taken.
The recipe's filters (box area 1%-40%, overlapping masks keep one, enough subjects) are shared
with every backend (datagen.recipe.filters); with `filters.apply: last` they only mark what the
filter stage drops.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.recipe.filters import box_area_frac, subject_rejections
from datagen.recipe.geometry import mask_box_2d
from datagen.recipe.mask_cleanup import clean_mask
from datagen.models.perception import Detection, grounding_rejections
from datagen.store.inflight import Rejected, Sample
from datagen.stages.base import Stage


class SegmentStage(Stage):
    name = "segment"
    requires = ("t2i",)
    reads = ("filters",)
    version = 2
    backends = ("procedural", "transformers", "gsam")

    grounder: Any = None
    segmenter: Any = None

    def setup(self) -> None:
        if self.cfg.backend == "transformers":
            from datagen.models.grounding import load_transformers_perception

            self.grounder, self.segmenter = load_transformers_perception(self.cfg, self.run_cfg.models_dir)
        elif self.cfg.backend == "gsam":
            from datagen.models.gsam import load_gsam

            self.grounder, self.segmenter = load_gsam(self.cfg, self.run_cfg.models_dir)

    def model_name(self) -> str:
        c = self.cfg
        if c.backend == "transformers":
            return f"transformers:{c.detector_model}+{c.sam_model}"
        if c.backend == "gsam":
            return f"gsam:{c.gsam.checkpoint}+{c.gsam.sam_checkpoint}"
        return c.backend

    def generation_settings(self) -> dict | None:
        c = self.cfg
        if c.backend == "procedural":
            return None
        models = (
            {"detector_model": c.detector_model, "sam_model": c.sam_model, "sam_version": c.sam_version, "revision": c.revision}
            if c.backend == "transformers"
            else c.gsam.model_dump()
        )
        return {
            "backend": c.backend, **models, "dtype": c.dtype,
            **c.model_dump(include={"box_threshold", "text_threshold", "mask_threshold", "same_object_iou", "fill_holes_frac", "min_island_frac"}),
        }  # fmt: skip

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        if self.cfg.backend == "procedural":
            return [self._oracle(s) for s in samples]
        return self._models(samples)

    def _oracle(self, s: Sample) -> Sample | Rejected:
        instance = s.array("truth_instance", self.name)
        masks = np.stack([instance == subj["sid"] + 1 for subj in s.subjects]) if s.subjects else np.zeros(
            (0, *instance.shape), dtype=bool
        )
        return finish_segmentation(self, s, masks, [1.0] * len(s.subjects))

    def _models(self, samples: list[Sample]) -> list[Sample | Rejected]:
        images = [s.array("image", self.name) for s in samples]
        detections = self.grounder.detect(images, [[subj["caption"] for subj in s.subjects] for s in samples])
        dropped = [grounding_rejections(d, self.cfg.same_object_iou) for d in detections]
        kept = [[i for i in range(len(d)) if i not in why] for d, why in zip(detections, dropped, strict=True)]
        boxes = [np.array([d[i].box for i in k], dtype=np.float64).reshape(-1, 4) for d, k in zip(detections, kept, strict=True)]
        segmented = self.segmenter.segment(images, boxes)
        out: list[Sample | Rejected] = []
        for s, image, dets, why, idx, (masks, mask_scores) in zip(samples, images, detections, dropped, kept, segmented, strict=True):
            out.append(self._finish(s, image.shape[:2], dets, why, idx, masks, mask_scores))
        return out

    def _finish(
        self, s: Sample, shape: tuple[int, int], dets: list[Detection | None], why: dict[int, str],
        kept: list[int], masks: np.ndarray, mask_scores: np.ndarray,
    ) -> Sample | Rejected:  # fmt: skip
        full = np.zeros((len(s.subjects), *shape), dtype=bool)
        for row, i in enumerate(kept):
            full[i] = clean_mask(masks[row], self.cfg.fill_holes_frac, self.cfg.min_island_frac)
        for i, (subj, det) in enumerate(zip(s.subjects, dets, strict=True)):
            record = det.to_json() if det else {}
            if i in kept:
                record["mask_score"] = round(float(mask_scores[kept.index(i)]), 6)
            subj["segment"] = record
        scores = [d.score if d else 0.0 for d in dets]
        return finish_segmentation(self, s, full, scores, why)


def finish_segmentation(
    stage: Stage, s: Sample, masks: np.ndarray, scores: list[float], reasons: dict[int, str] | None = None
) -> Sample | Rejected:
    """Record masks, 2D boxes and scores, then apply the recipe's filters (any backend).

    `reasons`: subjects the backend already knows to drop (not grounded, same object)."""
    height, width = masks.shape[1:]
    rules = stage.run_cfg.filters
    s.set_array("masks", masks)
    for subj, mask, score in zip(s.subjects, masks, scores, strict=True):
        box = mask_box_2d(mask)
        subj["score"] = float(score)
        subj["box_2d"] = box
        subj["box_area_frac"] = box_area_frac(box, width, height) if box else 0.0
        subj["mask_area_frac"] = float(mask.sum()) / (width * height)
    found = dict(reasons or {})
    for i, why in subject_rejections(masks, scores, rules).items():
        found.setdefault(i, why)
    stage.drop_subjects(s, found)
    return stage.check_subject_count(s)
