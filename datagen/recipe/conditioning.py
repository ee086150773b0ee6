"""SIGMA-GEN's conditioning images (RECIPE.md, "How the trainer uses a sample"), pure numpy.

Shared by the trainer's data pipeline, `datagen sample` and the dataset builder's optional
`control.png` / `identity.png`. Everything works at the sample's own size (any H x W, square or
not); resizing to a training size belongs to the trainer's pipeline.

- Routing I_R: subject i (0-based, identity order) painted with 10 * (i + 1), background 0.
  `asc` pastes subjects 0, 1, ..., N-1 (later ones overwrite earlier ones), `dsc` N-1, ..., 0.
- Structure I_T, depth encoding rule (one rule, everywhere):
      s = 1 / z over the pixels inside the subject regions whose depth z is finite and > 0;
      code = 1 + numpy.round(254 * (s - s_min) / (s_max - s_min))   (nearest 255, farthest 1)
      code = 255 for every such pixel when s_max == s_min (a single depth: all "near");
      code = 0 outside the regions and where depth is NaN / inf / <= 0 (no structure).
  Per-image normalisation: I_T carries relative (inverse) depth, not metres, so the same
  scene at another scale gives the same image.
- Structure modes: "masks" (precise masks, the sample's depth), "boxes3d" (each subject's 3D
  box rendered with the sample's camera: ray casting through pixel centres, z-depth of the
  nearest box surface), "boxes2d" (filled `box_2d` rectangles, I_T all zero). The training
  modes are these three (MODES). Inference adds "full_depth" (paper Table 3, "Full depth"):
  routing from the precise masks as in "masks", but I_T is the whole image's depth, every pixel
  with valid depth, encoded by the same rule normalised over the whole image. Per-subject
  granularity (paper A.5) lives in datagen.recipe.mixed_granularity.
- I_C = channel-concat(I_R_asc, I_R_dsc, I_T): uint8 H x W x 3.
- I_S: the identity images stacked vertically, block i = subject i.

A `Layout` carries what the sample gives (size, subjects, masks + depth, camera); the structure
mode and the augmentation parameters are plain arguments: the caller draws them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from datagen.recipe.geometry import mask_box_2d, valid_depth
from datagen.schema import routing_intensity

StructureMode = Literal["masks", "boxes3d", "boxes2d", "full_depth"]
# What training draws from (TrainConfig.augment.structure_modes); `structure` also takes full_depth.
MODES: tuple[str, ...] = ("masks", "boxes3d", "boxes2d")
STRUCTURE_MODES: tuple[str, ...] = (*MODES, "full_depth")


# ---------------------------------------------------------------- routing and structure


def routing_maps(regions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(asc, dsc) uint8 H x W routing maps from per-subject bool regions in identity order."""
    if len(regions) == 0:
        raise ValueError("routing_maps needs at least one region (to know the image size)")
    regions = [np.asarray(r, dtype=bool) for r in regions]
    shape = regions[0].shape
    if any(r.shape != shape for r in regions):
        raise ValueError(f"regions differ in shape: {sorted({r.shape for r in regions})}")
    asc = np.zeros(shape, dtype=np.uint8)
    dsc = np.zeros(shape, dtype=np.uint8)
    n = len(regions)
    for i in range(n):
        asc[regions[i]] = routing_intensity(i)
        j = n - 1 - i
        dsc[regions[j]] = routing_intensity(j)
    return asc, dsc


def encode_depth(depth: np.ndarray, region_union: np.ndarray) -> np.ndarray:
    """uint8 I_T by the module's rule: inverse depth normalised over the region, near 255, far 1."""
    depth = np.asarray(depth, dtype=np.float64)
    region_union = np.asarray(region_union, dtype=bool)
    if depth.shape != region_union.shape:
        raise ValueError(f"depth {depth.shape} and region {region_union.shape} differ in shape")
    out = np.zeros(depth.shape, dtype=np.uint8)
    keep = region_union & valid_depth(depth)
    if not keep.any():
        return out
    s = 1.0 / depth[keep]
    lo, hi = float(s.min()), float(s.max())
    if hi > lo:
        out[keep] = (1.0 + np.round(254.0 * (s - lo) / (hi - lo))).astype(np.uint8)
    else:
        out[keep] = 255
    return out


