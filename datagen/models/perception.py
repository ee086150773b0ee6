"""What every grounded-segmentation backend shares: the detection record, the choice of one
box per caption, and the two model interfaces the segment stage calls.

A backend (transformers, gsam) turns each (image, caption) pair into per-query scores over the
caption's tokens and pixel boxes; `best_detection` picks the caption's box the same way for
all of them, so the two stacks can be compared on the same images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Detection:
    """The box grounded for one caption."""

    box: tuple[float, float, float, float]  # pixels, x0 y0 x1 y1, continuous
    score: float  # the box's best token probability (what box_threshold bounds)
    phrase_frac: float  # share of the caption's tokens above text_threshold for this box

    def to_json(self) -> dict:
        return {
            "detector_box": [round(float(v), 2) for v in self.box],
            "detection_score": round(float(self.score), 6),
            "phrase_frac": round(float(self.phrase_frac), 6),
        }


def best_detection(
    token_probs: np.ndarray, boxes: np.ndarray, box_threshold: float, text_threshold: float
) -> Detection | None:
    """The highest-scoring box for one caption, or None when no box passes both thresholds.

    token_probs: (queries, caption tokens) sigmoid scores, restricted to the caption's own
    tokens (no [CLS], [SEP] or the closing '.'); boxes: (queries, 4) pixel xyxy. As in Grounding
    DINO's own post-processing, a box counts when its best token reaches `box_threshold` and at
    least one token reaches `text_threshold` (the phrase it grounds is not empty).
    """
    token_probs = np.asarray(token_probs, dtype=np.float64)
    if token_probs.ndim != 2 or token_probs.shape[1] == 0 or token_probs.shape[0] == 0:
        return None
    scores = token_probs.max(axis=1)
    phrase = (token_probs >= text_threshold).mean(axis=1)
    ok = (scores >= box_threshold) & (phrase > 0)
    if not ok.any():
        return None
    best = int(np.argmax(np.where(ok, scores, -np.inf)))
    x0, y0, x1, y1 = (float(v) for v in np.asarray(boxes, dtype=np.float64)[best])
    return Detection((x0, y0, x1, y1), float(scores[best]), float(phrase[best]))


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def grounding_rejections(detections: list[Detection | None], same_object_iou: float) -> dict[int, str]:
    """Subjects to drop before SAM: captions that grounded nothing, and captions whose box is
    another caption's object (detector boxes above `same_object_iou`; the higher score stays,
    ties keep the earlier subject)."""
    reasons = {i: "not_grounded" for i, d in enumerate(detections) if d is None}
    alive = sorted((i for i in range(len(detections)) if i not in reasons), key=lambda i: (-detections[i].score, i))
    kept: list[int] = []
    for i in alive:
        if any(box_iou(detections[i].box, detections[j].box) > same_object_iou for j in kept):
            reasons[i] = "same_object"
        else:
            kept.append(i)
    return reasons


class Grounder(Protocol):
    """Open-vocabulary detection: one pass per (image, caption) pair, never 'a . b . c'."""

    def detect(self, images: list[np.ndarray], captions: list[list[str]]) -> list[list[Detection | None]]:
        """For each image (H, W, 3 uint8) and each of its captions, the best box or None."""
        ...


class BoxSegmenter(Protocol):
    """Box-prompted segmentation (SAM)."""

    def segment(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each image and its (k, 4) pixel xyxy boxes: (k, H, W) bool masks at the image's
        size and (k,) predicted mask-quality scores. k may be 0."""
        ...
