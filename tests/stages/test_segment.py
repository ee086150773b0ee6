import numpy as np

from datagen.recipe.geometry import mask_box_2d


def test_masks_boxes_and_filters(small_cfg, through):
    rules = small_cfg.filters
    for s in through("segment"):
        masks = s.arrays["masks"]
        assert masks.dtype == bool and masks.shape[0] == len(s.subjects) >= rules.min_subjects
        for subj, mask in zip(s.subjects, masks):
            assert subj["box_2d"] == mask_box_2d(mask)
            assert rules.min_box_area_frac <= subj["box_area_frac"] <= rules.max_box_area_frac
            assert 0 < subj["mask_area_frac"] <= subj["box_area_frac"]
        # Oracle masks come from instance ids: one per subject, disjoint.
        assert masks.sum(axis=0).max() <= 1
        inst = s.arrays["truth_instance"]
        for subj, mask in zip(s.subjects, masks):
            np.testing.assert_array_equal(mask, inst == subj["sid"] + 1)


def test_a_strict_area_bound_rejects_samples(small_cfg, through):
    cfg = small_cfg.model_copy(deep=True)
    cfg.filters.min_box_area_frac = 0.3
    kept = through("segment", cfg=cfg)
    assert len(kept) < len(through("segment"))
