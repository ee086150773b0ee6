"""Coarse to fine controls in one generation (paper appendix A.5), pure numpy.

One layout, each subject under its own structure granularity:
- "mask":  routing region = its precise mask (dilated by dilate_px); I_T = the sample's depth
           inside the precise mask (as mode "masks").
- "box2d": routing region = its filled `box_2d` (as mode "boxes2d"); no structure (I_T 0).
- "box3d": routing region = the projected solid of its `box_3d` under the sample's camera;
           I_T = the rendered box depth (as mode "boxes3d").
I_T is encoded once, by conditioning.encode_depth, over the union of the depth-carrying
subjects (mask and box3d), so mask and box3d subjects share one inverse-depth scale. Where
depth-carrying subjects overlap, the nearer surface wins, as between boxes in "boxes3d".
With one granularity for every subject the result is exactly that single mode's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from datagen.recipe.conditioning import (
    Layout,
    box2d_region,
    control_image,
    dilate_mask,
    encode_depth,
    precise_masks,
    render_box3d,
    routing_maps,
)
from datagen.recipe.geometry import valid_depth

GRANULARITIES: tuple[str, ...] = ("mask", "box2d", "box3d")
# The single structure mode a granularity reproduces when every subject uses it.
SINGLE_MODE = {"mask": "masks", "box2d": "boxes2d", "box3d": "boxes3d"}


def cycle_granularities(n: int) -> list[str]:
    """The default assignment: mask, box2d, box3d, mask, ... for n subjects in identity order."""
    return [GRANULARITIES[i % len(GRANULARITIES)] for i in range(int(n))]


def check_granularities(granularities: Sequence[str], n: int) -> list[str]:
    """The list itself, after checking it names one known granularity per subject (ValueError)."""
    grans = [str(g) for g in granularities]
    unknown = [g for g in grans if g not in GRANULARITIES]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a granularity; use {', '.join(GRANULARITIES)}")
    if len(grans) != n:
        raise ValueError(f"{len(grans)} granularities for {n} subjects; give one per subject")
    return grans


def mixed_structure(
    layout: Layout, granularities: Sequence[str], dilate_px: int = 0, aspect: float | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """(per-subject regions, I_T) with subject i under granularities[i]. `aspect` applies to boxes only.

    Needs the masks + depth when any subject is "mask", the camera and those subjects' box_3d
    when any is "box3d", and box_2d for the "box2d" ones."""
    grans = check_granularities(granularities, len(layout.subjects))
    w, h = layout.width, layout.height
    masks = precise_masks(layout, "mixed") if "mask" in grans else None
    if "box3d" in grans and layout.camera is None:
        raise ValueError("mode 'mixed' with box3d subjects needs the sample's camera")
    regions: list[np.ndarray] = []
    on_masks = np.zeros((h, w), dtype=bool)
    nearest = np.full((h, w), np.inf)  # inf: no depth (encode_depth leaves it 0)
    for i, (subject, g) in enumerate(zip(layout.subjects, grans)):
        if g == "mask":
            regions.append(dilate_mask(masks[i], dilate_px))
            on_masks |= masks[i]  # depth on the precise mask, not the dilated ring (as "masks")
        elif g == "box3d":
            z = render_box3d(subject["box_3d"], layout.camera, w, h, dilate_px, aspect)
            regions.append(np.isfinite(z))
            nearest = np.minimum(nearest, z)
        else:
            regions.append(box2d_region(subject["box_2d"], w, h, dilate_px, aspect))
    if masks is not None:
        depth = np.asarray(layout.depth, dtype=np.float64)
        nearest = np.minimum(nearest, np.where(on_masks & valid_depth(depth), depth, np.inf))
    # I_T's support: the precise masks (their invalid-depth pixels stay 0) and the box solids.
    return regions, encode_depth(nearest, on_masks | np.isfinite(nearest))


def mixed_control_image(
    layout: Layout, granularities: Sequence[str] | None = None, dilate_px: int = 0, aspect: float | None = None
) -> np.ndarray:
    """I_C (uint8 H x W x 3) with per-subject granularities; None: cycle_granularities."""
    if len(layout.subjects) == 0:
        raise ValueError("control_image needs at least one subject")
    if granularities is None:
        granularities = cycle_granularities(len(layout.subjects))
    regions, i_t = mixed_structure(layout, granularities, dilate_px, aspect)
    asc, dsc = routing_maps(regions)
    return np.stack([asc, dsc, i_t], axis=-1)


def layout_control(
    layout: Layout, mode: str, granularities: Sequence[str] | None = None, dilate_px: int = 0,
    aspect: float | None = None,
) -> np.ndarray:  # fmt: skip
    """I_C for every inference mode: conditioning's (masks, boxes3d, boxes2d, full_depth) or "mixed".

    `granularities` goes with "mixed" only (None there: cycle_granularities)."""
    if mode == "mixed":
        return mixed_control_image(layout, granularities, dilate_px, aspect)
    if granularities is not None:
        raise ValueError(f"granularities go with mode 'mixed', not {mode!r}")
    return control_image(layout, mode, dilate_px, aspect)
