"""Ray-cast renderer (Open3D RaycastingScene): image, instance ids, z-depth and true 3D boxes.

One ray per pixel centre in the OpenCV pinhole convention with an unnormalised direction whose
camera-z component is 1, so Open3D's `t_hit` is the z-depth itself. Shading is Lambert + ambient
with per-subject procedural textures evaluated in the subject's local frame, hard shadows from a
second (occlusion) cast toward the sun, a textured ground and a sky gradient where rays miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import open3d as o3d

from . import camera as cam_geom
from .meshes import BOX_SIGNS, local_box, subject_pose, subject_scale, world_arrays
from .scene import WorldConfig
from .shading import ground_pattern, secondary_colour, subject_pattern
from .vocab import COLOURS

_MISS = np.uint32(0xFFFFFFFF)  # RaycastingScene.INVALID_ID
_GROUND_HALF = 300.0  # metres; beyond this rays see the sky, hidden by the fog anyway
_FOG_M = 80.0
_SHADOW_EPS = 2e-3


@dataclass
class RenderResult:
    image: np.ndarray  # uint8 (H, W, 3)
    instance: np.ndarray  # uint8 (H, W): 0 ground/background, i + 1 subject i
    depth: np.ndarray  # float32 (H, W) z-depth, NaN where nothing was hit
    camera: dict  # fx, fy, cx, cy
    boxes: list[dict]  # oriented 3D boxes in the camera frame, one per subject


@lru_cache(maxsize=16)
def _camera_directions(width: int, height: int, fx: float, fy: float, cx: float, cy: float):
    """Camera-frame pixel-centre directions (z = 1) and their lengths; a pure function of its key."""
    u = ((np.arange(width, dtype=np.float64) + 0.5 - cx) / fx)[None, :]
    v = ((np.arange(height, dtype=np.float64) + 0.5 - cy) / fy)[:, None]
    dirs = np.empty((height, width, 3), dtype=np.float64)
    dirs[..., 0], dirs[..., 1], dirs[..., 2] = u, v, 1.0
    norms = np.sqrt(u * u + v * v + 1.0).astype(np.float32).reshape(-1)
    dirs, norms = dirs.reshape(-1, 3), norms
    dirs.flags.writeable = False
    norms.flags.writeable = False
    return dirs, norms


def _pixel_rays(width: int, height: int, intr: dict, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H*W, 6) float32 rays (camera centre, world direction of each pixel centre) and direction lengths."""
    dirs, norms = _camera_directions(width, height, intr["fx"], intr["fy"], intr["cx"], intr["cy"])
    rays = np.empty((height * width, 6), dtype=np.float32)
    rays[:, :3] = pose[:3, 3]
    rays[:, 3:] = dirs @ pose[:3, :3].T
    return rays, norms


