"""A model-free identity similarity: the Bhattacharyya coefficient of the subject's colour
histogram in the image and in its identity image. It catches an edit that lost the subject
(another object, an empty background) but cannot tell a copy from a re-pose; DINOv2 can."""

from __future__ import annotations

import numpy as np

BINS = 8  # per channel: coarse enough that relighting moves few pixels across bins


def colour_histogram(pixels: np.ndarray) -> np.ndarray:
    """Normalised joint RGB histogram of (N, 3) uint8 pixels; all zeros for no pixels."""
    pixels = np.asarray(pixels, dtype=np.uint8).reshape(-1, 3)
    q = (pixels // (256 // BINS)).astype(np.int64)
    counts = np.bincount((q[:, 0] * BINS + q[:, 1]) * BINS + q[:, 2], minlength=BINS**3).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def foreground(image: np.ndarray, tolerance: int = 24) -> np.ndarray:
    """Pixels that differ from the image's border colour (the identity's flat background)."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).astype(np.int16)
    background = np.median(border, axis=0)
    return np.abs(image.astype(np.int16) - background).max(axis=-1) > tolerance


def histogram_similarity(image: np.ndarray, mask: np.ndarray, identity: np.ndarray) -> float:
    """Similarity in [0, 1] of the subject's pixels (image under mask) and the identity's subject."""
    a = colour_histogram(image[np.asarray(mask, dtype=bool)])
    b = colour_histogram(identity[foreground(identity)])
    return float(np.sqrt(a * b).sum())
