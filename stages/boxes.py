"""boxes: a 3D box per subject, fitted on its depth points.

The same algorithm for every backend (datagen.recipe.box_fit): unproject the mask's pixels with the
depth and intrinsics, drop mask-edge pixels and outliers, fit. The default fit (`fit.method:
gravity`) finds the image's ground plane once and fits upright, amodal boxes standing on it
(datagen.recipe.gravity_box); each subject records the fit used under `boxes` (`method`,
`support`, `fallback`) and the sample counts them under meta `boxes`. A degenerate subject (too
few points, flat, no valid depth) or one that breaks the format's projection rule is dropped with
its reason (or marked, with `filters.apply: last`); it never fails the sample.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from datagen.recipe.filters import box3d_reason
from datagen.stages.base import Backend, BackendStage
from datagen.store.inflight import Rejected, Sample

if TYPE_CHECKING:
    from datagen.recipe.box_fit import BoxFit


class Open3DBoxes(Backend):
    """datagen.recipe.box_fit's fit, with the stage's `fit` settings."""

    def fit(self, depth: np.ndarray, masks: np.ndarray, camera: dict) -> tuple[list[BoxFit], bool]:
        """Every subject's fit, and whether a ground plane was found."""
        from datagen.recipe.box_fit import fit_image_boxes  # Open3D: loaded by the first fit, not with the stage

        fits, ground = fit_image_boxes(depth, masks, camera, self.cfg.fit)
        return fits, ground is not None


class BoxesStage(BackendStage):
    name = "boxes"
    requires = ("segment", "depth")
    reads = ("filters",)
    backend_types = {"open3d": Open3DBoxes}
    backends = tuple(backend_types)

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        return [self._one(s) for s in samples]

    def _one(self, s: Sample) -> Sample | Rejected:
        depth = s.array("depth", self.name)
        masks = s.array("masks", self.name)
        width, height = s.meta["width"], s.meta["height"]
        reasons: dict[int, str] = {}
        fits, ground = self.backend.fit(depth, masks[: len(s.subjects)], s.meta["camera"])
        counts = {"ground_found": ground, "method": {}, "fallback": {}}
        for i, (subj, fit) in enumerate(zip(s.subjects, fits, strict=True)):
            subj["boxes"] = {"num_points": fit.num_points, "method": fit.method, "support": fit.support,
                             "fallback": fit.fallback}
            if fit.method:
                counts["method"][fit.method] = counts["method"].get(fit.method, 0) + 1
            if fit.fallback:
                counts["fallback"][fit.fallback] = counts["fallback"].get(fit.fallback, 0) + 1
            if fit.box is None:
                reasons[i] = f"box3d_{fit.reason}"
                continue
            subj["box_3d"] = fit.box
            # The final filter's projection check, here so repose never works on a subject
            # the filter would drop.
            why = box3d_reason(subj, s.meta["camera"], width, height, self.run_cfg.filters)
            if why:
                reasons[i] = why
        s.meta["boxes"] = counts
        self.drop_subjects(s, reasons)
        return self.check_subject_count(s)
