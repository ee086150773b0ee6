"""Non-square samples (ingested photographs keep their own size) reach the training resolution
by one crop + resize, the same for the image, the masks, the depth and the routing/structure
control: a subject's pixels in the target and its routing region in the control land on the
same place, with the subject's shape kept (no stretch). Synthetic samples, no shards: fast."""

from __future__ import annotations

import numpy as np
import pytest

from datagen.train.augment import AugmentDraw, build_example, crop_window, subjects_box

R = 64  # the training resolution here; the samples are 80x56 and 56x72, neither R nor square
FG, BG = (230, 200, 20), (30, 40, 50)


def disk_sample(width: int, height: int, cx: float, cy: float, radius: float, source: str = "reference") -> dict:
    """A decoded 1-subject sample: a yellow disk (its mask) on a flat background, a depth that
    grows left to right across the disk (so I_T is brightest on its left), a camera and a 3D
    box that projects onto the disk, one 24x24 identity image."""
    yy, xx = np.mgrid[:height, :width] + 0.5
    mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BG
    image[mask] = FG
    z, f = 4.0, float(width)
    depth = np.where(mask, z + 0.05 * (xx - cx), 20.0).astype(np.float32)
    camera = {"model": "pinhole", "fx": f, "fy": f, "cx": width / 2, "cy": height / 2}
    side = 2 * radius * z / f
    box_3d = {"center": [(cx - width / 2) * z / f, (cy - height / 2) * z / f, z], "extent": [side, side, 0.2],
              "rotation": np.eye(3).tolist()}  # fmt: skip
    ys, xs = np.nonzero(mask)
    subject = {"name": "disk", "caption": "a disk", "intensity": 10, "box_3d": box_3d,
               "box_2d": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
               "identity": {"width": 24, "height": 24, "source": source}}  # fmt: skip
    meta = {"key": "k", "width": width, "height": height, "camera": camera, "subjects": [subject],
            "prompt": {"full": "a disk", "background": "a wall"}}  # fmt: skip
    identity = np.full((1, 24, 24, 3), 128, np.uint8)
    return {"key": "k", "json": meta, "image": image, "masks": mask[None], "depth": depth, "identities": identity}


def centroid(region: np.ndarray) -> np.ndarray:
    """(x, y) in continuous image coordinates: pixel (i, j) covers [j, j + 1) x [i, i + 1)."""
    ys, xs = np.nonzero(region)
    return np.array([xs.mean(), ys.mean()]) + 0.5


def u8(x: np.ndarray) -> np.ndarray:
    return np.round((x + 1.0) * 127.5).astype(np.int32)


def test_crop_window_keeps_the_subjects_and_squares_whole():
    assert crop_window(64, 64, [0, 0, 10, 10]) == (0, 0, 64)  # square: everything, as ever
    assert crop_window(80, 56) == (12, 0, 56)  # no subjects: the centre
    assert crop_window(80, 56, [2, 10, 20, 30]) == (0, 0, 56)  # near the left edge: slid in
    assert crop_window(80, 56, [60, 10, 78, 30]) == (24, 0, 56)  # near the right edge
    assert crop_window(80, 56, [30, 10, 50, 30]) == (12, 0, 56)
    assert crop_window(56, 72, [10, 50, 30, 70]) == (0, 16, 56)  # portrait: slides along y
    x0, _, side = crop_window(200, 50, [70, 0, 110, 50])
    assert x0 <= 70 and 110 <= x0 + side  # a union no longer than the short side is kept whole
    x0, _, side = crop_window(200, 50, [20, 0, 180, 50])
    assert (x0, side) == (75, 50)  # longer: centred on it


