"""Exclusive subject masks (sigma-set/2, FORMAT.md): a pixel two subjects claim goes to the
nearer one, and the masks then fit in one instance map (0 = no subject, i + 1 = subject i).

"Nearer" is per subject, not per pixel (one depth map cannot say which of two claims a pixel
belongs to): the subject whose median depth over its own mask is smaller is in front. This is
the paper's "remove duplicate or overlapping masks and only keep one of them", made precise:
both subjects stay, the one behind loses only the pixels the front one covers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_INSTANCES = 255  # instances.png is 8 bit


def subject_depths(masks: Sequence[np.ndarray], depth: np.ndarray) -> list[float]:
    """Median valid depth over each mask; inf where the mask has no valid depth (it goes last)."""
    valid = np.isfinite(depth) & (depth > 0)
    out = []
    for mask in masks:
        values = depth[np.asarray(mask, dtype=bool) & valid]
        out.append(float(np.median(values)) if values.size else float("inf"))
    return out


def exclusive_by_depth(masks: Sequence[np.ndarray], depth: np.ndarray) -> list[np.ndarray]:
    """The masks made exclusive: front subjects keep contested pixels (ties: the lower index)."""
    depths = subject_depths(masks, depth)
    order = sorted(range(len(masks)), key=lambda i: (depths[i], i))
    taken = np.zeros(depth.shape, dtype=bool)
    out: list[np.ndarray | None] = [None] * len(masks)
    for i in order:
        mine = np.asarray(masks[i], dtype=bool) & ~taken
        out[i] = mine
        taken |= mine
    return out  # type: ignore[return-value]


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
