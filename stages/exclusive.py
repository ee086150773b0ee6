"""Exclusive masks, the step that runs once a sample has both masks and depth (sigma-set/2).

Not a stage of its own: it belongs to whichever of segment and depth comes second in the
order (depth, in every shipped config), so every later stage (boxes, repose, idcheck) works on
the masks the dataset will hold. A pixel two subjects claim goes to the nearer one
(datagen.recipe.instances); a subject left with less than `filters.min_exclusive_share` of
its mask is dropped as 'occluded'; then each subject's box_2d and areas describe its
exclusive mask and the recipe's mask filters run again on them.
"""

from __future__ import annotations

import numpy as np

from datagen.recipe.filters import mask_figures, subject_rejections
from datagen.recipe.instances import exclusive_subjects
from datagen.stages.base import PENDING, Stage
from datagen.store.inflight import Rejected, Sample


def make_masks_exclusive(stage: Stage, s: Sample) -> Sample | Rejected:
    masks = s.array("masks", stage.name)
    if not s.subjects:
        return stage.check_subject_count(s)
    rules = stage.run_cfg.filters
    height, width = masks.shape[1:]
    alive = [i for i, subj in enumerate(s.subjects) if PENDING not in subj]
    exclusive, reasons = exclusive_subjects(masks, s.array("depth", stage.name), alive, rules.min_exclusive_share)
    exclusive = np.stack(exclusive)
    if not np.array_equal(exclusive, masks):
        s.set_array("masks", exclusive)
    kept = [i for i in alive if i not in reasons]
    for i in kept:
        s.subjects[i].update(mask_figures(exclusive[i], width, height))
    if kept:
        scores = [s.subjects[i].get("score", 1.0) for i in kept]
        for j, why in subject_rejections(exclusive[kept], scores, rules).items():
            reasons.setdefault(kept[j], why)
    stage.drop_subjects(s, reasons)
    return stage.check_subject_count(s)
