"""segment: a box and a mask per subject from its caption, then RECIPE.md's filters.

Backends:
- `procedural`: oracle masks from the renderer's instance ids (score 1.0).
- `transformers` (datagen.models.grounding): Grounding DINO finds each caption's box, one
  caption per pass; SAM (or SAM 2) turns the box into a mask.
- `gsam` (datagen.models.gsam): the paper's own stack, groundingdino-py + segment-anything.
The real backends share what follows the models: captions that ground nothing or ground another
caption's object are dropped, masks are cleaned (specks, pin holes) and their tight box taken.
The recipe's filters (box area 1%-40%, enough subjects, and with `filters.overlap: score` the
paper's "overlapping masks keep one") are shared with every backend (datagen.recipe.filters);
with `filters.apply: last` they only mark what the filter stage drops. Overlaps are otherwise
resolved by depth once it is known (stages.exclusive).

An ingested sample keeps the masks its source gives; one whose source gives whole reference
photographs (DreamBooth) has each subject cut out of its photograph first, by the same models.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.models.perception import Detection, grounding_rejections
from datagen.recipe.filters import mask_figures, subject_rejections
from datagen.recipe.perturb import dilate
from datagen.stages.base import Backend, BackendAttribute, BackendStage, Stage
from datagen.stages.exclusive import make_masks_exclusive
from datagen.stages.source import given, reference_photo, take_identities
from datagen.store.inflight import Rejected, Sample

# Recorded in `generation.settings` by the real backends, besides their models.
MODEL_RUN_SETTINGS = {
    "box_threshold", "text_threshold", "mask_threshold", "same_object_iou", "fill_holes_frac", "min_island_frac",
}  # fmt: skip


def boxes_array(boxes: list) -> np.ndarray:
    """(N, 4) float64 boxes, for the segmenter; (0, 4) when none."""
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


class ProceduralSegment(Backend):
    """The renderer's instance ids: exact masks, score 1.0."""

    def model_name(self) -> str:
        return self.cfg.backend

    def segment(self, samples: list[Sample]) -> list[Sample | Rejected]:
        # Per sample on the stage: tests make one sample raise by patching SegmentStage._oracle.
        return [self.stage._oracle(s) for s in samples]


class PerceptionSegment(Backend):
    """A grounder (each caption's box) and a segmenter (each box's mask); what follows is shared.

    Subclasses load the two models and name them."""

    grounder: Any = None
    segmenter: Any = None

    def model_name(self) -> str:
        raise NotImplementedError

    def model_settings(self) -> dict:
        raise NotImplementedError

    def generation_settings(self) -> dict | None:
        c = self.cfg
        run_settings = c.model_dump(include=MODEL_RUN_SETTINGS)
        return {"backend": c.backend, **self.model_settings(), "dtype": c.dtype, **run_settings}

    def segment(self, samples: list[Sample]) -> list[Sample | Rejected]:
        name = self.stage.name
        images = [s.array("image", name) for s in samples]
        detections = self.grounder.detect(images, [[subj["caption"] for subj in s.subjects] for s in samples])
        dropped = [grounding_rejections(d, self.cfg.same_object_iou) for d in detections]
        kept = [[i for i in range(len(d)) if i not in why] for d, why in zip(detections, dropped, strict=True)]
        boxes = [boxes_array([d[i].box for i in k]) for d, k in zip(detections, kept, strict=True)]
        segmented = self.segmenter.segment(images, boxes)
        rows = zip(samples, images, detections, dropped, kept, segmented, strict=True)
        return [
            self._finish(s, image.shape[:2], dets, why, idx, masks, mask_scores)
            for s, image, dets, why, idx, (masks, mask_scores) in rows
        ]

    def _finish(
        self, s: Sample, shape: tuple[int, int], dets: list[Detection | None], why: dict[int, str],
        kept: list[int], masks: np.ndarray, mask_scores: np.ndarray,
    ) -> Sample | Rejected:  # fmt: skip
        from datagen.recipe.mask_cleanup import clean_mask  # scipy.ndimage: only the model backends need it

        full = np.zeros((len(s.subjects), *shape), dtype=bool)
        for row, i in enumerate(kept):
            full[i] = clean_mask(masks[row], self.cfg.fill_holes_frac, self.cfg.min_island_frac)
        for i, (subj, det) in enumerate(zip(s.subjects, dets, strict=True)):
            record = det.to_json() if det else {}
            if i in kept:
                record["mask_score"] = round(float(mask_scores[kept.index(i)]), 6)
            subj["segment"] = {**subj.get("segment", {}), **record}  # keeps a reference's record
        scores = [d.score if d else 0.0 for d in dets]
        return finish_segmentation(self.stage, s, full, scores, why)

    def cut_references(self, samples: list[Sample]) -> list[Sample | Rejected]:
        """Each subject cut out of its whole reference photograph (DreamBooth's protocol): the
        caption's box on the photograph, SAM's mask in it, the masked crop as the identity. A
        subject whose reference grounds nothing is dropped (`reference_not_grounded`)."""
        from datagen.ingest.rows import cut_out
        from datagen.recipe.mask_cleanup import clean_mask

        name = self.stage.name
        pairs = [(s, i) for s in samples for i in range(len(s.subjects))]
        photos = [reference_photo(s, i, name) for s, i in pairs]
        dets = [d[0] for d in self.grounder.detect(photos, [[s.subjects[i]["caption"]] for s, i in pairs])]
        segmented = self.segmenter.segment(photos, [boxes_array([d.box] if d else []) for d in dets])
        cuts: dict[str, list[np.ndarray]] = {s.key: [] for s in samples}
        why: dict[str, dict[int, str]] = {s.key: {} for s in samples}
        for (s, i), photo, det, (masks, scores) in zip(pairs, photos, dets, segmented, strict=True):
            m = clean_mask(masks[0], self.cfg.fill_holes_frac, self.cfg.min_island_frac) if det else None
            if m is None or not m.any():
                why[s.key][i] = "reference_not_grounded"
                cuts[s.key].append(np.zeros((1, 1, 3), np.uint8))  # a stand-in, dropped with its subject
                continue
            s.subjects[i]["segment"] = {"reference": {**det.to_json(), "mask_score": round(float(scores[0]), 6)}}
            cuts[s.key].append(cut_out(photo, m))
        out: list[Sample | Rejected] = []
        for s in samples:
            take_identities(s, cuts[s.key], self.stage.run_cfg.stages.repose.identity_size)
            s.drop_subjects(why[s.key], name)  # not a recipe filter: never deferred
            out.append(s if s.subjects else self.stage.reject(s, "reference_not_grounded"))
        return out


