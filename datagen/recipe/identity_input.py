"""The input of a re-pose edit: the subject cut out with its mask, on a neutral background,
centred and padded square, at the identity size."""

from __future__ import annotations

import numpy as np
from PIL import Image


def identity_input(image: np.ndarray, mask: np.ndarray, box: list[int] | None, size: int, fill: float, grey: int) -> np.ndarray:
    """(size, size, 3) uint8: the subject's pixels inside its mask, `grey` elsewhere.

    The subject's longer side spans `fill` of the square, so the edit has room to turn it. An
    empty mask (box None: a subject already marked for dropping) gives a plain grey square.
    """
    if box is None:
        return np.full((size, size, 3), grey, dtype=np.uint8)
    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1]
    alpha = mask[y0:y1, x0:x1]
    cut = np.where(alpha[..., None], crop, np.uint8(grey)).astype(np.uint8)
    h, w = cut.shape[:2]
    scale = fill * size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(cut).resize((nw, nh), Image.Resampling.LANCZOS))
    out = np.full((size, size, 3), grey, dtype=np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    return out
