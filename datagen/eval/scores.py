"""The arithmetic of SIGMA-GEN's metrics (paper, section 5), model-free and exact, so every
backend (DINOv2, SigLIP, MoGe-2) feeds the same code and known answers can be tested.

- Identity (DINO-I, SigLIP-I): the generated image cropped to each subject's `box_2d`, embedded,
  against that subject's identity image; cosine similarity x100, averaged over the subjects of
  an image, then over images (`mean_of_means`).
- Depth MSE over the subject regions. The paper gives no normalisation; datagen's: each map's
  inverse depth min-max normalised over the subject pixels where both maps are known (the
  conditioning's I_T rule, without its 8-bit rounding), so a generated scene at another metric
  scale is not punished, and the figure lies in [0, 1]. `depth_mse` also returns the metric
  MSE after aligning the output's scale to the condition's by the median ratio (m²), the
  figure to compare with if the paper's own is ever published.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from datagen.models.dinov2 import cosine_pairs
from datagen.recipe.geometry import valid_depth

Embed = Callable[[list[np.ndarray]], np.ndarray]  # uint8 RGB images -> (N, D) embeddings


def crop_box(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The image inside `box` ([x0, y0, x1, y1], x1/y1 exclusive), clipped to the image; at
    least one pixel, so a degenerate box still gives an embeddable crop."""
    h, w = image.shape[:2]
    x0, y0 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.floor(box[1]), 0, h - 1))
    x1, y1 = int(np.clip(np.ceil(box[2]), x0 + 1, w)), int(np.clip(np.ceil(box[3]), y0 + 1, h))
    return image[y0:y1, x0:x1]


def identity_scores(embed: Embed, image: np.ndarray, boxes: Sequence[Sequence[float]], identities: Sequence[np.ndarray]) -> list[float]:
    """Per subject: 100 x cos(embed(crop of the output at its box), embed(its identity image))."""
    if len(boxes) != len(identities):
        raise ValueError(f"{len(boxes)} boxes but {len(identities)} identity images")
    if not boxes:
        return []
    crops = [crop_box(image, box) for box in boxes]
    both = embed(crops + [np.asarray(x) for x in identities])
    n = len(crops)
    return [float(x) for x in 100.0 * cosine_pairs(both[:n], both[n:])]


def mean_of_means(per_image: Sequence[Sequence[float]]) -> float | None:
    """Average over the subjects of each image, then over images (images without a score skipped)."""
    means = [float(np.mean(scores)) for scores in per_image if len(scores)]
    return float(np.mean(means)) if means else None


@dataclass(frozen=True)
class DepthError:
    normalised_mse: float | None  # inverse depth min-max normalised over the compared pixels
    metric_mse: float | None  # m², the output scaled to the condition by the median ratio
    pixels: int  # subject pixels where both depths are known

    @property
    def mse_8bit(self) -> float | None:
        """normalised_mse on the 0-255 scale of an 8-bit depth image: the paper's Table 1 depth
        MSEs (26.35 to 216.2) read like squared errors of 8-bit depth maps, so this is the
        figure results put beside them."""
        return None if self.normalised_mse is None else self.normalised_mse * 255.0**2


def _normalised_inverse(depth: np.ndarray) -> np.ndarray:
    s = 1.0 / depth
    lo, hi = float(s.min()), float(s.max())
    return (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)


def depth_mse(output: np.ndarray, condition: np.ndarray, regions: np.ndarray) -> DepthError:
    """Depth MSE of a generated image's estimated depth against the conditioning depth, over the
    subject regions (`regions`: (N, H, W) or (H, W) bool) where both are known."""
    output, condition = np.asarray(output, np.float64), np.asarray(condition, np.float64)
    if output.shape != condition.shape:
        raise ValueError(f"output depth {output.shape} and condition {condition.shape} differ in shape")
    regions = np.asarray(regions, dtype=bool)
    inside = regions.any(axis=0) if regions.ndim == 3 else regions
    keep = inside & valid_depth(output) & valid_depth(condition)
    n = int(keep.sum())
    if n == 0:
        return DepthError(None, None, 0)
    out, cond = output[keep], condition[keep]
    normalised = float(np.mean((_normalised_inverse(out) - _normalised_inverse(cond)) ** 2))
    scaled = out * float(np.median(cond / out))
    return DepthError(normalised, float(np.mean((scaled - cond) ** 2)), n)