# ---------------------------------------------------------------- region augmentation


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Binary dilation with a (2p+1)^2 square, clipped to the image (a rectangle grows by p)."""
    mask = np.asarray(mask, dtype=bool)
    box = mask_box_2d(mask)
    if pixels <= 0 or box is None:
        return mask.copy()
    p = int(pixels)
    h, w = mask.shape
    x0, y0, x1, y1 = box
    # Work on the mask's box grown by p only: subjects cover a few percent of the image.
    gx0, gy0, gx1, gy1 = max(0, x0 - p), max(0, y0 - p), min(w, x1 + p), min(h, y1 + p)
    crop = np.pad(mask[gy0:gy1, gx0:gx1], p, constant_values=False)
    ch, cw = gy1 - gy0, gx1 - gx0
    # The square is separable: OR over the column shifts, then over the row shifts.
    rows = np.zeros((ch + 2 * p, cw), dtype=bool)
    for dx in range(2 * p + 1):
        rows |= crop[:, dx : dx + cw]
    grown = np.zeros((ch, cw), dtype=bool)
    for dy in range(2 * p + 1):
        grown |= rows[dy : dy + ch]
    out = np.zeros_like(mask)
    out[gy0:gy1, gx0:gx1] = grown
    return out


def jitter_box_2d(box: Sequence[float], aspect: float | None = None, dilate_px: int = 0) -> list[int]:
    """[x0, y0, x1, y1] after aspect jitter about the centre, then growth by dilate_px per side.

    aspect multiplies width / height while keeping the area: width * sqrt(a), height / sqrt(a).
    Edges round half up, so the centre moves by at most half a pixel. Not clipped.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if aspect is not None:
        if aspect <= 0:
            raise ValueError(f"aspect must be > 0, got {aspect}")
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        hw, hh = (x1 - x0) / 2.0 * np.sqrt(aspect), (y1 - y0) / 2.0 / np.sqrt(aspect)
        x0, x1, y0, y1 = cx - hw, cx + hw, cy - hh, cy + hh
    k = int(dilate_px)
    edges = [np.floor(x0 + 0.5) - k, np.floor(y0 + 0.5) - k, np.floor(x1 + 0.5) + k, np.floor(y1 + 0.5) + k]
    return [int(e) for e in edges]


def box2d_region(
    box: Sequence[float], width: int, height: int, dilate_px: int = 0, aspect: float | None = None
) -> np.ndarray:
    """Bool H x W: the filled (jittered, grown) box, x1/y1 exclusive, clipped to the image."""
    x0, y0, x1, y1 = jitter_box_2d(box, aspect, dilate_px)
    out = np.zeros((height, width), dtype=bool)
    out[max(0, y0) : max(0, min(height, y1)), max(0, x0) : max(0, min(width, x1))] = True
    return out


# ---------------------------------------------------------------- 3D boxes


