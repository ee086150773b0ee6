import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import open3d as o3d
import pydantic
import pytest

from datagen.recipe import geometry as g
from datagen.recipe.box_fit import BoxFit, canonicalize, fit_points_box, fit_subject_box
from datagen.config import BoxFitConfig

CAM = {"fx": 300.0, "fy": 300.0, "cx": 160.0, "cy": 120.0, "model": "pinhole"}
H, W = 240, 320
REASONS = {"no_valid_depth", "too_few_points", "flat", "degenerate"}


def _rot(axis, angle):
    return o3d.geometry.get_rotation_matrix_from_axis_angle(np.asarray(axis, float) * angle)


def _render(mesh):
    """z-depth and hit mask of a legacy mesh, ray-cast with the datagen pixel convention."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    c, r = np.meshgrid(np.arange(W), np.arange(H))
    d = np.stack(
        [(c + 0.5 - CAM["cx"]) / CAM["fx"], (r + 0.5 - CAM["cy"]) / CAM["fy"], np.ones((H, W))], -1
    )
    rays = np.concatenate([np.zeros_like(d), d], -1).astype(np.float32)
    t = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
    hit = np.isfinite(t)
    return np.where(hit, t, np.nan).astype(np.float32), hit


def _box_scene(extent=(0.6, 0.4, 0.3), rot=None, center=(0.1, 0.05, 2.0)):
    rot = _rot([1, 1, 0.3], 0.7) if rot is None else rot
    mesh = o3d.geometry.TriangleMesh.create_box(*extent)
    mesh.translate(-np.asarray(extent) / 2)
    mesh.rotate(rot, center=(0, 0, 0))
    mesh.translate(center)
    depth, mask = _render(mesh)
    return depth, mask, g.make_box3d(center, extent, rot)


@pytest.fixture(scope="module")
def box_scene():
    return _box_scene()


def _check_fit(fit, depth, mask, min_inside=0.95):
    assert isinstance(fit, BoxFit)
    assert fit.reason is None and fit.box is not None
    assert json.loads(json.dumps(fit.box)) == fit.box
    rot = np.array(fit.box["rotation"])
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-5)
    ext = np.array(fit.box["extent"])
    assert np.all(np.diff(ext) <= 0)  # canonical: decreasing extents
    visible = g.unproject_pixels(depth, mask, CAM)
    assert g.points_in_box(visible, fit.box, tol=2e-3).mean() >= min_inside
    # The centre of a box around a surface lies near that surface's centroid.
    dist = np.linalg.norm(np.array(fit.box["center"]) - visible.mean(0))
    assert dist < 0.5 * np.linalg.norm(ext)
    return ext


def test_box_three_faces_visible(box_scene):
    depth, mask, true = box_scene
    # The minimal box is tight on a box seen from a corner; PCA (the default) is not.
    fit = fit_subject_box(depth, mask, CAM, BoxFitConfig(method="minimal"))
    ext = _check_fit(fit, depth, mask)
    # Three faces are visible, so every dimension is observed: extents close to the truth.
    np.testing.assert_allclose(ext, sorted(true["extent"], reverse=True), rtol=0.08)
    assert g.box_volume_iou(fit.box, true) > 0.85
    assert g.center_error_frac(fit.box, true) < 0.05
    assert 50 <= fit.num_points <= BoxFitConfig().max_points


def test_box_two_faces_visible():
    # Rotated about the camera's y axis only: the front and one side face are visible.
    depth, mask, true = _box_scene(extent=(0.5, 0.3, 0.4), rot=_rot([0, 1, 0], 0.6), center=(0, 0, 2.2))
    fit = fit_subject_box(depth, mask, CAM, BoxFitConfig())
    _check_fit(fit, depth, mask)
    # The height (the shared edge, along camera y) is observed in full.
    rot = np.array(fit.box["rotation"])
    ext = np.array(fit.box["extent"])
    height_axis = int(np.argmax(np.abs(rot[1, :])))
    assert abs(rot[1, height_axis]) > 0.99
    assert ext[height_axis] == pytest.approx(0.3, rel=0.08)
    # Seen from above the two faces form an L, whose minimal rectangles are tied in area
    # (a*b = hypotenuse * altitude), so only the footprint area is determined, not its sides.
    others = [ext[i] for i in range(3) if i != height_axis]
    assert others[0] * others[1] == pytest.approx(0.5 * 0.4, rel=0.1)


def test_cylinder():
    mesh = o3d.geometry.TriangleMesh.create_cylinder(radius=0.2, height=0.6, resolution=64)
    mesh.rotate(_rot([1, 0, 0], 1.2), center=(0, 0, 0))
    mesh.translate([-0.1, 0.0, 2.5])
    depth, mask = _render(mesh)
    fit = fit_subject_box(depth, mask, CAM, BoxFitConfig())
    ext = _check_fit(fit, depth, mask)
    assert ext[0] == pytest.approx(0.6, rel=0.15)  # the axis length is fully visible


def test_methods_and_edge_options(box_scene):
    depth, mask, _ = box_scene
    for cfg in (
        BoxFitConfig(method="minimal"),
        BoxFitConfig(edge_erode_px=0),
        BoxFitConfig(edge_recover=False),
        BoxFitConfig(outlier_neighbors=0, depth_clip_pct=0.5),
    ):
        fit = fit_subject_box(depth, mask, CAM, cfg)
        _check_fit(fit, depth, g.erode_mask(mask, cfg.edge_erode_px) if not cfg.edge_recover else mask)


def test_flying_pixels_at_edges(box_scene):
    depth, mask, true = box_scene
    # Edge pixels that mix the subject with a background 2 m behind it.
    ring = mask & ~g.erode_mask(mask, 1)
    noisy = depth.copy()
    noisy[ring] = np.where(np.arange(ring.sum()) % 2 == 0, depth[ring] + 1.0, depth[ring] + 0.5)
    # And isolated junk inside the mask (sensor speckle) 1 m behind the surface.
    rows, cols = np.nonzero(g.erode_mask(mask, 4))
    noisy[rows[::300], cols[::300]] += 1.0
    clean = fit_subject_box(depth, mask, CAM, BoxFitConfig(method="minimal"))
    fit = fit_subject_box(noisy, mask, CAM, BoxFitConfig(method="minimal"))
    assert fit.reason is None
    assert g.box_volume_iou(fit.box, true) > 0.8
    assert g.box_volume_iou(fit.box, clean.box) > 0.9
    # PCA is thrown by the same junk no more than by its own looseness.
    pca = fit_subject_box(noisy, mask, CAM, BoxFitConfig(method="pca"))
    assert g.box_volume_iou(pca.box, fit_subject_box(depth, mask, CAM, BoxFitConfig(method="pca")).box) > 0.8
    assert max(fit.box["extent"]) < 0.8


def test_deterministic_in_process(box_scene):
    depth, mask, _ = box_scene
    cfg = BoxFitConfig()
    a = fit_subject_box(depth, mask, CAM, cfg)
    b = fit_subject_box(depth.copy(), mask.copy(), CAM, cfg)
    assert json.dumps(a.box) == json.dumps(b.box)
    assert a.num_points == b.num_points


def test_deterministic_fresh_process(box_scene, tmp_path):
    depth, mask, _ = box_scene
    np.save(tmp_path / "depth.npy", depth)
    np.save(tmp_path / "mask.npy", mask)
    code = (
        "import json, sys, numpy as np\n"
        "from datagen.recipe.box_fit import BoxFitConfig, fit_subject_box\n"
        f"cam = {CAM!r}\n"
        "d = np.load(sys.argv[1]); m = np.load(sys.argv[2])\n"
        "print(json.dumps(fit_subject_box(d, m, cam, BoxFitConfig()).box))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "depth.npy"), str(tmp_path / "mask.npy")],
        cwd=root, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip().splitlines()[-1]
    assert out == json.dumps(fit_subject_box(depth, mask, CAM, BoxFitConfig()).box)


def _rejected(fit, reason):
    assert isinstance(fit, BoxFit)
    assert fit.box is None and fit.reason == reason
    assert fit.reason in REASONS


def test_empty_mask(box_scene):
    depth, mask, _ = box_scene
    _rejected(fit_subject_box(depth, np.zeros_like(mask), CAM, BoxFitConfig()), "too_few_points")


def test_all_nan_depth(box_scene):
    _, mask, _ = box_scene
    depth = np.full((H, W), np.nan, np.float32)
    _rejected(fit_subject_box(depth, mask, CAM, BoxFitConfig()), "no_valid_depth")
    bad = np.where(mask, np.where(np.arange(H * W).reshape(H, W) % 2, 0.0, np.inf), np.nan)
    _rejected(fit_subject_box(bad.astype(np.float32), mask, CAM, BoxFitConfig()), "no_valid_depth")


def test_ten_points(box_scene):
    depth, mask, _ = box_scene
    few = np.zeros_like(mask)
    rows, cols = np.nonzero(mask)
    few[rows[::500][:10], cols[::500][:10]] = True
    fit = fit_subject_box(depth, few, CAM, BoxFitConfig())
    _rejected(fit, "too_few_points")
    assert fit.num_points == 10


def test_plane_is_flat():
    depth = np.full((H, W), 2.0, np.float32)  # fronto-parallel wall
    mask = np.zeros((H, W), bool)
    mask[50:150, 60:200] = True
    _rejected(fit_subject_box(depth, mask, CAM, BoxFitConfig()), "flat")
    # A tilted plane (depth linear in the column), exact and with tiny noise.
    cols = np.arange(W, dtype=np.float64)[None, :].repeat(H, 0)
    u = (cols + 0.5 - CAM["cx"]) / CAM["fx"]
    tilted = (2.0 / (1.0 - 0.5 * u)).astype(np.float32)  # the plane z = 2 + 0.5 x
    _rejected(fit_subject_box(tilted, mask, CAM, BoxFitConfig()), "flat")
    noise = np.random.default_rng(0).normal(0, 1e-4, (H, W)).astype(np.float32)
    _rejected(fit_subject_box(tilted + noise, mask, CAM, BoxFitConfig()), "flat")


def test_single_face_box_is_flat():
    # Looking straight at one face: the visible surface is a rectangle.
    depth, mask, _ = _box_scene(rot=np.eye(3), center=(0.0, 0.0, 2.0))
    _rejected(fit_subject_box(depth, mask, CAM, BoxFitConfig()), "flat")


def test_identical_points_and_line():
    cfg = BoxFitConfig()
    _rejected(fit_points_box(np.tile([[0.1, 0.2, 2.0]], (200, 1)), cfg), "degenerate")
    t = np.linspace(0, 1, 300)[:, None]
    _rejected(fit_points_box([0, 0, 2.0] + t * [0.3, -0.1, 0.5], cfg), "degenerate")
    # A row of pixels at constant depth unprojects to a line.
    depth = np.full((H, W), 2.0, np.float32)
    mask = np.zeros((H, W), bool)
    mask[100, 20:300] = True
    _rejected(fit_subject_box(depth, mask, CAM, cfg), "degenerate")


def test_nan_points_and_near_degenerate_never_raise():
    rng = np.random.default_rng(3)
    cfg = BoxFitConfig()
    pts = rng.random((300, 3))
    pts[::7] = np.nan
    fit = fit_points_box(pts, cfg)
    assert fit.reason is None
    cases = [
        np.c_[rng.random((300, 2)), 1e-9 * rng.random(300)],  # plane with jitter
        np.c_[rng.random(300), 1e-9 * rng.random((300, 2))],  # line with jitter
        np.r_[np.zeros((299, 3)), [[1e-12, 0, 0]]],  # nearly one point
        np.r_[np.tile([[0, 0, 1.0]], (150, 1)), np.tile([[1.0, 0, 1.0]], (150, 1))],  # two points
        np.full((300, 3), np.nan),
        np.empty((0, 3)),
    ]
    for pts in cases:
        fit = fit_points_box(pts, cfg)
        assert fit.box is None and fit.reason in REASONS


def test_canonicalize():
    r = _rot([0.2, 1, 0.5], 2.0)
    e = np.array([0.2, 0.5, 0.3])
    e1, r1 = canonicalize(e, r)
    np.testing.assert_allclose(e1, [0.5, 0.3, 0.2])
    assert np.linalg.det(r1) == pytest.approx(1.0)
    # Any equivalent description of the same box canonicalises to the same one.
    for perm, signs in (([2, 0, 1], [1, -1, -1]), ([1, 0, 2], [-1, 1, 1]), ([0, 1, 2], [-1, -1, 1])):
        e2, r2 = canonicalize(e[perm], r[:, perm] * signs)
        np.testing.assert_allclose(e2, e1)
        np.testing.assert_allclose(r2, r1, atol=1e-12)


def test_config_validation():
    assert BoxFitConfig().method == "gravity"
    with pytest.raises(pydantic.ValidationError):
        BoxFitConfig(unknown=1)
    with pytest.raises(pydantic.ValidationError):
        BoxFitConfig(method="aabb")
    with pytest.raises(pydantic.ValidationError):
        BoxFitConfig(min_points=0)
    with pytest.raises(pydantic.ValidationError):
        BoxFitConfig(edge_erode_px=-1)
    with pytest.raises(pydantic.ValidationError):
        BoxFitConfig(min_extent_ratio=1.5)
