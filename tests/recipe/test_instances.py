"""Exclusive masks by depth order and the instance map of sigma-set/2."""

import numpy as np
import pytest

from datagen.recipe.instances import (
    decode_instances,
    encode_instances,
    exclusive_by_depth,
    exclusive_subjects,
    kept_share,
    subject_depths,
)


def _scene():
    depth = np.full((10, 10), 5.0, np.float32)
    far = np.zeros((10, 10), bool)
    far[0:6, 0:6] = True
    near = np.zeros((10, 10), bool)
    near[3:9, 3:9] = True
    depth[3:9, 3:9] = 2.0  # the second subject is in front where they overlap
    return [far, near], depth


def test_a_contested_pixel_goes_to_the_nearer_subject():
    (far, near), depth = _scene()
    ex_far, ex_near = exclusive_by_depth([far, near], depth)
    assert np.array_equal(ex_near, near)  # the front subject keeps its whole mask
    assert np.array_equal(ex_far, far & ~near)
    assert not np.any(ex_far & ex_near)
    assert kept_share(far, ex_far) == pytest.approx(27 / 36)
    assert kept_share(near, ex_near) == 1.0


def test_order_follows_depth_not_the_list_and_ties_keep_the_first():
    (far, near), depth = _scene()
    ex_near, ex_far = exclusive_by_depth([near, far], depth)
    assert np.array_equal(ex_near, near) and np.array_equal(ex_far, far & ~near)
    flat = np.ones((10, 10), np.float32)
    first, second = exclusive_by_depth([far, near], flat)
    assert np.array_equal(first, far) and np.array_equal(second, near & ~far)


def test_a_mask_without_valid_depth_goes_behind_every_other():
    (far, near), depth = _scene()
    depth[0:3, 0:3] = np.nan
    depth[3:9, 3:9] = np.nan
    lone = np.zeros((10, 10), bool)
    lone[4:6, 4:6] = True  # all-NaN depth under it
    assert subject_depths([lone], depth) == [float("inf")]
    ex = exclusive_by_depth([lone, far], depth)
    assert np.array_equal(ex[1], far) and not np.any(ex[0] & far)


def test_the_instance_map_round_trips_exclusive_masks_and_refuses_overlap():
    (far, near), depth = _scene()
    masks = exclusive_by_depth([far, near], depth)
    instances = encode_instances(masks)
    assert instances.dtype == np.uint8 and set(np.unique(instances)) == {0, 1, 2}
    back = decode_instances(instances, 2)
    assert all(np.array_equal(a, b) for a, b in zip(back, masks, strict=True))
    with pytest.raises(ValueError, match="mask 1 overlaps"):
        encode_instances([far, near])
    with pytest.raises(ValueError, match="only 1 subjects"):
        decode_instances(instances, 1)


def test_an_occluded_subject_is_dropped_and_those_behind_it_keep_what_it_covered():
    depth = np.full((10, 14), 9.0, np.float32)  # `back` and the background
    front = np.zeros((10, 14), bool)
    front[2:8, 0:6] = True
    depth[2:8, 0:6] = 1.0
    middle = np.zeros((10, 14), bool)
    middle[2:8, 1:8] = True  # 30 of its 42 pixels under `front`: keeps 2/7
    depth[2:8, 6:8] = 2.0
    back = np.zeros((10, 14), bool)
    back[2:8, 7:14] = True  # its first column under `middle`
    assert subject_depths([front, middle, back], depth) == [1.0, 2.0, 9.0]  # uncontested pixels decide
    masks, reasons = exclusive_subjects([front, middle, back], depth, [0, 1, 2], 0.5)
    assert reasons == {1: "occluded"}
    assert np.array_equal(masks[0], front)
    assert np.array_equal(masks[1], middle)  # a dropped subject's mask is left as it was
    assert np.array_equal(masks[2], back)  # the column `middle` would have taken stays back's
    # With no share asked for, nobody is dropped and `middle` keeps its sliver.
    masks, reasons = exclusive_subjects([front, middle, back], depth, [0, 1, 2], 0.0)
    assert reasons == {} and np.array_equal(masks[1], middle & ~front)
    assert np.array_equal(masks[2], back & ~middle)


def test_subjects_outside_alive_claim_nothing_and_stay_as_they_were():
    (far, near), depth = _scene()
    masks, reasons = exclusive_subjects([far, near], depth, [0], 0.5)
    assert reasons == {} and np.array_equal(masks[0], far) and np.array_equal(masks[1], near)
