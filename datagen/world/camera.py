"""Camera geometry: look-at poses in the OpenCV convention and framing a point set.

Camera frame: x right, y down, z forward. `cam_to_world` is a 4x4 whose rotation columns are the
camera axes in world coordinates (world z is up).
"""

from __future__ import annotations

import numpy as np


def look_direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector from the target towards the camera."""
    ce = np.cos(elevation)
    return np.array([ce * np.cos(azimuth), ce * np.sin(azimuth), np.sin(elevation)])


def look_rotation(back: np.ndarray) -> np.ndarray:
    """World-from-camera rotation for a camera looking along -back with world z up."""
    forward = -back / np.linalg.norm(back)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def intrinsics(width: int, height: int, fov_deg: float) -> dict:
    """Square pixels; `fov_deg` is the horizontal field of view; principal point at the centre."""
    fx = width / 2 / np.tan(np.deg2rad(fov_deg) / 2)
    return {"fx": float(fx), "fy": float(fx), "cx": width / 2, "cy": height / 2}


def fit_distance(points: np.ndarray, target: np.ndarray, rot: np.ndarray, tan_x: float, tan_y: float) -> float:
    """Smallest distance along the view axis that keeps every point within |x/z| <= tan_x, |y/z| <= tan_y."""
    q = (points - target) @ rot  # camera-axis coordinates relative to the target
    need = np.maximum(np.abs(q[:, 0]) / tan_x, np.abs(q[:, 1]) / tan_y) - q[:, 2]
    return float(need.max())


def frame_points(
    points: np.ndarray, target: np.ndarray, back: np.ndarray, tan_x: float, tan_y: float, iters: int = 4
) -> tuple[np.ndarray, float]:
    """Target and distance that centre the points' projection and make it touch the tan bounds."""
    rot = look_rotation(back)
    target = np.asarray(target, dtype=np.float64).copy()
    for _ in range(iters):
        dist = fit_distance(points, target, rot, tan_x, tan_y)
        q = (points - (target + back * dist)) @ rot
        nx, ny = q[:, 0] / q[:, 2], q[:, 1] / q[:, 2]
        # Shifting the target sideways moves the projection by about shift / dist.
        mid_x, mid_y = (nx.min() + nx.max()) / 2, (ny.min() + ny.max()) / 2
        target = target + dist * (mid_x * rot[:, 0] + mid_y * rot[:, 1])
    return target, fit_distance(points, target, rot, tan_x, tan_y)


def pose_matrix(rot: np.ndarray, position: np.ndarray) -> list[list[float]]:
    mat = np.eye(4)
    mat[:3, :3], mat[:3, 3] = rot, position
    return [[float(x) for x in row] for row in mat]


def project(points: np.ndarray, cam_to_world: np.ndarray, cam: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u, v) and depth z of world points."""
    rot, pos = cam_to_world[:3, :3], cam_to_world[:3, 3]
    q = (points - pos) @ rot
    z = q[:, 2]
    return np.stack([cam["fx"] * q[:, 0] / z + cam["cx"], cam["fy"] * q[:, 1] / z + cam["cy"]], axis=1), z
