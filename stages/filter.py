"""filter: the final sample rules, so every kept sample meets FORMAT.md's invariants.

Re-checks the recipe's subject filters on what survived (box area, overlap), that every
subject has a 3D box whose corners project inside the image and near its 2D box, and the
subject count. The runner writes what survives as the final shard.
"""

from __future__ import annotations

import numpy as np

from datagen.filters import subject_count_reason, subject_rejections
from datagen.geometry import project_points
from datagen.sample import Rejected, Sample
from datagen.stage import Stage


def box_iou_2d(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box3d_reason(subject: dict, camera: dict, width: int, height: int, margin: float, min_iou: float) -> str | None:
    """Why a subject's 3D box breaks the format's projection invariant, or None."""
    corners = np.asarray(subject["box_3d"]["corners"], dtype=np.float64)
    if np.any(corners[:, 2] <= 0):
        return "box3d_behind_camera"
    uv = project_points(corners, camera)
    mx, my = margin * width, margin * height
    if uv[:, 0].min() < -mx or uv[:, 0].max() > width + mx or uv[:, 1].min() < -my or uv[:, 1].max() > height + my:
        return "box3d_outside_image"
    projected = [uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()]
    if box_iou_2d(projected, subject["box_2d"]) < min_iou:
        return "box3d_far_from_box_2d"
    return None


class FilterStage(Stage):
    name = "filter"
    requires = ("segment", "boxes", "repose")
    reads = ("filters", "output")
    backends = ("rules",)

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        return [self._one(s) for s in samples]

    def _one(self, s: Sample) -> Sample | Rejected:
        rules = self.run_cfg.filters
        width, height = s.meta["width"], s.meta["height"]
        reasons: dict[int, str] = {}
        for i, subj in enumerate(s.subjects):
            if "box_3d" not in subj:
                reasons[i] = "no_box_3d"
            elif "identity" not in subj:
                reasons[i] = "no_identity"
            else:
                why = box3d_reason(
                    subj, s.meta["camera"], width, height, self.cfg.box3d_margin_frac, self.cfg.min_box3d_iou_2d
                )
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
