"""Fit a 3D box to one subject from its depth map and mask.

`method: gravity` (the default) fits an upright, amodal box standing on the ground plane
(datagen.recipe.gravity_box); where the image has no ground it falls back to `pca`, the paper's
oriented box of the visible surface (Open3D), and says so in the BoxFit. `fit_image_boxes` fits
every subject of one image (the ground is found once per image).

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
from datagen.recipe.gravity_box import Ground, fit_ground, gravity_box

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
    method: str | None = None  # the fit actually used: "gravity", "pca" or "minimal"
    # gravity only: what the box stands on ("ground", "subject", "none"); None for the others
    support: str | None = None
    # why the box is not a ground-standing gravity box when one was asked for: "no_ground"
    # (no ground plane in the image: pca), "on_subject" or "off_ground" (upright, not extended)
    fallback: str | None = None


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


_FALLBACK = {"subject": "on_subject", "none": "off_ground"}


def _fit(points: np.ndarray, cfg: BoxFitConfig, ground: Ground | None, others: np.ndarray | None):
    """((center, extent, R), support) of the configured method, or None when it fails."""
    if cfg.method == "gravity" and ground is not None:
        g = gravity_box(points, ground, cfg, others)
        if not (np.all(np.isfinite(g.center)) and np.all(np.isfinite(g.extent)) and g.extent.max() > 0):
            return None
        return (g.center, g.extent, g.rotation), g.support
    fitted = _obb(points, "pca" if cfg.method == "gravity" else cfg.method)
    return None if fitted is None else (fitted, None)


def fit_points_box(
    points, cfg: BoxFitConfig | None = None, recover=None, ground: Ground | None = None,
    others: np.ndarray | None = None,
) -> BoxFit:
    """Box of a camera-frame point set (N, 3); never raises on degenerate data.

    recover(points, (center, extent, R)) -> points may return an enlarged point set to refit
    on (the depth path uses it to re-admit edge pixels). With `method: gravity`, `ground` is the
    image's ground plane (None: no ground, the pca fallback) and `others` the other subjects'
    points (evidence of support and occlusion).
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

    result = _fit(points, cfg, ground, others)
    if result is None:
        return BoxFit(None, "degenerate", len(points))
    if recover is not None:
        grown = recover(points, result[0])
        refitted = _fit(grown, cfg, ground, others) if grown is not points else None
        if refitted is not None:  # keep the first fit if the refit fails
            points, result = grown, refitted
    (center, extent, rotation), support = result
    if cfg.method == "gravity":
        method, fallback = ("gravity", _FALLBACK.get(support)) if ground is not None else ("pca", "no_ground")
    else:
        method, fallback = cfg.method, None
    extent, rotation = canonicalize(extent, rotation)
    if extent[2] < cfg.min_extent_ratio * extent[0]:
        return BoxFit(None, "flat", len(points), method, support, fallback)
    return BoxFit(make_box3d(center, extent, rotation), None, len(points), method, support, fallback)


def fit_subject_box(
    depth, mask, camera, cfg: BoxFitConfig | None = None, ground: Ground | None = None,
    others: np.ndarray | None = None,
) -> BoxFit:
    """Box of one subject (see fit_points_box for ground and others); never raises on
    degenerate data. Alone, without a ground, `method: gravity` gives the pca fallback:
    fit_image_boxes finds the ground.

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
    return fit_points_box(points, cfg, recover, ground, others)


def fit_image_boxes(depth, masks, camera, cfg: BoxFitConfig | None = None) -> tuple[list[BoxFit], Ground | None]:
    """Boxes of every subject of one image (masks: (N, H, W)) and the ground plane found (None
    when not looked for, or none found)."""
    cfg = cfg if cfg is not None else BoxFitConfig()
    masks = np.asarray(masks, dtype=bool)
    if cfg.method != "gravity":
        return [fit_subject_box(depth, m, camera, cfg) for m in masks], None
    ground = fit_ground(depth, masks, camera, cfg)
    # Each subject's eroded points, thinned: the other subjects' evidence for support/occlusion.
    clouds = [_subsample(_subject_points(depth, m, camera, cfg)[0], 2000) for m in masks]
    fits = []
    for i, mask in enumerate(masks):
        rest = [c for j, c in enumerate(clouds) if j != i]
        others = np.concatenate(rest) if rest else np.zeros((0, 3))
        fits.append(fit_subject_box(depth, mask, camera, cfg, ground, others))
    return fits, ground
