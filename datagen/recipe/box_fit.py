"""Fit an oriented 3D box to one subject from its depth map and mask (Open3D).

The fit never raises on bad data: every failure becomes a BoxFit with box=None and a
reason, so a dataset build can log and skip the subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial


import numpy as np
import open3d as o3d

# Open3D warns on stdout for every degenerate box it meets; those become reject reasons here.
o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
from datagen.config.stages import BoxFitConfig
from datagen.recipe.geometry import erode_mask, make_box3d, unproject_pixels

# Relative thresholds (to the largest principal spread) below which the point set is
# exactly collinear / coplanar as far as qhull is concerned; Open3D fails or returns
# zero-size boxes there, so such sets are classified before it is called.
_LINE_RTOL = 1e-6
_PLANE_RTOL = 1e-6
# Absolute spread (metres) below which all points are the same point.
_POINT_ATOL = 1e-9


@dataclass
class BoxFit:
    box: dict | None  # the box dict, or None when rejected
    reason: str | None  # None when fitted; else "no_valid_depth", "too_few_points", "flat", "degenerate"
    num_points: int  # points the decision was made on (after subsampling / outlier removal)


def _finite(points: np.ndarray) -> np.ndarray:
    return points[np.all(np.isfinite(points), axis=1)]


def _subject_points(depth, mask, camera, cfg: BoxFitConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """Points of the eroded mask with valid depth, plus the eroded-away edge ring's points
    (None when the raw mask was used)."""
    mask = np.asarray(mask, dtype=bool)
    if cfg.edge_erode_px > 0:
        eroded = erode_mask(mask, cfg.edge_erode_px)
        points = _finite(unproject_pixels(depth, eroded, camera))
        if len(points) >= cfg.min_points:
            return points, _finite(unproject_pixels(depth, mask & ~eroded, camera))
    # Thin subjects can lose (nearly) everything to erosion: then the raw mask is the
    # better evidence, edge pixels and all.
    return _finite(unproject_pixels(depth, mask, camera)), None


def _clip_depth(points: np.ndarray, pct: float) -> np.ndarray:
    if pct <= 0.0 or len(points) == 0:
        return points
    lo, hi = np.percentile(points[:, 2], [pct, 100.0 - pct])
    return points[(points[:, 2] >= lo) & (points[:, 2] <= hi)]


def _subsample(points: np.ndarray, max_points: int) -> np.ndarray:
    n = len(points)
    if n <= max_points:
        return points
    # Evenly spaced rows: deterministic and spread over the whole (row-major) mask.
    idx = (np.arange(max_points, dtype=np.int64) * n) // max_points
    return points[idx]


def _shape_class(points: np.ndarray) -> str | None:
    """"degenerate" (a point or a line), "flat" (a plane) or None from principal spreads."""
    centred = points - points.mean(axis=0)
    s = np.linalg.svd(centred, compute_uv=False) / np.sqrt(max(len(points), 1))
    if not np.all(np.isfinite(s)) or s[0] <= _POINT_ATOL:
        return "degenerate"
    if s[1] <= _LINE_RTOL * s[0]:
        return "degenerate"
    if s[2] <= _PLANE_RTOL * s[0]:
        return "flat"
    return None


def _remove_outliers(points: np.ndarray, cfg: BoxFitConfig) -> np.ndarray:
    k = min(cfg.outlier_neighbors, len(points) - 1)
    if k < 2:
        return points
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    try:
        _, keep = pcd.remove_statistical_outlier(nb_neighbors=k, std_ratio=cfg.outlier_std_ratio)
    except RuntimeError:  # cannot happen on finite input, but the fit must never raise
        return points
    # Keep the original float64 rows (and their order) rather than Open3D's copy.
    return points[np.sort(np.asarray(keep, dtype=np.int64))]


def _obb(points: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(center, extent, R) from Open3D, or None when it fails or returns a broken box."""
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    # The minimal box can come back empty on near-degenerate input; PCA is the fallback.
    methods = ["minimal", "pca"] if method == "minimal" else ["pca"]
    for m in methods:
        try:
            if m == "minimal":
                obb = pcd.get_minimal_oriented_bounding_box(robust=False)
            else:
                obb = pcd.get_oriented_bounding_box(robust=False)
        except RuntimeError:
            continue
        c = np.asarray(obb.center, dtype=np.float64).copy()
        e = np.asarray(obb.extent, dtype=np.float64).copy()
        r = np.asarray(obb.R, dtype=np.float64).copy()
        if _box_ok(points, c, e, r):
            return c, e, r
    return None


