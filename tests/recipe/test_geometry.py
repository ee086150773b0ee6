import json

import numpy as np
import pytest

from datagen.recipe import geometry as g

CAM = {"fx": 500.0, "fy": 480.0, "cx": 320.0, "cy": 240.0, "model": "pinhole"}


def _rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def test_unproject_project_round_trip_hits_pixel_centres():
    h, w = 12, 16
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 5.0, (h, w)).astype(np.float32)
    mask = np.ones((h, w), bool)
    pts = g.unproject_pixels(depth, mask, CAM)
    assert pts.shape == (h * w, 3) and pts.dtype == np.float64
    uv = g.project_points(pts, CAM)
    rows, cols = np.nonzero(mask)
    np.testing.assert_allclose(uv[:, 0], cols + 0.5, atol=1e-9)
    np.testing.assert_allclose(uv[:, 1], rows + 0.5, atol=1e-9)
    np.testing.assert_allclose(pts[:, 2], depth[rows, cols])


def test_unproject_convention_and_invalid_depth():
    depth = np.full((4, 5), 2.0, np.float32)
    depth[0, 0] = np.nan
    depth[0, 1] = np.inf
    depth[0, 2] = 0.0
    depth[0, 3] = -1.0
    mask = np.zeros((4, 5), bool)
    mask[0, :] = True
    pts = g.unproject_pixels(depth, mask, CAM)
    assert pts.shape == (1, 3)  # only (r0, c4) is valid
    x = (4 + 0.5 - CAM["cx"]) * 2.0 / CAM["fx"]
    y = (0 + 0.5 - CAM["cy"]) * 2.0 / CAM["fy"]
    np.testing.assert_allclose(pts[0], [x, y, 2.0])
    assert g.unproject_pixels(depth, np.zeros_like(mask), CAM).shape == (0, 3)


def test_box_corners_order_and_extent():
    c = g.box_corners([1.0, 2.0, 3.0], [2.0, 4.0, 6.0], np.eye(3))
    assert c.shape == (8, 3)
    np.testing.assert_allclose(c[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(c[1], [2.0, 0.0, 0.0])
    np.testing.assert_allclose(c[2], [2.0, 4.0, 0.0])
    np.testing.assert_allclose(c[3], [0.0, 4.0, 0.0])
    np.testing.assert_allclose(c[4:], c[:4] + [0.0, 0.0, 6.0])
    np.testing.assert_allclose(c.max(0) - c.min(0), [2.0, 4.0, 6.0])


def test_make_box3d_with_rotation_is_jsonable_and_consistent():
    r = _rot_z(0.4) @ _rot_x(-0.3)
    box = g.make_box3d(np.array([0.1, -0.2, 2.5]), np.array([0.3, 0.2, 0.1]), r)
    assert set(box) == {"center", "extent", "rotation", "corners"}
    assert json.loads(json.dumps(box)) == box
    for v in box["center"] + box["extent"] + sum(box["rotation"], []) + sum(box["corners"], []):
        assert type(v) is float
        assert round(v, 6) == v
    rot = np.array(box["rotation"])
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-5)
    corners = np.array(box["corners"])
    # Edge 0->1 runs along the first box axis (column 0) with length extent[0].
    np.testing.assert_allclose(corners[1] - corners[0], 0.3 * r[:, 0], atol=2e-6)
    np.testing.assert_allclose(corners[3] - corners[0], 0.2 * r[:, 1], atol=2e-6)
    np.testing.assert_allclose(corners[4] - corners[0], 0.1 * r[:, 2], atol=2e-6)
    np.testing.assert_allclose(corners.mean(0), box["center"], atol=2e-6)


def test_mask_box_2d():
    m = np.zeros((10, 20), bool)
    assert g.mask_box_2d(m) is None
    m[3, 7] = True
    assert g.mask_box_2d(m) == [7, 3, 8, 4]
    m[5:9, 2:4] = True
    box = g.mask_box_2d(m)
    assert box == [2, 3, 8, 9]
    assert all(type(v) is int for v in box)
    full = np.ones((10, 20), bool)
    assert g.mask_box_2d(full) == [0, 0, 20, 10]


def test_erode_mask():
    m = np.zeros((20, 20), bool)
    m[5:15, 4:16] = True
    e = g.erode_mask(m, 2)
    expected = np.zeros_like(m)
    expected[7:13, 6:14] = True
    np.testing.assert_array_equal(e, expected)
    np.testing.assert_array_equal(g.erode_mask(m, 0), m)
    assert not g.erode_mask(m, 5).any()
    # The image border counts as background.
    assert g.mask_box_2d(g.erode_mask(np.ones((6, 6), bool), 1)) == [1, 1, 5, 5]


def test_points_in_box():
    box = g.make_box3d([0, 0, 0], [2, 2, 2], _rot_z(np.pi / 4))
    pts = np.array([[0, 0, 0], [1.3, 0, 0], [1.5, 0, 0], [0, 0, 1.05]])
    np.testing.assert_array_equal(g.points_in_box(pts, box), [True, True, False, False])
    np.testing.assert_array_equal(g.points_in_box(pts, box, tol=0.1), [True, True, True, True])


def test_iou_self_disjoint_half_shift():
    r = _rot_z(0.3) @ _rot_x(0.2)
    a = g.make_box3d([0, 0, 2], [1.0, 0.5, 0.25], r)
    assert g.box_volume_iou(a, a) == pytest.approx(1.0, abs=1e-6)
    far = g.make_box3d([5, 0, 2], [1.0, 0.5, 0.25], r)
    assert g.box_volume_iou(a, far) == 0.0
    half = g.make_box3d(np.array([0, 0, 2]) + 0.5 * r[:, 0], [1.0, 0.5, 0.25], r)
    assert g.box_volume_iou(a, half) == pytest.approx(1 / 3, abs=0.02)
    assert g.box_volume_iou(a, half) == g.box_volume_iou(a, half)  # deterministic


def test_iou_nested_and_axis_permutation_invariance():
    a = g.make_box3d([0, 0, 0], [2, 2, 2], np.eye(3))
    inner = g.make_box3d([0, 0, 0], [1, 1, 1], np.eye(3))
    assert g.box_volume_iou(a, inner) == pytest.approx(1 / 8, abs=0.01)
    r = _rot_z(0.5)
    b = g.make_box3d([1, 2, 3], [0.4, 0.3, 0.2], r)
    # Same box with the axes cyclically reordered (det stays +1).
    perm = np.stack([r[:, 1], r[:, 2], r[:, 0]], axis=1)
    b2 = g.make_box3d([1, 2, 3], [0.3, 0.2, 0.4], perm)
    np.testing.assert_allclose(sorted(map(tuple, b["corners"])), sorted(map(tuple, b2["corners"])), atol=1e-5)
    assert g.box_volume_iou(b, b2) == pytest.approx(1.0, abs=1e-3)


def test_center_error_frac():
    t = g.make_box3d([0, 0, 0], [3, 4, 12], np.eye(3))  # diagonal 13
    p = g.make_box3d([0, 0, 1.3], [1, 1, 1], _rot_z(1.0))
    assert g.center_error_frac(p, t) == pytest.approx(0.1)
    assert g.center_error_frac(t, t) == 0.0
