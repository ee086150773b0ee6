"""The SIGMA-GEN conditioning builders (datagen/recipe/conditioning.py) on hand-made and real samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from datagen.recipe.conditioning import (
    Layout,
    box2d_region,
    box3d_structure,
    control_image,
    dilate_mask,
    drop_channel,
    encode_depth,
    identity_stack,
    jitter_box_2d,
    render_box3d,
    routing_maps,
    sample_control,
)
from datagen.final.read import iter_final_samples
from datagen.recipe.geometry import make_box3d, points_in_box, project_points
from tests.helpers import run_cli

# Non-square on purpose: 128 wide, 96 high, principal point at the centre.
W, H = 128, 96
CAM = {"model": "pinhole", "fx": 100.0, "fy": 100.0, "cx": 64.0, "cy": 48.0}


def _rect(x0, y0, x1, y1, w=W, h=H):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _rot(axis, angle):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _rays(rows, cols, cam=CAM):
    return np.stack([(cols + 0.5 - cam["cx"]) / cam["fx"], (rows + 0.5 - cam["cy"]) / cam["fy"], np.ones(len(rows))], axis=1)


# ---------------------------------------------------------------- routing


def test_disjoint_masks_route_identically_with_intensities():
    regions = [_rect(0, 0, 10, 10), _rect(20, 5, 40, 30), _rect(100, 60, 128, 96)]
    asc, dsc = routing_maps(regions)
    assert asc.dtype == np.uint8 and asc.shape == (H, W)
    np.testing.assert_array_equal(asc, dsc)
    assert set(np.unique(asc)) == {0, 10, 20, 30}
    for i, r in enumerate(regions):
        assert np.all(asc[r] == 10 * (i + 1))
    assert np.all(asc[~np.any(regions, axis=0)] == 0)


def test_overlapping_boxes_differ_exactly_on_the_overlap():
    subjects = [{"box_2d": [10, 10, 50, 40]}, {"box_2d": [30, 20, 80, 70]}]
    control = control_image(Layout(W, H, subjects), "boxes2d")
    asc, dsc = control[..., 0], control[..., 1]
    overlap = _rect(30, 20, 50, 40)
    np.testing.assert_array_equal(asc != dsc, overlap)
    assert np.all(asc[overlap] == 20)  # ascending: subject 1 pasted last
    assert np.all(dsc[overlap] == 10)  # descending: subject 0 pasted last
    assert np.all(asc[_rect(10, 10, 50, 40) & ~overlap] == 10)
    assert np.all(asc[_rect(30, 20, 80, 70) & ~overlap] == 20)


# ---------------------------------------------------------------- depth encoding


def test_depth_encoding_follows_the_documented_rule():
    depth = np.array([[1.0, 2.0, 4.0, np.nan], [3.0, 0.5, -1.0, 4.0]], dtype=np.float32)
    region = np.array([[True, True, True, True], [False, False, True, True]])
    code = encode_depth(depth, region)
    assert code.dtype == np.uint8
    # s = 1/z over {1, 2, 4, 4}: s_max = 1 (z=1) -> 255, s_min = 0.25 (z=4) -> 1,
    # z=2: 1 + round(254 * 0.25 / 0.75) = 1 + round(84.67) = 86.
    np.testing.assert_array_equal(code, [[255, 86, 1, 0], [0, 0, 0, 1]])
    # A single depth is all "near".
    np.testing.assert_array_equal(encode_depth(np.full((2, 2), 3.0), np.eye(2, dtype=bool)), [[255, 0], [0, 255]])
    assert not encode_depth(np.full((2, 2), np.nan), np.ones((2, 2), bool)).any()


def test_depth_encoding_is_monotone():
    z = np.sort(np.random.default_rng(0).uniform(0.5, 20.0, size=(1, 500)), axis=1)
    code = encode_depth(z, np.ones_like(z, dtype=bool)).astype(int)[0]
    assert code[0] == 255 and code[-1] == 1
    assert np.all(np.diff(code) <= 0)


# ---------------------------------------------------------------- 3D boxes


def test_axis_aligned_box_renders_its_front_face():
    box = make_box3d([0.0, 0.0, 5.0], [2.0, 2.0, 2.0], np.eye(3))
    z = render_box3d(box, CAM, W, H)
    # Silhouette = front face at z=4: u, v in 100 * [-1, 1] / 4 + centre = [39, 89] x [23, 73];
    # pixel centres c + 0.5 inside -> columns 39..88, rows 23..72.
    expected = _rect(39, 23, 89, 73)
    np.testing.assert_array_equal(np.isfinite(z), expected)
    np.testing.assert_allclose(z[expected], 4.0, atol=1e-9)
    # Off-axis: x in [2, 4], y in [-1, 1], z in [4, 6]. Columns whose centre is at
    # u >= 100*2/4 + 64 = 114 see the front face (z = 4, rows 23..72); columns from the side
    # face x = 2's far end (200/6 + 64 = 97.33) up to 114 see that side face, a trapezoid where
    # z = 2 * fx / (u - cx) and |v - cy| <= fy * 1 / z = (u - cx) / 2.
    off = make_box3d([3.0, 0.0, 5.0], [2.0, 2.0, 2.0], np.eye(3))
    z = render_box3d(off, CAM, W, H)
    u = np.arange(W)[None, :] + 0.5
    v = np.arange(H)[:, None] + 0.5
    side = (u > 97.34) & (u < 114) & (np.abs(v - 48.0) <= (u - 64.0) / 2)
    np.testing.assert_array_equal(np.isfinite(z), _rect(114, 23, 128, 73) | side)
    np.testing.assert_allclose(z[23:73, 114:], 4.0, atol=1e-9)
    np.testing.assert_allclose(z[side], np.broadcast_to(200.0 / (u - 64.0), (H, W))[side], atol=1e-9)


def test_rotated_box_region_is_the_hull_of_its_projected_corners_and_depth_is_the_surface():
    box = make_box3d([0.3, -0.2, 6.0], [2.0, 1.2, 0.8], _rot([1.0, 2.0, 0.5], 0.7))
    z = render_box3d(box, CAM, W, H)
    region = np.isfinite(z)
    corners = np.asarray(box["corners"])
    hull = ConvexHull(project_points(corners, CAM))
    rows, cols = np.mgrid[0:H, 0:W]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    signed = centres @ hull.equations[:, :2].T + hull.equations[:, 2]  # <= 0 inside, in pixels
    inside = np.all(signed <= -1e-6, axis=1).reshape(H, W)
    outside = np.any(signed >= 1e-6, axis=1).reshape(H, W)
    assert inside.sum() > 200
    assert np.all(region[inside]) and not np.any(region[outside])
    zs = z[region]
    assert zs.min() >= corners[:, 2].min() - 1e-9 and zs.max() <= corners[:, 2].max() + 1e-9
    # Each hit lies on the box surface, and a step towards the camera leaves the box: the
    # first surface along the ray, checked independently of the slab code.
    r, c = np.nonzero(region)
    pts = _rays(r, c) * zs[:, None]
    assert np.all(points_in_box(pts, box, tol=1e-6))
    assert not np.any(points_in_box(pts * (1 - 1e-4), box))


def test_nearest_box_wins_in_depth():
    near = make_box3d([0.0, 0.0, 5.0], [2.0, 2.0, 2.0], np.eye(3))  # front face z = 4
    far = make_box3d([0.0, 0.0, 10.0], [6.0, 6.0, 6.0], np.eye(3))  # front face z = 7
    regions, depth = box3d_structure([far, near], CAM, W, H)
    near_region = _rect(39, 23, 89, 73)
    np.testing.assert_array_equal(regions[1], near_region)
    assert np.all(regions[0][near_region])  # the far box's projection includes the hidden part
    np.testing.assert_allclose(depth[near_region], 4.0, atol=1e-9)
    np.testing.assert_allclose(depth[regions[0] & ~near_region], 7.0, atol=1e-9)
    assert np.all(np.isnan(depth[~regions[0]]))
    control = control_image(Layout(W, H, [{"box_3d": far}, {"box_3d": near}], camera=CAM), "boxes3d")
    assert np.all(control[near_region, 2] == 255)
    assert np.all(control[regions[0] & ~near_region, 2] == 1)
    assert np.all(control[~regions[0], 2] == 0)
    assert np.all(control[near_region, 0] == 20) and np.all(control[near_region, 1] == 10)


def test_box3d_augmentations_grow_and_reshape():
    box = make_box3d([0.0, 0.0, 5.0], [2.0, 2.0, 2.0], np.eye(3))
    base = np.isfinite(render_box3d(box, CAM, W, H))
    grown = np.isfinite(render_box3d(box, CAM, W, H, dilate_px=2))
    assert np.all(grown[base]) and grown.sum() > base.sum()
    wide = np.isfinite(render_box3d(box, CAM, W, H, aspect=1.5))
    cols, rows = np.flatnonzero(wide.any(0)), np.flatnonzero(wide.any(1))
    assert cols.size > 50 and rows.size < 50
    assert abs((cols[0] + cols[-1] + 1) / 2 - 64) <= 0.5 and abs((rows[0] + rows[-1] + 1) / 2 - 48) <= 0.5


# ---------------------------------------------------------------- 2D boxes and masks


def test_boxes2d_regions_are_rectangles_and_structure_is_empty():
    subjects = [{"box_2d": [5, 6, 20, 30]}, {"box_2d": [60, 50, 128, 96]}]
    control = control_image(Layout(W, H, subjects), "boxes2d")
    assert control.shape == (H, W, 3) and control.dtype == np.uint8
    assert not control[..., 2].any()
    np.testing.assert_array_equal(control[..., 0] == 10, _rect(5, 6, 20, 30))
    np.testing.assert_array_equal(control[..., 0] == 20, _rect(60, 50, 128, 96))


def test_box_dilation_grows_by_exactly_k_clipped():
    np.testing.assert_array_equal(box2d_region([10, 20, 30, 40], W, H, dilate_px=3), _rect(7, 17, 33, 43))
    np.testing.assert_array_equal(box2d_region([1, 2, 126, 95], W, H, dilate_px=4), np.ones((H, W), bool))
    mask = _rect(10, 20, 30, 40)
    np.testing.assert_array_equal(dilate_mask(mask, 3), _rect(7, 17, 33, 43))
    np.testing.assert_array_equal(dilate_mask(_rect(0, 90, 5, 96), 2), _rect(0, 88, 7, 96))
    dot = np.zeros((H, W), bool)
    dot[50, 60] = True
    assert dilate_mask(dot, 2).sum() == 25 and dilate_mask(dot, 0).sum() == 1


def test_aspect_jitter_keeps_the_centre():
    for box, a in [([10, 20, 50, 40], 1.5), ([10, 20, 50, 40], 0.7), ([0, 0, 101, 33], 1.01)]:
        x0, y0, x1, y1 = jitter_box_2d(box, a)
        assert abs((x0 + x1) / 2 - (box[0] + box[2]) / 2) <= 0.5
        assert abs((y0 + y1) / 2 - (box[1] + box[3]) / 2) <= 0.5
        ratio = (x1 - x0) / (y1 - y0) / ((box[2] - box[0]) / (box[3] - box[1]))
        assert ratio == pytest.approx(a, rel=0.05)
    assert jitter_box_2d([10, 20, 50, 40], 1.0) == [10, 20, 50, 40]


def test_masks_mode_keeps_depth_on_the_precise_masks():
    masks = np.stack([_rect(10, 10, 20, 20), _rect(40, 30, 60, 50)])
    depth = np.full((H, W), 9.0, dtype=np.float32)
    depth[10:20, 10:20] = 2.0
    depth[30:50, 40:60] = 4.0
    depth[30:32, 40:42] = np.nan
    control = control_image(Layout(W, H, [{}, {}], camera=CAM, masks=masks, depth=depth), "masks", dilate_px=2)
    np.testing.assert_array_equal(control[..., 0] == 10, dilate_mask(masks[0], 2))
    np.testing.assert_array_equal(control[..., 2] > 0, masks.any(0) & np.isfinite(depth))
    assert np.all(control[10:20, 10:20, 2] == 255) and np.all(control[32:50, 40:60, 2] == 1)


def test_drop_channel_and_bad_inputs():
    control = np.full((4, 6, 3), 7, dtype=np.uint8)
    out = drop_channel(control, 1)
    assert not out[..., 1].any() and np.all(out[..., [0, 2]] == 7) and np.all(control == 7)
    with pytest.raises(ValueError):
        drop_channel(control, 3)
    with pytest.raises(ValueError, match="mode"):
        control_image(Layout(W, H, [{"box_2d": [0, 0, 1, 1]}]), "boxes")
    with pytest.raises(ValueError):
        control_image(Layout(W, H, [{}], masks=np.zeros((1, H, W + 1), bool), depth=np.zeros((H, W + 1))), "masks")


def _two_subject_layout() -> Layout:
    masks = np.stack([_rect(10, 10, 30, 25), _rect(50, 40, 90, 70)])
    depth = np.full((H, W), 5.0, dtype=np.float32)
    subjects = [
        {"box_2d": [10, 10, 30, 25], "box_3d": make_box3d([-0.5, -0.3, 5.0], [1.0, 0.6, 1.0], np.eye(3))},
        {"box_2d": [50, 40, 90, 70], "box_3d": make_box3d([0.8, 0.5, 6.0], [1.2, 1.0, 1.0], _rot([0, 1, 0], 0.4))},
    ]
    return Layout(W, H, subjects, camera=CAM, masks=masks, depth=depth)


def test_control_image_routes_each_modes_augmented_regions():
    layout = _two_subject_layout()
    boxes_3d = [s["box_3d"] for s in layout.subjects]
    expected = {
        "masks": [dilate_mask(m, 2) for m in layout.masks],
        "boxes3d": box3d_structure(boxes_3d, CAM, W, H, dilate_px=2, aspect=1.3)[0],
        "boxes2d": [box2d_region(s["box_2d"], W, H, dilate_px=2, aspect=1.3) for s in layout.subjects],
    }
    for mode, regions in expected.items():
        control = control_image(layout, mode, dilate_px=2, aspect=1.3)
        asc, dsc = routing_maps(regions)
        np.testing.assert_array_equal(control[..., 0], asc, err_msg=mode)
        np.testing.assert_array_equal(control[..., 1], dsc, err_msg=mode)
    # A decoded sample gives the same layout.
    sample = {"json": {"width": W, "height": H, "subjects": layout.subjects, "camera": CAM},
              "masks": layout.masks, "depth": layout.depth}  # fmt: skip
    for mode in ("masks", "boxes3d", "boxes2d"):
        np.testing.assert_array_equal(sample_control(sample, mode, 1, 0.8), control_image(layout, mode, 1, 0.8))


def test_layout_lacking_what_the_mode_needs_is_refused():
    full = _two_subject_layout()
    with pytest.raises(ValueError, match="masks and depth"):
        control_image(Layout(W, H, full.subjects, camera=CAM, masks=full.masks), "masks")
    with pytest.raises(ValueError, match="camera"):
        control_image(Layout(W, H, full.subjects), "boxes3d")
    with pytest.raises(ValueError, match="at least one subject"):
        control_image(Layout(W, H, []), "boxes2d")
    with pytest.raises(AttributeError):
        full.width = 64  # frozen: one layout serves every mode and draw unchanged


def test_identity_stack_order_and_size_check():
    ids = [np.full((8, 5, 3), 10 * (i + 1), dtype=np.uint8) for i in range(3)]
    stack = identity_stack(ids)
    assert stack.shape == (24, 5, 3) and stack.dtype == np.uint8
    for i in range(3):
        assert np.all(stack[8 * i : 8 * (i + 1)] == 10 * (i + 1))
    np.testing.assert_array_equal(identity_stack(np.stack(ids)), stack)
    with pytest.raises(ValueError, match="size"):
        identity_stack([ids[0], np.zeros((8, 6, 3), np.uint8)])


# ---------------------------------------------------------------- a real sample


@pytest.fixture(scope="module")
def real_sample(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("cond") / "run"
    args = ["run", "--config", "configs/demo.yaml", "--set", "run.num_samples=2", "--set", "run.shard_size=2",
            "--set", "run.width=128", "--set", "run.height=128", "--executor", "local", "--out", str(out)]
    proc = run_cli(*args, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    sample = next(iter_final_samples(out))
    meta, masks, depth, ids = sample.meta, sample.masks, sample.depth, sample.identities
    return {"json": meta, "masks": masks, "depth": depth, "identity": ids}


def test_real_sample_builds_all_three_controls(real_sample):
    meta, masks = real_sample["json"], real_sample["masks"]
    n, h, w = masks.shape
    # masks mode: the routing regions are the masks
    c = sample_control(real_sample, "masks")
    assert c.shape == (h, w, 3)
    asc, dsc = routing_maps(list(masks))
    np.testing.assert_array_equal(c[..., 0], asc)
    np.testing.assert_array_equal(c[..., 1], dsc)
    assert np.all((c[..., 2] > 0) <= masks.any(0)) and c[..., 2].max() == 255
    # boxes3d mode: each box, fitted to its mask's depth points, covers that mask well
    regions, _ = box3d_structure([s["box_3d"] for s in meta["subjects"]], meta["camera"], w, h)
    for i in range(n):
        iou = (regions[i] & masks[i]).sum() / (regions[i] | masks[i]).sum()
        assert iou > 0.3, f"subject {i}: IoU {iou:.2f}"
    c3 = sample_control(real_sample, "boxes3d", dilate_px=1, aspect=1.01)
    assert c3.shape == (h, w, 3) and c3[..., 2].max() == 255 and set(np.unique(c3[..., 0])) <= {0, *range(10, 10 * n + 1, 10)}
    # boxes2d mode: the regions are the box_2d rectangles, which bound the masks tightly
    c2 = sample_control(real_sample, "boxes2d")
    assert not c2[..., 2].any()
    assert np.all(c2[..., 0][masks.any(0)] > 0)
    stack = identity_stack(real_sample["identity"])
    assert stack.shape[0] == n * real_sample["identity"].shape[1]
