"""Gravity-aligned, amodal 3D boxes: the ground plane from depth, then one box per subject with
one axis along up (yaw only), standing on what holds it, its hidden back completed by a prior.

Why: a box fitted to the visible surface alone (Open3D's PCA box, `method: pca`) sees the front
half of an object and tilts with it, so its centre sits in front of the object's and its volume
is about half. Real objects stand upright on something; this fit uses that.

Steps, all deterministic (no Open3D randomness: RANSAC draws from a seeded numpy generator):
1. Ground (`fit_ground`): a RANSAC plane through the image's non-subject points with valid
   depth (masks grown by a few pixels so mixed edge depths stay out), refitted by least squares
   on its inliers. Accepted only if it holds `ground_min_share` of those points and its normal is
   within `ground_max_tilt_deg` of the camera's up (-y): a wall or a table top seen from the side
   is not the ground. Up is the normal's side the camera is on.
2. Per subject (`gravity_box`): its cleaned points (box_fit's erosion, outlier removal) in a
   frame of up `u`, the horizontal view direction `a` (camera to the subject's centroid, ground
   component) and lateral `b`.
3. Hidden back, stated prior: **mirror symmetry about the occluding contour, no deeper than
   the object is wide.** The left- and right-most visible points (the outer 5% of the lateral
   span) are where the line of sight grazes the object; for a convex, roughly symmetric object
   they lie at the middle of its depth along the view. The visible points in front of the
   rear-most of them are mirrored behind it, but never further back than the larger of the
   visible depth along the view and the visible width across it; the footprint is the
   minimum-area rectangle (rotating calipers) of visible plus mirrored points in the ground
   plane. A box seen corner-on gets its back corner, a cylinder its back half; what the camera
   already sees behind the contour (a table top seen from above) is kept as it is. Objects much
   deeper than wide seen end-on (a car from behind) come out too shallow: the prior's limit.
4. Height: the top is the highest point. The bottom goes down to the ground when the subject
   stands on it: its lowest visible point is within `ground_contact_frac` of its height of the
   ground, or the part below it is hidden behind another subject nearer the camera. Otherwise
   the bottom is the lowest visible point and the box is a fallback, recorded as `support`:
   "subject" when other subjects' points lie at the subject's bottom height right around its
   footprint (a mug on a table), "none" when nothing visible holds it (in the air).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.config.stages import BoxFitConfig
from datagen.recipe.geometry import unproject_pixels

_RANSAC_ITERS = 256
_GROUND_MAX_POINTS = 20000
_SILHOUETTE_FRAC = 0.05  # outer share of the lateral span that counts as the occluding contour
_SUPPORT_MARGIN_FRAC = 0.15  # footprint margin (share of its larger side) searched for a supporter
_SUPPORT_MIN_POINTS = 10


@dataclass(frozen=True)
class Ground:
    """The ground plane in the camera frame: height(p) = normal . p + offset (metres above it)."""

    normal: np.ndarray  # unit up vector
    offset: float  # the camera's height above the ground (> 0)
    inlier_share: float

    def height(self, points: np.ndarray) -> np.ndarray:
        return points @ self.normal + self.offset


@dataclass(frozen=True)
class GravityFit:
    center: np.ndarray
    extent: np.ndarray
    rotation: np.ndarray  # columns: the two ground axes, then up
    support: str  # "ground", "subject" or "none"


def _plane_lsq(points: np.ndarray) -> tuple[np.ndarray, float]:
    c = points.mean(axis=0)
    n = np.linalg.svd(points - c, full_matrices=False)[2][2]
    return n, float(-n @ c)


def fit_ground(depth: np.ndarray, masks: np.ndarray, camera: dict, cfg: BoxFitConfig, seed: int = 0) -> Ground | None:
    """The ground plane from the non-subject depth, or None when no plane qualifies."""
    from datagen.recipe.geometry import erode_mask

    masks = np.asarray(masks, dtype=bool).reshape(-1, *np.asarray(depth).shape)
    taken = masks.any(axis=0) if len(masks) else np.zeros(np.asarray(depth).shape, dtype=bool)
    grow = cfg.edge_erode_px + 1
    free = erode_mask(~taken, grow) if grow > 0 else ~taken  # masks grown: edge depths mix
    points = unproject_pixels(depth, free, camera)
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) > _GROUND_MAX_POINTS:
        points = points[(np.arange(_GROUND_MAX_POINTS) * len(points)) // _GROUND_MAX_POINTS]
    if len(points) < max(3 * cfg.min_points, 30):
        return None
    thresh = cfg.ground_dist_frac * float(np.median(points[:, 2]))
    rng = np.random.default_rng(seed)
    tri = points[rng.integers(0, len(points), size=(_RANSAC_ITERS, 3))]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-12
    if not ok.any():
        return None
    normals = normals[ok] / norms[ok, None]
    offsets = -np.einsum("ij,ij->i", normals, tri[ok, 0])
    counts = (np.abs(points @ normals.T + offsets) <= thresh).sum(axis=0)
    best = int(np.argmax(counts))
    n, d = normals[best], float(offsets[best])
    for _ in range(2):  # least-squares refit on the inliers, twice to settle them
        inl = np.abs(points @ n + d) <= thresh
        if inl.sum() < 3:
            return None
        n, d = _plane_lsq(points[inl])
    inl = np.abs(points @ n + d) <= thresh
    share = float(inl.mean())
    if d < 0:  # up is the side the camera (the origin) is on
        n, d = -n, -d
    tilt = float(np.degrees(np.arccos(np.clip(-n[1], -1.0, 1.0))))  # angle to the camera's up (-y)
    if share < cfg.ground_min_share or tilt > cfg.ground_max_tilt_deg or d <= 0:
        return None
    return Ground(n.astype(np.float64), d, share)


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (counter-clockwise, Andrew's monotone chain) of 2D points."""
    pts = np.unique(points, axis=0)
    if len(pts) < 3:
        return pts

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2:
                o, a = out[-2], out[-1]
                if (a[0] - o[0]) * (p[1] - o[1]) - (a[1] - o[1]) * (p[0] - o[0]) > 0:
                    break
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def min_area_rect(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(centre (2,), size (2,), angle) of the minimum-area rectangle of 2D points: the first side
    runs along (cos angle, sin angle). Rotating calipers over the hull's edge directions."""
    hull = _hull(points)
    if len(hull) < 3:
        lo, hi = points.min(axis=0), points.max(axis=0)
        return (lo + hi) / 2, hi - lo, 0.0
    edges = np.roll(hull, -1, axis=0) - hull
    angles = np.unique(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), np.pi / 2))
    c, s = np.cos(angles), np.sin(angles)
    u = hull[:, 0:1] * c + hull[:, 1:2] * s  # (hull, angle) coordinates along each candidate axis
    v = -hull[:, 0:1] * s + hull[:, 1:2] * c
    area = (u.max(0) - u.min(0)) * (v.max(0) - v.min(0))
    k = int(np.argmin(area))
    umid, vmid = (u[:, k].max() + u[:, k].min()) / 2, (v[:, k].max() + v[:, k].min()) / 2
    centre = np.array([umid * c[k] - vmid * s[k], umid * s[k] + vmid * c[k]])
    size = np.array([u[:, k].max() - u[:, k].min(), v[:, k].max() - v[:, k].min()])
    return centre, size, float(angles[k])


