"""Triangle meshes of subjects: local-frame geometry, local extent and world placement.

A subject's local frame stands on z = 0 with its shape centred on the z axis; the world pose is a
yaw about z followed by a translation to `subject["position"]`. Unit meshes are cached per shape
(pure functions of the vocabulary, so caching cannot break determinism); per-subject scaling is
a cheap numpy multiply.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .vocab import SHAPES

if TYPE_CHECKING:
    import open3d as o3d

# Modest resolutions keep a 10-subject scene at a few thousand triangles.
_CYL_RES = 28
_SPHERE_RES = 18
_TORUS_RADIAL = 28
_TORUS_TUBULAR = 14


def _rotation_xyz_deg(rx: float, ry: float, rz: float) -> np.ndarray:
    ax, ay, az = np.deg2rad([rx, ry, rz])
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def _primitive(kind: str, params: dict) -> o3d.geometry.TriangleMesh:
    import open3d as o3d  # on first use: scenes are laid out (configs read) without it

    if kind == "box":
        w, h, d = params["width"], params["height"], params["depth"]
        mesh = o3d.geometry.TriangleMesh.create_box(w, h, d)
        return mesh.translate((-w / 2, -h / 2, -d / 2))
    if kind == "cylinder":
        return o3d.geometry.TriangleMesh.create_cylinder(params["radius"], params["height"], _CYL_RES, 1)
    if kind == "sphere":
        return o3d.geometry.TriangleMesh.create_sphere(params["radius"], _SPHERE_RES)
    if kind == "cone":
        return o3d.geometry.TriangleMesh.create_cone(params["radius"], params["height"], _CYL_RES, 1)
    if kind == "torus":
        return o3d.geometry.TriangleMesh.create_torus(
            params["torus_radius"], params["tube_radius"], _TORUS_RADIAL, _TORUS_TUBULAR
        )
    raise ValueError(f"unknown primitive {kind!r}")


@lru_cache(maxsize=None)
def unit_arrays(shape: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (float64) and triangles (int32) of the unit shape, all parts merged."""
    verts, tris, offset = [], [], 0
    for kind, params, translation, rotation in SHAPES[shape]:
        part = _primitive(kind, params)
        v = np.asarray(part.vertices, dtype=np.float64) * np.asarray(params.get("scale", (1.0, 1.0, 1.0)))
        v = v @ _rotation_xyz_deg(*rotation).T + np.asarray(translation)
        verts.append(v)
        tris.append(np.asarray(part.triangles, dtype=np.int32) + offset)
        offset += len(v)
    v, t = np.concatenate(verts), np.concatenate(tris)
    v.flags.writeable = False
    t.flags.writeable = False
    return v, t


def subject_scale(subject: dict) -> np.ndarray:
    """Per-axis scale from the unit shape to the subject (aspect widens the footprint)."""
    s, a = float(subject["size"]), float(subject["aspect"])
    return np.array([s * a, s * a, s])


def local_arrays(subject: dict) -> tuple[np.ndarray, np.ndarray]:
    v, t = unit_arrays(subject["shape"])
    return v * subject_scale(subject), t


def subject_mesh(subject: dict) -> o3d.geometry.TriangleMesh:
    import open3d as o3d

    """The subject as one Open3D mesh in its local frame."""
    v, t = local_arrays(subject)
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(t))
    mesh.compute_triangle_normals()
    return mesh


def local_box(subject: dict) -> tuple[np.ndarray, np.ndarray]:
    """Centre and extent of the axis-aligned box of the local geometry."""
    v, _ = local_arrays(subject)
    lo, hi = v.min(axis=0), v.max(axis=0)
    return (lo + hi) / 2, hi - lo


def footprint_radius(shape: str, size: float, aspect: float) -> float:
    """Radius of the ground circle around the z axis that contains the subject at any yaw."""
    v, _ = unit_arrays(shape)
    return float(np.hypot(v[:, 0], v[:, 1]).max() * size * aspect)


def yaw_rotation(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def subject_pose(subject: dict) -> tuple[np.ndarray, np.ndarray]:
    """World-from-local rotation and translation."""
    return yaw_rotation(float(subject["yaw"])), np.asarray(subject["position"], dtype=np.float64)


def world_arrays(subject: dict) -> tuple[np.ndarray, np.ndarray]:
    v, t = local_arrays(subject)
    rot, pos = subject_pose(subject)
    return v @ rot.T + pos, t


def world_box_corners(subject: dict) -> np.ndarray:
    """The 8 corners (world frame) of the subject's oriented local box."""
    centre, extent = local_box(subject)
    rot, pos = subject_pose(subject)
    corners = centre + BOX_SIGNS * extent / 2
    return corners @ rot.T + pos


# Corner order shared by every 3D box in the project.
BOX_SIGNS = np.array(
    [[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1], [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]],
    dtype=np.float64,
)
