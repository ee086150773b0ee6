"""Exclusive subject masks (sigma-set/2, FORMAT.md): a pixel two subjects claim goes to the
nearer one, and the masks then fit in one instance map (0 = no subject, i + 1 = subject i).

"Nearer" is per subject, not per pixel (one depth map cannot say which of two claims a pixel
belongs to): the subject whose median depth over its own, uncontested pixels is smaller is in
front. This is
the paper's "remove duplicate or overlapping masks and only keep one of them", made precise:
both subjects stay, the one behind loses only the pixels the front one covers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_INSTANCES = 255  # instances.png is 8 bit


def subject_depths(masks: Sequence[np.ndarray], depth: np.ndarray) -> list[float]:
    """Each subject's depth: the median valid depth over the pixels of its mask no other mask
    claims (contested pixels show whichever subject is in front), over its whole mask when it
    has none; inf where the mask has no valid depth (it goes last)."""
    valid = np.isfinite(depth) & (depth > 0)
    masks = [np.asarray(mask, dtype=bool) for mask in masks]
    claims = np.sum(masks, axis=0) if masks else np.zeros(np.shape(depth), dtype=int)
    out = []
    for mask in masks:
        values = depth[mask & valid & (claims == 1)]
        if values.size == 0:
            values = depth[mask & valid]
        out.append(float(np.median(values)) if values.size else float("inf"))
    return out


def exclusive_subjects(
    masks: Sequence[np.ndarray], depth: np.ndarray, alive: Sequence[int], min_share: float
) -> tuple[list[np.ndarray], dict[int, str]]:
    """The `alive` masks made exclusive, front to back: a subject keeps the pixels no nearer kept
    subject claims; one keeping less than `min_share` of its mask is dropped ('occluded') and
    claims nothing, so those behind it keep what it covered. Masks not in `alive` (already
    dropped, or marked for the filter stage) are returned unchanged and claim nothing.
    Returns (masks, {index: reason})."""
    alive = list(alive)
    depths = subject_depths([masks[i] for i in alive], depth)
    order = sorted(zip(depths, alive, strict=True))  # nearest first; ties: the lower index
    taken = np.zeros(np.shape(depth), dtype=bool)
    out = [np.asarray(m, dtype=bool) for m in masks]
    reasons: dict[int, str] = {}
    for _, i in order:
        mine = out[i] & ~taken
        if kept_share(out[i], mine) < min_share:
            reasons[i] = "occluded"
            continue
        out[i] = mine
        taken |= mine
    return out, reasons


def exclusive_by_depth(masks: Sequence[np.ndarray], depth: np.ndarray) -> list[np.ndarray]:
    """Every mask made exclusive by depth order, none dropped."""
    return exclusive_subjects(masks, depth, range(len(masks)), 0.0)[0]


def kept_share(before: np.ndarray, after: np.ndarray) -> float:
    """What part of a subject's mask survived exclusivity (1.0 for an empty mask)."""
    area = int(np.count_nonzero(before))
    return np.count_nonzero(after) / area if area else 1.0


def encode_instances(masks: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 instance map of exclusive masks: i + 1 where subject i is, 0 elsewhere."""
    if len(masks) > MAX_INSTANCES:
        raise ValueError(f"instances.png holds at most {MAX_INSTANCES} subjects, got {len(masks)}")
    if not masks:
        raise ValueError("no masks to encode")
    instances = np.zeros(np.asarray(masks[0]).shape, dtype=np.uint8)
    for i, mask in enumerate(masks):
        mask = np.asarray(mask, dtype=bool)
        if np.any(instances[mask]):
            raise ValueError(f"mask {i} overlaps an earlier one: make the masks exclusive first")
        instances[mask] = i + 1
    return instances


def decode_instances(instances: np.ndarray, count: int) -> list[np.ndarray]:
    """Subject i's mask is `instances == i + 1`; values above `count` are an error."""
    instances = np.asarray(instances)
    if instances.ndim != 2:
        raise ValueError(f"instances.png: expected one channel, got shape {instances.shape}")
    if instances.size and int(instances.max()) > count:
        raise ValueError(f"instances.png: value {int(instances.max())} but only {count} subjects")
    return [instances == i + 1 for i in range(count)]