def _box_ok(points: np.ndarray, c: np.ndarray, e: np.ndarray, r: np.ndarray) -> bool:
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(e)) and np.all(np.isfinite(r))):
        return False
    if e.max() <= 0.0 or e.min() < 0.0:
        return False
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-6):
        return False
    local = np.abs((points - c) @ r)
    return bool(np.all(local <= e / 2.0 + 1e-4 * e.max() + 1e-9))


def canonicalize(extent: np.ndarray, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One representative among the 24 equivalent (axis order, sign) choices of a box.

    Axes are ordered by decreasing extent (stable for ties), the first two axes are flipped
    so that their largest-magnitude component is positive, and the third is their cross
    product, so det(R) = +1.
    """
    order = np.argsort(-extent, kind="stable")
    e = extent[order]
    r = rotation[:, order].copy()
    for i in (0, 1):
        if r[np.argmax(np.abs(r[:, i])), i] < 0:
            r[:, i] = -r[:, i]
    r[:, 2] = np.cross(r[:, 0], r[:, 1])
    return e, r


def _recover_edges(
    points: np.ndarray, fitted, edge: np.ndarray, camera: dict, cfg: BoxFitConfig
) -> np.ndarray:
    """Edge-ring points within the eroded band's 3D width of the first box, added to points."""
    center, extent, rotation = fitted
    f = min(float(camera["fx"]), float(camera["fy"]))
    margin = (cfg.edge_erode_px + 1) * edge[:, 2] / f  # band width in metres at each depth
    local = np.abs((edge - center) @ rotation)
    near = np.all(local <= extent / 2.0 + margin[:, None], axis=1)
    if not near.any():
        return points
    return _subsample(np.concatenate([points, edge[near]]), cfg.max_points)


def fit_points_box(points, cfg: BoxFitConfig | None = None, recover=None) -> BoxFit:
    """Oriented box of a camera-frame point set (N, 3); never raises on degenerate data.

    recover(points, (center, extent, R)) -> points may return an enlarged point set to refit
    on (the depth path uses it to re-admit edge pixels).
    """
    cfg = cfg if cfg is not None else BoxFitConfig()
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    points = _finite(points)
    points = _subsample(_clip_depth(points, cfg.depth_clip_pct), cfg.max_points)
    if len(points) < cfg.min_points:
        return BoxFit(None, "too_few_points", len(points))
    # Classify exact points/lines/planes first: outlier removal would wipe out a set of
    # identical points, and qhull cannot build a hull of any of them.
    shape = _shape_class(points)
    if shape is not None:
        return BoxFit(None, shape, len(points))

    points = _remove_outliers(points, cfg)
    if len(points) < cfg.min_points:
        return BoxFit(None, "too_few_points", len(points))
    shape = _shape_class(points)
    if shape is not None:
        return BoxFit(None, shape, len(points))

    fitted = _obb(points, cfg.method)
    if fitted is None:
        return BoxFit(None, "degenerate", len(points))
    if recover is not None:
        grown = recover(points, fitted)
        refitted = _obb(grown, cfg.method) if grown is not points else None
        if refitted is not None:  # keep the first fit if the refit fails
            points, fitted = grown, refitted
    center, extent, rotation = fitted
    extent, rotation = canonicalize(extent, rotation)
    if extent[2] < cfg.min_extent_ratio * extent[0]:
        return BoxFit(None, "flat", len(points))
    return BoxFit(make_box3d(center, extent, rotation), None, len(points))


def fit_subject_box(depth, mask, camera, cfg: BoxFitConfig | None = None) -> BoxFit:
    """Oriented box of one subject's visible surface; never raises on degenerate data.

    Raises ValueError only for caller errors (depth and mask of different shapes).
    """
    cfg = cfg if cfg is not None else BoxFitConfig()
    has_pixels = bool(np.asarray(mask, dtype=bool).any())
    points, edge = _subject_points(depth, mask, camera, cfg)
    if len(points) == 0:
        return BoxFit(None, "no_valid_depth" if has_pixels else "too_few_points", 0)
    recover = None
    if cfg.edge_recover and edge is not None and len(edge) > 0:
        recover = partial(_recover_edges, edge=edge, camera=camera, cfg=cfg)
    return fit_points_box(points, cfg, recover)
