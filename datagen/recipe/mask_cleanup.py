"""Clean-up of model masks before their boxes are measured: SAM leaves pin holes inside a
subject and specks far from it, and one speck stretches the tight box (and so the area filter,
the 3D box's points and the identity crop)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# 8-connectivity for the subject, so a thin diagonal part stays one piece.
_EIGHT = np.ones((3, 3), dtype=bool)


def drop_islands(mask: np.ndarray, min_frac: float) -> np.ndarray:
    """Keep the pieces of at least `min_frac` of the largest piece's area."""
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= min_frac * sizes.max()) + 1
    return np.isin(labels, keep)


def fill_holes(mask: np.ndarray, max_frac: float) -> np.ndarray:
    """Fill enclosed background pieces smaller than `max_frac` of the mask's area.

    A hole is background not connected (4-connectivity) to the image border; large ones are
    kept, since they can be real (the inside of a mug's handle)."""
    area = int(mask.sum())
    if area == 0 or max_frac <= 0:
        return mask.copy()
    background = ~mask
    labels, n = ndimage.label(background)
    if n == 0:
        return mask.copy()
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    sizes = np.bincount(labels.ravel())
    small = np.flatnonzero(sizes < max_frac * area)
    holes = np.setdiff1d(small[small > 0], border)
    return mask | np.isin(labels, holes)


def clean_mask(mask: np.ndarray, fill_holes_frac: float, min_island_frac: float) -> np.ndarray:
    """Specks first (so they do not count toward the area that bounds hole size), then holes."""
    mask = np.asarray(mask, dtype=bool)
    return fill_holes(drop_islands(mask, min_island_frac), fill_holes_frac)
