import numpy as np

from datagen.config import FilterRules
from datagen.recipe.filters import mask_overlap, subject_count_reason, subject_rejections


def _rect(x0, y0, x1, y1, size=100):
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_box_area_bounds():
    rules = FilterRules()
    masks = np.stack([_rect(0, 0, 5, 5), _rect(10, 10, 40, 40), _rect(0, 0, 90, 90), np.zeros((100, 100), bool)])
    reasons = subject_rejections(masks, [1.0] * 4, rules)
    # 25 px = 0.25% < 1%; 900 px = 9% ok; 8100 px = 81% > 40%; empty.
    assert reasons == {0: "box_area_small", 2: "box_area_large", 3: "empty_mask"}


def test_box_area_uses_box_not_mask():
    ring = _rect(10, 10, 50, 50) & ~_rect(11, 11, 49, 49)  # thin ring: tiny mask, 16% box
    assert subject_rejections(ring[None], [1.0], FilterRules()) == {}


def test_duplicates_and_overlaps_keep_the_higher_score():
    a = _rect(10, 10, 40, 40)
    dup = _rect(10, 10, 40, 40)
    inside = _rect(15, 15, 30, 30)
    apart = _rect(60, 60, 90, 90)
    masks = np.stack([a, dup, inside, apart])
    reasons = subject_rejections(masks, [0.5, 0.9, 0.7, 0.6], FilterRules(overlap="score", max_mask_overlap=0.5))
    assert reasons == {0: "overlap", 2: "overlap"}  # dup (0.9) wins over a and over inside
    assert mask_overlap(a, inside) == 1.0 and mask_overlap(a, apart) == 0.0


def test_overlap_bound_is_config():
    a, b = _rect(10, 10, 40, 40), _rect(25, 10, 55, 40)  # half of each overlaps
    masks = np.stack([a, b])
    assert subject_rejections(masks, [1.0, 0.5], FilterRules(overlap="score", max_mask_overlap=0.6)) == {}
    assert subject_rejections(masks, [1.0, 0.5], FilterRules(overlap="score", max_mask_overlap=0.4)) == {1: "overlap"}


def test_subject_count():
    rules = FilterRules()
    assert subject_count_reason(2, rules) == "too_few_subjects"
    assert subject_count_reason(3, rules) is None
    assert subject_count_reason(11, rules) == "too_many_subjects"


def test_with_overlap_depth_overlaps_wait_for_depth():
    """The default leaves overlaps to the exclusive-mask step (stages.exclusive), area rules still apply."""
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 0:6, 0:6] = True
    masks[1, 0:6, 0:6] = True  # a duplicate
    assert subject_rejections(masks, [1.0, 0.5], FilterRules()) == {}
    assert subject_rejections(masks, [1.0, 0.5], FilterRules(max_box_area_frac=0.3)) == {0: "box_area_large", 1: "box_area_large"}