def _ground_arrays(centre_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cx, cy, h = float(centre_xy[0]), float(centre_xy[1]), _GROUND_HALF
    verts = np.array([[cx - h, cy - h, 0], [cx + h, cy - h, 0], [cx + h, cy + h, 0], [cx - h, cy + h, 0]])
    return verts, np.array([[0, 1, 2], [0, 2, 3]])


def _subject_albedo(subject: dict, points: np.ndarray) -> np.ndarray:
    """Textured colour at world points of one subject; the pattern lives in its unit local frame."""
    rot, pos = subject_pose(subject)
    unit = ((points - pos) @ rot) / subject_scale(subject)
    weight = subject_pattern(subject["texture"], unit)[:, None]
    base = np.asarray(subject.get("rgb") or COLOURS[subject["colour"]], dtype=np.float64)
    return base * (1 - weight) + secondary_colour(base) * weight


def _render(
    width: int,
    height: int,
    intr: dict,
    pose: np.ndarray,
    subjects: list[dict],
    light_dir: np.ndarray,
    ambient: float,
    shadows: bool,
    background: dict | None,
    flat_rgb: tuple[int, int, int] | None = None,
):
    rays, d_norm = _pixel_rays(width, height, intr, pose)
    meshes = [_ground_arrays(pose[:3, 3][:2])] if background is not None else []
    meshes += [world_arrays(s) for s in subjects]
    rc = o3d.t.geometry.RaycastingScene()
    for verts, tris in meshes:
        rc.add_triangles(o3d.core.Tensor(verts.astype(np.float32)), o3d.core.Tensor(tris.astype(np.uint32)))
    # Geometry id -> instance value: ground (added first) is 0, subject i is i + 1.
    first = 1 if background is not None else 0
    lut = np.array([0] * first + list(range(1, len(subjects) + 1)), dtype=np.uint8)

    ans = rc.cast_rays(o3d.core.Tensor(rays))
    gid = ans["geometry_ids"].numpy()
    hit = gid != _MISS
    # Full-length float32 arrays with masks: nearly every pixel hits, so gathering subsets costs
    # more than computing a few misses for nothing.
    t = np.where(hit, ans["t_hit"].numpy(), np.float32(0.0))
    instance = np.where(hit, lut[np.where(hit, gid, 0)], np.uint8(0)).astype(np.uint8)
    depth = np.where(hit, t, np.float32(np.nan))

    origin, d = rays[0, :3], rays[:, 3:]
    points = origin + t[:, None] * d
    normals = ans["primitive_normals"].numpy()
    facing = np.einsum("ij,ij->i", normals, d)
    normals = normals * np.where(facing > 0, np.float32(-1.0), np.float32(1.0))[:, None]  # face the camera

    albedo = np.zeros_like(points)
    is_ground = hit & (instance == 0)
    if background is not None:
        factor = ground_pattern(background["ground_texture"], points[:, :2]).astype(np.float32)
        albedo[:] = np.asarray(background["ground_colour"], np.float32) * factor[:, None]
    on_subject = np.flatnonzero(instance)  # scan the full image once, then only subject pixels
    inst_sub = instance[on_subject]
    for i, subject in enumerate(subjects):
        sel = on_subject[inst_sub == i + 1]
        if len(sel):
            albedo[sel] = _subject_albedo(subject, points[sel].astype(np.float64))

    light = light_dir.astype(np.float32)
    lambert = np.maximum(normals @ light, np.float32(0.0))
    if shadows:
        shadow_rays = np.empty_like(rays)
        shadow_rays[:, :3] = points + np.float32(_SHADOW_EPS) * normals
        shadow_rays[:, 3:] = light
        blocked = rc.test_occlusions(o3d.core.Tensor(shadow_rays)).numpy().astype(bool)
        lambert[blocked] = 0.0
    colour = albedo * (np.float32(ambient) + np.float32(1 - ambient) * lambert)[:, None]

    if background is not None:
        # Aerial perspective: far ground melts into the horizon colour instead of aliasing.
        bottom = np.asarray(background["sky_bottom"], np.float32)
        fog = np.where(is_ground, np.exp(t * d_norm * np.float32(-1.0 / _FOG_M)), np.float32(1.0))[:, None]
        colour *= fog
        colour += (1 - fog) * bottom
    miss = np.flatnonzero(~hit)
    if background is None:
        colour[miss] = flat_rgb
    elif len(miss):
        top = np.asarray(background["sky_top"], np.float32)
        w = np.clip((d[miss, 2] / d_norm[miss] + np.float32(0.05)) / np.float32(0.6), 0.0, 1.0)[:, None]
        colour[miss] = (1 - w) * bottom + w * top

    colour += np.float32(0.5)
    np.clip(colour, 0, 255, out=colour)
    image = colour.astype(np.uint8).reshape(height, width, 3)
    return image, instance.reshape(height, width), depth.reshape(height, width)


def _camera_boxes(subjects: list[dict], pose: np.ndarray) -> list[dict]:
    rot_c, pos_c = pose[:3, :3], pose[:3, 3]
    boxes = []
    for s in subjects:
        centre_l, extent = local_box(s)
        rot_w, pos_w = subject_pose(s)
        rot = rot_c.T @ rot_w
        centre = rot_c.T @ (pos_w + rot_w @ centre_l - pos_c)
        corners = centre + (BOX_SIGNS * extent / 2) @ rot.T
        boxes.append({
            "center": centre.tolist(),
            "extent": extent.tolist(),
            "rotation": rot.tolist(),
            "corners": corners.tolist(),
        })
    return boxes


def render_scene(scene: dict) -> RenderResult:
    cam = scene["camera"]
    intr = {k: float(cam[k]) for k in ("fx", "fy", "cx", "cy")}
    pose = np.asarray(cam["cam_to_world"], dtype=np.float64)
    light = scene["light"]
    image, instance, depth = _render(
        int(scene["width"]),
        int(scene["height"]),
        intr,
        pose,
        scene["subjects"],
        np.asarray(light["direction"], dtype=np.float64),
        float(light["ambient"]),
        bool(light["shadows"]),
        scene["background"],
    )
    return RenderResult(image, instance, depth, intr, _camera_boxes(scene["subjects"], pose))


def render_identity(subject: dict, size: int, rng: np.random.Generator, cfg: WorldConfig) -> np.ndarray:
    """The subject alone on a flat background, centred, spanning `identity_fill` of the image."""
    alone = {**subject, "position": [0.0, 0.0, 0.0]}
    fov = float(rng.uniform(*cfg.fov_deg))
    elevation = float(np.deg2rad(rng.uniform(*cfg.elevation_deg)))
    azimuth = float(rng.uniform(0, 2 * np.pi))
    intr = cam_geom.intrinsics(size, size, fov)
    verts, _ = world_arrays(alone)
    back = cam_geom.look_direction(azimuth, elevation)
    tan = size / 2 / intr["fx"] * cfg.identity_fill
    target, dist = cam_geom.frame_points(verts, verts.mean(axis=0), back, tan, tan)
    rot = cam_geom.look_rotation(back)
    pose = np.asarray(cam_geom.pose_matrix(rot, target + back * dist))
    # Key light from above, slightly left of the camera, so the visible side is lit.
    light = 0.6 * back + 0.8 * np.array([0.0, 0.0, 1.0]) - 0.4 * rot[:, 0]
    image, _, _ = _render(
        size, size, intr, pose, [alone], light / np.linalg.norm(light), cfg.ambient, cfg.shadows, None,
        tuple(cfg.identity_background),
    )
    return image