@pytest.mark.parametrize("mode", ["masks", "boxes2d", "boxes3d"])
@pytest.mark.parametrize(
    "width, height, cx, cy",
    [(80, 56, 14.0, 30.0), (80, 56, 66.0, 24.0), (80, 56, 40.0, 28.0), (56, 72, 30.0, 58.0), (56, 72, 26.0, 13.0)],
)
def test_target_and_control_stay_aligned_and_unstretched(width, height, cx, cy, mode):
    d = disk_sample(width, height, cx, cy, radius=10.0)
    ex = build_example(d, AugmentDraw(mode, None, 0, 1.0, 0), resolution=R, identity_size=32)
    target, control = u8(ex["target"]), u8(ex["control"])
    assert target.shape == control.shape == (3, R, R)
    x0, y0, side = ex["window"]
    assert side == min(width, height) and crop_window(width, height, subjects_box(d)) == (x0, y0, side)
    scale = R / side

    painted = np.abs(target.transpose(1, 2, 0) - np.array(FG)).max(axis=-1) < 60  # the disk in the target
    routed = control[0] > 0  # subject 0's routing region in the control
    want = (np.array([cx - x0, cy - y0])) * scale  # the mask's centroid, mapped by the window
    assert np.abs(centroid(d["masks"][0]) - [cx, cy]).max() < 0.3
    assert np.abs(centroid(painted) - want).max() < 0.75, (centroid(painted), want)
    assert np.abs(centroid(routed) - centroid(painted)).max() < (0.75 if mode != "boxes3d" else 1.5)
    assert set(np.unique(control[0])) == {0, 10} and np.array_equal(control[0], control[1])  # one subject

    # The disk stays round (a stretch to the square would squash it by 56/80 or 72/56) and whole.
    ys, xs = np.nonzero(painted)
    w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert 0.9 <= w / h <= 1.1, (w, h)
    assert abs(painted.sum() / (np.pi * (10 * scale) ** 2) - 1) < 0.15

    if mode == "masks":  # depth goes through the same window: I_T exactly on the routed pixels
        assert np.array_equal(control[2] > 0, routed)
        left = control[2][:, : int(round(want[0]))][routed[:, : int(round(want[0]))]]
        right = control[2][:, int(round(want[0])) + 1 :][routed[:, int(round(want[0])) + 1 :]]
        assert left.mean() > right.mean() + 50  # near (left, small z) is bright, not mirrored or shifted
    elif mode == "boxes2d":
        assert not control[2].any()
        ys, xs = np.nonzero(routed)  # the box's edges map like the disk's
        assert abs((xs.max() - xs.min() + 1) - w) <= 2 and abs((ys.max() - ys.min() + 1) - h) <= 2


def test_one_subject_reference_identities_train_like_reposed_ones():
    draw = AugmentDraw("masks", None, 2, 1.0, 1)
    ref = build_example(disk_sample(80, 56, 20, 30, 8, source="reference"), draw, R, 32)
    rep = build_example(disk_sample(80, 56, 20, 30, 8, source="repose"), draw, R, 32)
    assert ref["n_subjects"] == 1 and ref["identities"].shape == (3, 32, 32)  # 24x24 brought to 32
    for name in ("target", "control", "identities"):
        assert np.array_equal(ref[name], rep[name]), name
    assert ref["prompt"] == "Place these subjects to compose: a disk"


@pytest.mark.parametrize("mode", ["masks", "boxes2d", "boxes3d"])
@pytest.mark.parametrize("width, height, cx, cy", [(80, 56, 66.0, 24.0), (56, 72, 30.0, 58.0)])
def test_eval_sees_a_non_square_sample_through_the_training_window(width, height, cx, cy, mode):
    """window_view (what `datagen eval` judges): its control is the trainer's control cut to the
    window, box for box (the camera's principal point moves with the cut), and it is square."""
    from datagen.recipe.conditioning import Layout, control_image
    from datagen.recipe.geometry import mask_box_2d
    from datagen.train.augment import window_view

    d = disk_sample(width, height, cx, cy, radius=10.0)
    view = window_view(d)
    x0, y0, side = crop_window(width, height, subjects_box(d))
    assert view["json"]["width"] == view["json"]["height"] == side and view["image"].shape == (side, side, 3)
    assert np.array_equal(view["masks"], d["masks"][:, y0 : y0 + side, x0 : x0 + side])
    assert view["json"]["subjects"][0]["box_2d"] == mask_box_2d(view["masks"][0])
    whole = control_image(Layout.from_sample(d), mode, 0, None)
    seen = control_image(Layout.from_sample(view), mode, 0, None)
    assert np.array_equal(seen, whole[y0 : y0 + side, x0 : x0 + side])
    square = disk_sample(64, 64, 20.0, 30.0, 8.0)
    assert window_view(square) is square  # the synthetic eval split is square: judged as it was
