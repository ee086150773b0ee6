"""Pure-numpy camera and box helpers.

Conventions: OpenCV camera frame (x right, y down, z forward); pixel (c, r) has its
centre at (c + 0.5, r + 0.5); depth is z-depth in metres, non-finite or <= 0 is unknown.
A box dict holds centre, extent, rotation (columns are the box axes) and 8 corners.
"""

from __future__ import annotations

import numpy as np

# Corner sign pattern: bottom face (z-) counter-clockwise, then top face (z+).
CORNER_SIGNS = np.array(
    [
        [-1, -1, -1],
        [1, -1, -1],
        [1, 1, -1],
        [-1, 1, -1],
        [-1, -1, 1],
        [1, -1, 1],
        [1, 1, 1],
        [-1, 1, 1],
    ],
    dtype=np.float64,
)

# Box dicts are rounded so that JSON written from them is byte-stable (and 1 um is far
# below any depth sensor's precision).
ROUND_DECIMALS = 6


def _intrinsics(camera: dict) -> tuple[float, float, float, float]:
    return float(camera["fx"]), float(camera["fy"]), float(camera["cx"]), float(camera["cy"])


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """Bool mask of pixels whose depth is known (finite and > 0)."""
    depth = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0)


def unproject_pixels(depth: np.ndarray, mask: np.ndarray, camera: dict) -> np.ndarray:
    """(N, 3) float64 camera-frame points of the mask pixels with valid depth (row-major order)."""
    depth = np.asarray(depth)
    mask = np.asarray(mask, dtype=bool)
    if depth.shape != mask.shape:
        raise ValueError(f"depth {depth.shape} and mask {mask.shape} differ in shape")
    fx, fy, cx, cy = _intrinsics(camera)
    rows, cols = np.nonzero(mask & valid_depth(depth))
    z = depth[rows, cols].astype(np.float64)
    x = (cols + 0.5 - cx) * z / fx
    y = (rows + 0.5 - cy) * z / fy
    return np.stack([x, y, z], axis=1)


def project_points(points: np.ndarray, camera: dict) -> np.ndarray:
    """(N, 2) continuous image coordinates (u, v) of camera-frame points."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    fx, fy, cx, cy = _intrinsics(camera)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = fx * p[:, 0] / p[:, 2] + cx
        v = fy * p[:, 1] / p[:, 2] + cy
    return np.stack([u, v], axis=1)


def box_corners(center, extent, rotation) -> np.ndarray:
    """(8, 3) corners: center + R @ (s * extent / 2) in the CORNER_SIGNS order."""
    c = np.asarray(center, dtype=np.float64).reshape(3)
    e = np.asarray(extent, dtype=np.float64).reshape(3)
    r = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    return c + (CORNER_SIGNS * (e / 2.0)) @ r.T


def _rounded(a: np.ndarray) -> list:
    # "+ 0.0" turns -0.0 into 0.0 so equal boxes serialise identically.
    return (np.round(np.asarray(a, dtype=np.float64), ROUND_DECIMALS) + 0.0).tolist()


def make_box3d(center, extent, rotation) -> dict:
    """The JSON-able box dict; corners come from the unrounded inputs, then all is rounded."""
    corners = box_corners(center, extent, rotation)
    return {
        "center": _rounded(np.asarray(center, dtype=np.float64).reshape(3)),
        "extent": _rounded(np.asarray(extent, dtype=np.float64).reshape(3)),
        "rotation": _rounded(np.asarray(rotation, dtype=np.float64).reshape(3, 3)),
        "corners": _rounded(corners),
    }


def _box_arrays(box: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(box["center"], dtype=np.float64).reshape(3),
        np.asarray(box["extent"], dtype=np.float64).reshape(3),
        np.asarray(box["rotation"], dtype=np.float64).reshape(3, 3),
    )


def mask_box_2d(mask: np.ndarray) -> list[int] | None:
    """Tight [x0, y0, x1, y1] of the True pixels (x1, y1 exclusive), None when empty."""
    mask = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def erode_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Binary erosion with a (2p+1)^2 square; pixels outside the image count as False."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros_like(mask)
    box = mask_box_2d(mask)
    if pixels <= 0 or box is None:
        return mask.copy()
    p = int(pixels)
    x0, y0, x1, y1 = box
    # Work on the mask's box only (padded with False so borders erode like any other edge):
    # a subject covers a few percent of the image, so this is much cheaper than the full frame.
    crop = np.pad(mask[y0:y1, x0:x1], p, constant_values=False)
    h, w = y1 - y0, x1 - x0
    # The square is separable: AND over the row shifts, then over the column shifts.
    rows = np.ones((h + 2 * p, w), dtype=bool)
    for dx in range(2 * p + 1):
        rows &= crop[:, dx : dx + w]
    eroded = np.ones((h, w), dtype=bool)
    for dy in range(2 * p + 1):
        eroded &= rows[dy : dy + h]
    out[y0:y1, x0:x1] = eroded
    return out


def points_in_box(points: np.ndarray, box: dict, tol: float = 0.0) -> np.ndarray:
    """Bool per point: inside the oriented box grown by tol (metres) on every side."""
    c, e, r = _box_arrays(box)
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    local = (p - c) @ r  # coordinates along the box axes (the columns of r)
    return np.all(np.abs(local) <= e / 2.0 + tol, axis=1)


def _sample_in_box(box: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    c, e, r = _box_arrays(box)
    local = (rng.random((n, 3)) - 0.5) * e
    return c + local @ r.T


def box_volume_iou(a: dict, b: dict, samples: int = 20000, seed: int = 0) -> float:
    """Volume IoU of two oriented boxes, Monte Carlo with a fixed seed (deterministic).

    Samples are drawn in both boxes and the two intersection estimates are combined by
    volume weight, which keeps the error small even when one box is much larger.
    """
    va = float(np.prod(_box_arrays(a)[1]))
    vb = float(np.prod(_box_arrays(b)[1]))
    if va <= 0.0 or vb <= 0.0:
        return 0.0
    rng = np.random.default_rng(seed)
    n = max(1, samples // 2)
    frac_a = float(points_in_box(_sample_in_box(a, n, rng), b).mean())  # inter / va
    frac_b = float(points_in_box(_sample_in_box(b, n, rng), a).mean())  # inter / vb
    inter = (frac_a * va + frac_b * vb) / 2.0
    inter = min(inter, va, vb)
    union = va + vb - inter
    return float(inter / union) if union > 0 else 0.0


def center_error_frac(pred: dict, true: dict) -> float:
    """Centre distance divided by the true box's space diagonal."""
    cp = _box_arrays(pred)[0]
    ct, et, _ = _box_arrays(true)
    diag = float(np.linalg.norm(et))
    dist = float(np.linalg.norm(cp - ct))
    if diag <= 0.0:
        return 0.0 if dist == 0.0 else float("inf")
    return dist / diag