def _box_affine(box: dict, camera: dict, dilate_px: int, aspect: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(centre, A) with the solid box = {centre + A @ q : |q|_inf <= 1}, augmentations applied.

    dilate_px grows every half extent by dilate_px pixels' worth of metres at the centre's depth
    (so the projection grows by about dilate_px); aspect scales camera x by sqrt(a) and camera y
    by 1/sqrt(a) about the centre (the 2D rule, lifted to 3D).
    """
    c = np.asarray(box["center"], dtype=np.float64).reshape(3)
    half = np.asarray(box["extent"], dtype=np.float64).reshape(3) / 2.0
    r = np.asarray(box["rotation"], dtype=np.float64).reshape(3, 3)
    if dilate_px > 0:
        f = (float(camera["fx"]) + float(camera["fy"])) / 2.0
        half = half + dilate_px * abs(c[2]) / f
    a = r * half  # columns: box axes scaled by their half extents
    if aspect is not None:
        if aspect <= 0:
            raise ValueError(f"aspect must be > 0, got {aspect}")
        a = np.diag([np.sqrt(aspect), 1.0 / np.sqrt(aspect), 1.0]) @ a
    return c, a


def render_box3d(
    box: dict, camera: dict, width: int, height: int, dilate_px: int = 0, aspect: float | None = None
) -> np.ndarray:
    """float64 H x W z-depth of the nearest box surface along each pixel-centre ray; inf = miss.

    Rays d = K^-1 [u, v, 1] (z component 1, so the ray parameter t is z-depth) are cast only
    through the bounding rectangle of the projected corners, and intersected with the box by
    the slab method in the box frame (where the box is the cube [-1, 1]^3).
    """
    fx, fy, cx, cy = (float(camera[k]) for k in ("fx", "fy", "cx", "cy"))
    c, a = _box_affine(box, camera, dilate_px, aspect)
    out = np.full((height, width), np.inf)
    corners = c + np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float) @ a.T
    if np.all(corners[:, 2] > 0):
        u = fx * corners[:, 0] / corners[:, 2] + cx
        v = fy * corners[:, 1] / corners[:, 2] + cy
        c0, c1 = max(0, int(np.floor(u.min() - 0.5))), min(width, int(np.ceil(u.max() + 0.5)))
        r0, r1 = max(0, int(np.floor(v.min() - 0.5))), min(height, int(np.ceil(v.max() + 0.5)))
    else:  # a corner behind the camera: the projection is unbounded, cast every pixel
        c0, c1, r0, r1 = 0, width, 0, height
    if c0 >= c1 or r0 >= r1:
        return out
    cols, rows = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
    dirs = np.stack([(cols - cx) / fx, (rows - cy) / fy, np.ones_like(cols)], axis=-1)
    inv = np.linalg.inv(a)
    o = inv @ -c  # camera origin in the box frame
    d = dirs @ inv.T
    d = np.where(d == 0.0, 1e-300, d)  # a ray parallel to a slab: inside it or not by sign
    t1, t2 = (-1.0 - o) / d, (1.0 - o) / d
    t_near = np.minimum(t1, t2).max(axis=-1)
    t_far = np.maximum(t1, t2).min(axis=-1)
    hit = (t_near <= t_far) & (t_far > 0)
    # The camera inside a box sees the exit surface; otherwise the entry surface.
    t = np.where(t_near > 0, t_near, t_far)
    out[r0:r1, c0:c1] = np.where(hit, t, np.inf)
    return out


def box3d_structure(
    boxes: Sequence[dict], camera: dict, width: int, height: int, dilate_px: int = 0, aspect: float | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """(regions, depth): each box's projected solid, and the nearest surface over all (NaN = none)."""
    depths = [render_box3d(b, camera, width, height, dilate_px, aspect) for b in boxes]
    regions = [np.isfinite(z) for z in depths]
    nearest = np.min(depths, axis=0) if depths else np.full((height, width), np.inf)
    return regions, np.where(np.isfinite(nearest), nearest, np.nan)


# ---------------------------------------------------------------- the control image


# eq=False: numpy fields make a generated == ambiguous, and nothing compares layouts.
@dataclass(frozen=True, eq=False)
class Layout:
    """What one sample gives every structure mode: its size, its subjects in identity order, and as
    the mode needs them, the precise masks + depth ("masks") or the camera ("boxes3d")."""

    width: int
    height: int
    subjects: Sequence[dict]
    camera: dict | None = None
    masks: np.ndarray | None = None
    depth: np.ndarray | None = None

    @classmethod
    def from_sample(cls, sample: dict[str, Any]) -> Layout:
        """The layout of a decoded sample: {"json": meta, "masks": (N,H,W), "depth": (H,W)}."""
        meta = sample["json"]
        return cls(
            int(meta["width"]), int(meta["height"]), meta["subjects"],
            camera=meta.get("camera"), masks=sample.get("masks"), depth=sample.get("depth"),
        )  # fmt: skip


def precise_masks(layout: Layout, mode: str) -> np.ndarray:
    """The layout's masks as bool (N, H, W), checked against its size and depth; `mode` names the asker."""
    if layout.masks is None or layout.depth is None:
        raise ValueError(f"mode {mode!r} needs the sample's masks and depth")
    masks = np.asarray(layout.masks, dtype=bool)
    size = (layout.height, layout.width)
    if masks.shape != (len(layout.subjects), *size) or np.shape(layout.depth) != size:
        want = f"{len(layout.subjects)} x {size[0]} x {size[1]}"
        raise ValueError(f"masks {masks.shape} / depth {np.shape(layout.depth)} are not {want} / {size[0]} x {size[1]}")
    return masks


def _masks_structure(layout: Layout, dilate_px: int, full_depth: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    masks = precise_masks(layout, "full_depth" if full_depth else "masks")
    regions = [dilate_mask(m, dilate_px) for m in masks]
    if full_depth:  # Table 3's "Full depth": the scene's depth, normalised over the whole image
        return regions, encode_depth(layout.depth, np.ones(masks.shape[1:], dtype=bool))
    # Depth stays on the precise masks: dilation coarsens the routing, but I_T is
    # subject-only depth, never the background caught in the dilated ring.
    return regions, encode_depth(layout.depth, masks.any(axis=0))


def _boxes3d_structure(layout: Layout, dilate_px: int, aspect: float | None) -> tuple[list[np.ndarray], np.ndarray]:
    if layout.camera is None:
        raise ValueError("mode 'boxes3d' needs the sample's camera")
    boxes = [s["box_3d"] for s in layout.subjects]
    regions, box_depth = box3d_structure(boxes, layout.camera, layout.width, layout.height, dilate_px, aspect)
    return regions, encode_depth(box_depth, np.any(regions, axis=0))


def _boxes2d_structure(layout: Layout, dilate_px: int, aspect: float | None) -> tuple[list[np.ndarray], np.ndarray]:
    w, h = layout.width, layout.height
    regions = [box2d_region(s["box_2d"], w, h, dilate_px, aspect) for s in layout.subjects]
    return regions, np.zeros((h, w), dtype=np.uint8)


def structure(
    layout: Layout, mode: StructureMode, dilate_px: int = 0, aspect: float | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """(per-subject regions, I_T) for one structure mode. `aspect` applies to boxes only."""
    if mode == "masks":
        return _masks_structure(layout, dilate_px)
    if mode == "full_depth":
        return _masks_structure(layout, dilate_px, full_depth=True)
    if mode == "boxes3d":
        return _boxes3d_structure(layout, dilate_px, aspect)
    if mode == "boxes2d":
        return _boxes2d_structure(layout, dilate_px, aspect)
    raise ValueError(f"unknown structure mode {mode!r}; use one of {', '.join(STRUCTURE_MODES)}")


def control_image(layout: Layout, mode: StructureMode, dilate_px: int = 0, aspect: float | None = None) -> np.ndarray:
    """I_C = channel-concat(I_R_asc, I_R_dsc, I_T): uint8 height x width x 3."""
    if len(layout.subjects) == 0:
        raise ValueError("control_image needs at least one subject")
    regions, i_t = structure(layout, mode, dilate_px, aspect)
    asc, dsc = routing_maps(regions)
    return np.stack([asc, dsc, i_t], axis=-1)


def drop_channel(control: np.ndarray, channel: int) -> np.ndarray:
    """A copy of I_C with one channel (0 asc, 1 dsc, 2 structure) zeroed."""
    if channel not in (0, 1, 2):
        raise ValueError(f"channel must be 0, 1 or 2, got {channel}")
    out = np.array(control, dtype=np.uint8, copy=True)
    out[..., channel] = 0
    return out


def identity_stack(identities: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """I_S: uint8 (N*H') x W' x 3, the identity images stacked vertically, block i = subject i."""
    ids = [np.asarray(x) for x in identities]
    if not ids:
        raise ValueError("identity_stack needs at least one identity image")
    shapes = {x.shape for x in ids}
    if len(shapes) != 1 or ids[0].ndim != 3 or ids[0].shape[2] != 3:
        raise ValueError(f"identity images must all be H' x W' x 3 of one size, got {sorted(shapes)}")
    return np.concatenate(ids, axis=0).astype(np.uint8, copy=False)


def sample_control(
    sample: dict[str, Any], mode: StructureMode, dilate_px: int = 0, aspect: float | None = None
) -> np.ndarray:
    """control_image for a decoded sample: {"json": meta, "masks": (N,H,W), "depth": (H,W)}."""
    return control_image(Layout.from_sample(sample), mode, dilate_px, aspect)
