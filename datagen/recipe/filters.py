"""RECIPE.md's subject filters as pure functions, shared by every segment backend and the
final filter stage."""

from __future__ import annotations

import numpy as np

from datagen.config import FilterRules
from datagen.recipe.geometry import mask_box_2d, project_points


def box_area_frac(box: list[int], width: int, height: int) -> float:
    x0, y0, x1, y1 = box
    return (x1 - x0) * (y1 - y0) / float(width * height)


def mask_figures(mask: np.ndarray, width: int, height: int) -> dict:
    """What a subject's json says about its mask: tight box (None if empty) and area shares."""
    box = mask_box_2d(mask)
    return {
        "box_2d": box,
        "box_area_frac": box_area_frac(box, width, height) if box else 0.0,
        "mask_area_frac": float(np.count_nonzero(mask)) / (width * height),
    }


def mask_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller mask: 1.0 for a duplicate or a mask inside another."""
    smaller = min(int(a.sum()), int(b.sum()))
    if smaller == 0:
        return 0.0
    return float(np.logical_and(a, b).sum()) / smaller


def subject_rejections(masks: np.ndarray, scores: list[float], rules: FilterRules) -> dict[int, str]:
    """Reasons to drop subjects, by position: empty mask, box area out of range, overlap.

    With `overlap: score` (the paper's rule), overlapping or duplicate masks keep the one with
    the higher score (ties: the earlier one); with `overlap: depth` overlaps wait for depth
    (exclusive_subjects).
    """
    n, height, width = masks.shape
    reasons: dict[int, str] = {}
    for i in range(n):
        box = mask_box_2d(masks[i])
        if box is None:
            reasons[i] = "empty_mask"
            continue
        frac = box_area_frac(box, width, height)
        if frac < rules.min_box_area_frac:
            reasons[i] = "box_area_small"
        elif frac > rules.max_box_area_frac:
            reasons[i] = "box_area_large"
    if rules.overlap != "score":
        return reasons
    alive = sorted((i for i in range(n) if i not in reasons), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in alive:
        if any(mask_overlap(masks[i], masks[j]) > rules.max_mask_overlap for j in kept):
            reasons[i] = "overlap"
        else:
            kept.append(i)
    return reasons


def subject_count_reason(count: int, rules: FilterRules) -> str | None:
    if count < rules.min_subjects:
        return "too_few_subjects"
    if count > rules.max_subjects:
        return "too_many_subjects"
    return None


def box_iou_2d(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box3d_reason(subject: dict, camera: dict, width: int, height: int, rules: FilterRules) -> str | None:
    """Why a subject's 3D box breaks the format's projection invariant, or None."""
    corners = np.asarray(subject["box_3d"]["corners"], dtype=np.float64)
    if np.any(corners[:, 2] <= 0):
        return "box3d_behind_camera"
    uv = project_points(corners, camera)
    mx, my = rules.box3d_margin_frac * width, rules.box3d_margin_frac * height
    if uv[:, 0].min() < -mx or uv[:, 0].max() > width + mx or uv[:, 1].min() < -my or uv[:, 1].max() > height + my:
        return "box3d_outside_image"
    projected = [uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()]
    if box_iou_2d(projected, subject["box_2d"]) < rules.min_box3d_iou_2d:
        return "box3d_far_from_box_2d"
    return None
