"""datagen.recipe.gravity_box and the gravity path of box_fit, on small ray-cast scenes with a
ground plane (world z up) seen by an elevated camera."""

import numpy as np
import open3d as o3d
import pytest

from datagen.config import BoxFitConfig
from datagen.recipe import geometry as g
from datagen.recipe.box_fit import fit_image_boxes
from datagen.recipe.gravity_box import fit_ground, min_area_rect
from datagen.world import camera as cam_geom

H, W = 240, 320
CAM = {"fx": 280.0, "fy": 280.0, "cx": W / 2, "cy": H / 2, "model": "pinhole"}
ELEVATION = np.deg2rad(32.0)
DIST = 3.2


def _pose() -> np.ndarray:
    back = cam_geom.look_direction(0.4, ELEVATION)
    pose = np.eye(4)
    pose[:3, :3] = cam_geom.look_rotation(back)
    pose[:3, 3] = np.array([0.0, 0.0, 0.25]) + back * DIST
    return pose


def _box(extent, centre, yaw=0.0):
    m = o3d.geometry.TriangleMesh.create_box(*extent)
    m.translate(-np.asarray(extent) / 2)
    m.rotate(o3d.geometry.get_rotation_matrix_from_axis_angle([0, 0, yaw]), center=(0, 0, 0))
    return m.translate(centre)


def _cylinder(radius, height, xy):
    m = o3d.geometry.TriangleMesh.create_cylinder(radius, height, 48, 1)
    return m.translate((xy[0], xy[1], height / 2))


def _render(meshes, ground=True):
    """Depth and instance masks (one per mesh) in the camera frame of _pose()."""
    pose = _pose()
    inv = np.linalg.inv(pose)
    scene = o3d.t.geometry.RaycastingScene()
    parts = list(meshes)
    if ground:
        parts = [_box((30.0, 30.0, 0.01), (0.0, 0.0, -0.005))] + parts
    for m in parts:
        m = o3d.geometry.TriangleMesh(m).transform(inv)
        scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(m))
    c, r = np.meshgrid(np.arange(W), np.arange(H))
    d = np.stack([(c + 0.5 - CAM["cx"]) / CAM["fx"], (r + 0.5 - CAM["cy"]) / CAM["fy"], np.ones((H, W))], -1)
    ans = scene.cast_rays(o3d.core.Tensor(np.concatenate([np.zeros_like(d), d], -1).astype(np.float32)))
    t, gid = ans["t_hit"].numpy(), ans["geometry_ids"].numpy()
    depth = np.where(np.isfinite(t), t, np.nan).astype(np.float32)
    first = 1 if ground else 0
    masks = np.stack([gid == i + first for i in range(len(meshes))])
    return depth, masks


def _truth(extent, centre, yaw=0.0) -> dict:
    """A world box (z up) in the camera frame of _pose()."""
    pose = _pose()
    rw = o3d.geometry.get_rotation_matrix_from_axis_angle([0, 0, yaw])
    rot = pose[:3, :3].T @ rw
    c = pose[:3, :3].T @ (np.asarray(centre, float) - pose[:3, 3])
    return g.make_box3d(c, extent, rot)


def _up_in_camera() -> np.ndarray:
    return _pose()[:3, :3].T @ np.array([0.0, 0.0, 1.0])


def _has_up_axis(box: dict) -> bool:
    rot = np.asarray(box["rotation"])
    return bool(np.max(np.abs(rot.T @ _up_in_camera())) > 0.9999)


CYL = (0.3, 0.7, (0.2, -0.1))  # radius, height, ground xy
TABLE = ((1.0, 0.7, 0.5), (-0.9, 0.5, 0.25), 0.3)  # extent, centre, yaw
MUG = ((0.25, 0.25, 0.3), (-0.9, 0.5, 0.65), 0.9)  # standing on the table's top (z = 0.5)


def test_ground_plane_is_found_with_up_towards_the_camera():
    depth, masks = _render([_cylinder(*CYL)])
    ground = fit_ground(depth, masks, CAM, BoxFitConfig())
    assert ground is not None
    assert ground.normal @ _up_in_camera() > 0.9999
    assert ground.offset == pytest.approx(_pose()[2, 3], rel=1e-3)  # the camera's height
    assert ground.inlier_share > 0.9


def test_no_ground_falls_back_to_pca_and_says_so():
    depth, masks = _render([_cylinder(*CYL)], ground=False)
    (fit,), ground = fit_image_boxes(depth, masks, CAM, BoxFitConfig())
    assert ground is None
    assert fit.box is not None and (fit.method, fit.fallback, fit.support) == ("pca", "no_ground", None)


def test_upright_cylinder_on_the_ground_beats_the_visible_surface_box():
    radius, height, xy = CYL
    truth = _truth((2 * radius, 2 * radius, height), (xy[0], xy[1], height / 2))
    depth, masks = _render([_cylinder(*CYL)])
    (grav,), ground = fit_image_boxes(depth, masks, CAM, BoxFitConfig())
    (pca,), _ = fit_image_boxes(depth, masks, CAM, BoxFitConfig(method="pca"))
    assert ground is not None
    assert (grav.method, grav.support, grav.fallback) == ("gravity", "ground", None)
    assert (pca.method, pca.support, pca.fallback) == ("pca", None, None)
    assert _has_up_axis(grav.box) and not _has_up_axis(pca.box)
    iou_g, iou_p = g.box_volume_iou(grav.box, truth), g.box_volume_iou(pca.box, truth)
    err_g, err_p = g.center_error_frac(grav.box, truth), g.center_error_frac(pca.box, truth)
    assert iou_g > 0.65 and iou_g > iou_p + 0.05  # a circle in a square of any yaw: at most ~0.8
    assert err_g < 0.05 and err_g < err_p
    # Down to the ground: the box's lowest corner is on it.
    heights = np.asarray(grav.box["corners"]) @ ground.normal + ground.offset
    assert heights.min() == pytest.approx(0.0, abs=0.01)


