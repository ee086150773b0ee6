"""Exclusive masks once depth is known (stages.exclusive): the routing maps of every finished
sample agree, and the paper's overlap rule stays one flag away."""

import numpy as np
import pytest

from datagen.final.decode import decode_sample
from datagen.final.writer import final_members
from datagen.recipe.conditioning import sample_control
from datagen.recipe.filters import mask_figures
from datagen.recipe.geometry import mask_box_2d


def _with(cfg, **filters):
    cfg = cfg.model_copy(deep=True)
    cfg.run.num_samples = 16
    cfg.run.width = cfg.run.height = 256  # the demo's world, at a quarter of its pixels
    cfg.stages.segment.dilate_px = 3  # masks bleed onto their neighbours, as a segmenter's do
    for name, value in filters.items():
        setattr(cfg.filters, name, value)
    return cfg


def _decoded(cfg, samples):
    out = []
    for s in samples:
        members = {name.split(".", 1)[1]: data for name, data in final_members(s, cfg)}
        out.append(decode_sample(members, s.key))
    return out


def _overlapping_pairs(masks) -> int:
    return sum(np.any(masks[i] & masks[j]) for i in range(len(masks)) for j in range(i + 1, len(masks)))


@pytest.mark.parametrize("dilate", [0, 3])
def test_routing_maps_agree_for_every_demo_sample_in_mask_mode(demo_cfg, through, dilate):
    cfg = _with(demo_cfg)
    cfg.stages.segment.dilate_px = dilate
    segmented = through("segment", cfg=cfg, n=16)
    overlaps = sum(_overlapping_pairs(s.arrays["masks"]) for s in segmented)
    assert (overlaps > 0) == (dilate > 0)  # the bleeding masks do overlap before depth is known
    finished = through("filter", cfg=cfg, n=16)
    assert len(finished) >= 8
    for d in _decoded(cfg, finished):
        control = sample_control(d, "masks")
        np.testing.assert_array_equal(control[..., 0], control[..., 1], err_msg=d["key"])  # I^Rasc == I^Rdsc
        assert _overlapping_pairs(d["masks"]) == 0
        for mask, subject in zip(d["masks"], d["json"]["subjects"], strict=True):
            figures = mask_figures(mask, d["json"]["width"], d["json"]["height"])
            assert subject["box_2d"] == mask_box_2d(mask)
            assert subject["mask_area_frac"] == pytest.approx(figures["mask_area_frac"], abs=1e-6)


def test_masks_are_exclusive_from_the_depth_stage_on_and_describe_themselves(demo_cfg, through):
    cfg = _with(demo_cfg)
    for s in through("depth", cfg=cfg, n=16):
        masks = s.arrays["masks"]
        assert _overlapping_pairs(masks) == 0, s.key
        for mask, subject in zip(masks, s.subjects, strict=True):
            assert subject["box_2d"] == mask_box_2d(mask)
            assert subject["box_area_frac"] >= cfg.filters.min_box_area_frac


def test_a_subject_left_with_too_little_of_its_mask_is_dropped_as_occluded(demo_cfg, through):
    cfg = _with(demo_cfg, min_exclusive_share=0.97)
    dropped = [r for s in through("depth", cfg=cfg, n=16) for r in s.meta.get("rejected_subjects", [])]
    occluded = [r for r in dropped if r["reason"] == "occluded"]
    assert occluded and all(r["stage"] == "depth" for r in occluded)


def test_the_papers_rule_keeps_one_of_two_overlapping_masks(demo_cfg, through):
    """`filters.overlap: score` with `max_mask_overlap: 0`: any overlap drops the lower-scored mask
    at segment, so no overlap is left for depth to resolve."""
    cfg = _with(demo_cfg, overlap="score", max_mask_overlap=0.0)
    segmented = through("segment", cfg=cfg, n=16)
    reasons = [r["reason"] for s in segmented for r in s.meta.get("rejected_subjects", [])]
    assert "overlap" in reasons
    assert all(_overlapping_pairs(s.arrays["masks"]) == 0 for s in segmented)
    default = through("segment", cfg=_with(demo_cfg), n=16)
    assert "overlap" not in [r["reason"] for s in default for r in s.meta.get("rejected_subjects", [])]