def _frame(points: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Columns: horizontal view direction a, lateral b, up u (a right-handed basis)."""
    c = points.mean(axis=0)
    a = c - (c @ up) * up
    if np.linalg.norm(a) < 1e-9 * max(np.linalg.norm(c), 1e-12):  # looking straight down
        a = np.cross(up, [1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.cross(up, [0.0, 1.0, 0.0])
    a = a / np.linalg.norm(a)
    b = np.cross(up, a)
    return np.stack([a, b, up], axis=1)


def complete_footprint(xy: np.ndarray) -> np.ndarray:
    """Visible ground-plane points (x along the view, y lateral) plus those in front of the
    occluding contour mirrored behind it (the module docstring's prior)."""
    y = xy[:, 1]
    lo, hi = np.percentile(y, [1.0, 99.0])
    band = _SILHOUETTE_FRAC * max(hi - lo, 1e-12)
    contour = (y <= lo + band) | (y >= hi - band)
    # The rear-most contour point: erosion and grazing angles cut away the true tangent points
    # of round objects, leaving the band's points in front of them (the median was measured to
    # under-complete spheres by a third).
    xs = float((xy[contour, 0] if contour.any() else xy[:, 0]).max())
    front = xy[xy[:, 0] < xs]
    # Never deeper than the larger of what is seen along the view and across it: a handle or
    # a leg at the contour must not double a seen-through object's depth.
    x0 = float(xy[:, 0].min())
    deepest = x0 + max(float(xy[:, 0].max()) - x0, hi - lo)
    mirrored = np.stack([np.minimum(2 * xs - front[:, 0], deepest), front[:, 1]], axis=1)
    return np.concatenate([xy, mirrored])


def _supported(others: np.ndarray, frame: np.ndarray, ground: Ground, centre: np.ndarray, size: np.ndarray,
               angle: float, bottom: float, tol: float) -> bool:
    """Other subjects' points at this subject's bottom height, around its footprint."""
    if len(others) == 0:
        return False
    h = ground.height(others)
    near = np.abs(h - bottom) <= tol
    if near.sum() < _SUPPORT_MIN_POINTS:
        return False
    q = others[near] @ frame[:, :2] - centre
    c, s = np.cos(angle), np.sin(angle)
    local = np.abs(np.stack([q[:, 0] * c + q[:, 1] * s, -q[:, 0] * s + q[:, 1] * c], axis=1))
    margin = _SUPPORT_MARGIN_FRAC * size.max() + tol
    return int(np.all(local <= size / 2 + margin, axis=1).sum()) >= _SUPPORT_MIN_POINTS


def _bottom_hidden(others: np.ndarray, frame: np.ndarray, ground: Ground, xy: np.ndarray, bottom: float) -> bool:
    """Other subjects' points nearer the camera, across this subject's lateral span, below its
    lowest visible point: what hides its bottom from view."""
    if len(others) == 0:
        return False
    q = others @ frame[:, :2]
    h = ground.height(others)
    front = xy[:, 0].min()
    ylo, yhi = xy[:, 1].min(), xy[:, 1].max()
    hiding = (q[:, 0] < front) & (q[:, 1] >= ylo) & (q[:, 1] <= yhi) & (h <= bottom) & (h > 0)
    return int(hiding.sum()) >= _SUPPORT_MIN_POINTS


def gravity_box(points: np.ndarray, ground: Ground, cfg: BoxFitConfig, others: np.ndarray | None = None) -> GravityFit:
    """The upright, completed box of one subject's cleaned camera-frame points (see the module
    docstring); `others` are the other subjects' points (support and occlusion evidence)."""
    others = np.zeros((0, 3)) if others is None else others
    frame = _frame(points, ground.normal)
    xy = points @ frame[:, :2]
    h = ground.height(points)
    centre, size, angle = min_area_rect(complete_footprint(xy))
    top, low = float(h.max()), float(h.min())
    tol = cfg.ground_contact_frac * max(top - low, float(size.max()), 1e-9)
    lowest = float(np.percentile(h, 1.0))  # a decision robust to a stray low point
    if lowest <= tol:
        support, bottom = "ground", min(0.0, low)
    elif _supported(others, frame, ground, centre, size, angle, lowest, tol):
        support, bottom = "subject", low
    elif _bottom_hidden(others, frame, ground, xy, lowest):
        support, bottom = "ground", min(0.0, low)
    else:
        support, bottom = "none", low
    c, s = np.cos(angle), np.sin(angle)
    e1 = frame[:, 0] * c + frame[:, 1] * s
    e2 = -frame[:, 0] * s + frame[:, 1] * c
    up = frame[:, 2]
    rotation = np.stack([e1, e2, up], axis=1)
    mid = (top + bottom) / 2
    center = frame[:, 0] * centre[0] + frame[:, 1] * centre[1] + up * (mid - ground.offset)
    extent = np.array([size[0], size[1], top - bottom])
    return GravityFit(center, extent, rotation, support)