class TransformersSegment(PerceptionSegment):
    """Grounding DINO and SAM (or SAM 2) through transformers."""

    def load(self) -> None:
        from datagen.models.grounding import load_transformers_perception

        self.grounder, self.segmenter = load_transformers_perception(self.cfg, self.stage.run_cfg.models_dir)

    def model_name(self) -> str:
        return f"transformers:{self.cfg.detector_model}+{self.cfg.sam_model}"

    def model_settings(self) -> dict:
        c = self.cfg
        return {"detector_model": c.detector_model, "sam_model": c.sam_model, "sam_version": c.sam_version,
                "revision": c.revision}  # fmt: skip


class GSAMSegment(PerceptionSegment):
    """groundingdino-py and segment-anything, from `gsam`'s checkpoint files."""

    def load(self) -> None:
        from datagen.models.gsam import load_gsam

        self.grounder, self.segmenter = load_gsam(self.cfg, self.stage.run_cfg.models_dir)

    def model_name(self) -> str:
        return f"gsam:{self.cfg.gsam.checkpoint}+{self.cfg.gsam.sam_checkpoint}"

    def model_settings(self) -> dict:
        return self.cfg.gsam.model_dump()


class SegmentStage(BackendStage):
    name = "segment"
    requires = ("t2i",)
    reads = ("filters",)
    version = 3  # overlaps wait for depth (filters.overlap: depth)
    backend_types = {"procedural": ProceduralSegment, "transformers": TransformersSegment, "gsam": GSAMSegment}
    backends = tuple(backend_types)

    # The real backends' models, once loaded.
    grounder = BackendAttribute()
    segmenter = BackendAttribute()

    def model_name(self) -> str:
        return self.backend.model_name()

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        failed = self._cut_references(samples)
        rest = [s for s in samples if s.key not in failed]
        segmented = dict(zip([s.key for s in rest], self._segment(rest), strict=True))
        return [failed.get(s.key) or segmented[s.key] for s in samples]

    def _cut_references(self, samples: list[Sample]) -> dict[str, Rejected]:
        """Cut ingested whole references out first; a sample that loses every subject is rejected."""
        whole = [s for s in samples if given(s, "references")]
        if not whole:
            return {}
        if not hasattr(self.backend, "cut_references"):
            return {s.key: self.reject(s, "reference_needs_a_segmenter") for s in whole}
        return {r.key: r for r in self.backend.cut_references(whole) if isinstance(r, Rejected)}

    def _segment(self, samples: list[Sample]) -> list[Sample | Rejected]:
        # An ingested sample whose source gave its masks keeps them (scored 1.0, filtered alike).
        own = {s.key: finish_segmentation(self, s, s.array("masks", self.name), [1.0] * len(s.subjects))
               for s in samples if given(s, "masks")}  # fmt: skip
        rest = [s for s in samples if s.key not in own]
        found = dict(zip([s.key for s in rest], self.backend.segment(rest), strict=True)) if rest else {}
        return [own[s.key] if s.key in own else found[s.key] for s in samples]

    def _oracle(self, s: Sample) -> Sample | Rejected:
        instance = s.array("truth_instance", self.name)
        masks = np.stack([dilate(instance == subj["sid"] + 1, self.cfg.dilate_px) for subj in s.subjects]) if s.subjects else np.zeros(
            (0, *instance.shape), dtype=bool
        )
        return finish_segmentation(self, s, masks, [1.0] * len(s.subjects))


def finish_segmentation(
    stage: Stage, s: Sample, masks: np.ndarray, scores: list[float], reasons: dict[int, str] | None = None
) -> Sample | Rejected:
    """Record masks, 2D boxes and scores, then apply the recipe's filters (any backend).

    `reasons`: subjects the backend already knows to drop (not grounded, same object)."""
    height, width = masks.shape[1:]
    rules = stage.run_cfg.filters
    s.set_array("masks", masks)
    for subj, mask, score in zip(s.subjects, masks, scores, strict=True):
        subj["score"] = float(score)
        subj.update(mask_figures(mask, width, height))
    found = dict(reasons or {})
    for i, why in subject_rejections(masks, scores, rules).items():
        found.setdefault(i, why)
    stage.drop_subjects(s, found)
    if "depth" in s.arrays:  # depth came first (a custom order): overlaps can be resolved now
        return make_masks_exclusive(stage, s)
    return stage.check_subject_count(s)