def test_yawed_box_gets_its_yaw_and_its_hidden_back():
    extent, centre, yaw = (0.8, 0.5, 0.6), (0.1, 0.0, 0.3), 0.5
    truth = _truth(extent, centre, yaw)
    depth, masks = _render([_box(extent, centre, yaw)])
    (fit,), _ = fit_image_boxes(depth, masks, CAM, BoxFitConfig())
    assert fit.support == "ground" and _has_up_axis(fit.box)
    assert g.box_volume_iou(fit.box, truth) > 0.8
    assert sorted(fit.box["extent"]) == pytest.approx(sorted(extent), abs=0.06)


def test_a_subject_on_a_subject_is_upright_but_not_extended_to_the_ground():
    depth, masks = _render([_box(*TABLE), _box(*MUG)])
    (table, mug), ground = fit_image_boxes(depth, masks, CAM, BoxFitConfig())
    assert (table.support, table.fallback) == ("ground", None)
    assert (mug.method, mug.support, mug.fallback) == ("gravity", "subject", "on_subject")
    assert _has_up_axis(mug.box)
    heights = np.asarray(mug.box["corners"]) @ ground.normal + ground.offset
    assert heights.min() == pytest.approx(0.5, abs=0.03)  # stands on the table top, not the floor
    assert g.box_volume_iou(mug.box, _truth(*MUG)) > 0.5


def test_a_subject_in_the_air_is_not_extended_and_is_counted():
    floating = _box((0.4, 0.4, 0.3), (0.0, 0.0, 0.9), 0.2)
    depth, masks = _render([floating])
    (fit,), ground = fit_image_boxes(depth, masks, CAM, BoxFitConfig())
    assert ground is not None
    assert (fit.method, fit.support, fit.fallback) == ("gravity", "none", "off_ground")
    heights = np.asarray(fit.box["corners"]) @ ground.normal + ground.offset
    assert heights.min() > 0.6


def test_fit_is_deterministic():
    depth, masks = _render([_box(*TABLE), _box(*MUG), _cylinder(*CYL)])
    a, _ = fit_image_boxes(depth, masks, CAM, BoxFitConfig())
    b, _ = fit_image_boxes(depth.copy(), masks.copy(), CAM, BoxFitConfig())
    assert [f.box for f in a] == [f.box for f in b]


def test_min_area_rect_recovers_a_rotated_rectangle():
    rng = np.random.default_rng(0)
    local = rng.uniform([-1.0, -0.3], [1.0, 0.3], size=(500, 2))
    local = np.concatenate([local, [[-1, -0.3], [1, -0.3], [1, 0.3], [-1, 0.3]]])
    a = 0.6
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre, size, angle = min_area_rect(local @ rot.T + [3.0, -1.0])
    assert centre == pytest.approx([3.0, -1.0], abs=1e-9)
    assert sorted(size) == pytest.approx([0.6, 2.0], abs=1e-9)
    assert np.mod(angle - a, np.pi / 2) == pytest.approx(0.0, abs=1e-9) or np.mod(a - angle, np.pi / 2) == pytest.approx(0.0, abs=1e-9)


def test_gravity_is_the_default_and_pca_stays():
    assert BoxFitConfig().method == "gravity"
    assert BoxFitConfig(method="pca").method == "pca"


def test_subjects_the_world_stacked_are_seen_on_a_subject_and_match_their_true_box():
    """The procedural world puts subjects on flat tops (world.stack_share); through the real
    stages on exact depth, those the fit keeps get support "subject", a bottom above the ground
    and boxes close to the truth."""
    from datagen.config.load import resolve_config_path
    from datagen.config.run import load_config
    from datagen.pipeline.preflight import build_stage
    from datagen.store.inflight import Sample
    from datagen.seeds import sample_seed
    from datagen.stages.base import PENDING

    cfg = load_config(resolve_config_path("demo"), ["run.width=256", "run.height=256", "world.stack_share=1.0",
                                                    "filters.apply=last", "stages.prompts.num_subjects=[4, 6]",
                                                    # half of them flat-topped: more to stack on
                                                    "world.shapes=[box, table, cylinder, mug, sphere, cone]"])
    rows = []
    for index in range(6):
        s = Sample(index=index, shard=0, seed=sample_seed(cfg.run.seed, index))
        for name in ("prompts", "t2i", "segment", "depth", "boxes"):
            (s,) = build_stage(name, cfg).process_batch([s])
        world = s.meta["truth"]["scene"]["subjects"]
        for subj in s.subjects:
            if subj.get(PENDING) is None and "on" in world[subj["sid"]]:
                rows.append((subj["boxes"], g.box_volume_iou(subj["box_3d"], subj["truth_box_3d"], samples=4000)))
    assert len(rows) >= 6, rows
    supports = [fit["support"] for fit, _ in rows]
    assert supports.count("subject") >= 0.75 * len(rows), supports
    assert all(fit["fallback"] == "on_subject" for fit, _ in rows if fit["support"] == "subject")
    assert float(np.median([iou for _, iou in rows])) >= 0.4, rows
