"""The metrics' arithmetic (datagen.eval.scores) against known answers: an output whose subject
crops are the identity images scores 100, depth MSE is 0 when the output's depth equals the
condition (at any metric scale, for the normalised figure), and only subject pixels count."""

from __future__ import annotations

import numpy as np
import pytest

from datagen.eval.scores import crop_box, depth_mse, identity_scores, mean_of_means


def colour_embed(images: list[np.ndarray]) -> np.ndarray:
    """A deterministic stand-in for an image embedder: mean colour and spread per channel."""
    return np.stack([np.concatenate([im.reshape(-1, 3).mean(0), im.reshape(-1, 3).std(0) + 1e-3]) for im in images])


def _scene():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 80, 3), np.uint8)
    a = rng.integers(0, 255, (20, 16, 3), dtype=np.uint8)
    b = rng.integers(0, 255, (10, 30, 3), dtype=np.uint8)
    image[4:24, 6:22] = a
    image[40:50, 40:70] = b
    return image, [[6, 4, 22, 24], [40, 40, 70, 50]], [a, b]


def test_an_output_whose_crops_are_the_identities_scores_100():
    image, boxes, identities = _scene()
    assert identity_scores(colour_embed, image, boxes, identities) == pytest.approx([100.0, 100.0])
    swapped = identity_scores(colour_embed, image, boxes, identities[::-1])
    assert max(swapped) < 100.0


def test_crops_follow_the_box_and_clip_to_the_image():
    image, boxes, identities = _scene()
    np.testing.assert_array_equal(crop_box(image, boxes[0]), identities[0])
    assert crop_box(image, [-10, -5, 5, 3]).shape == (3, 5, 3)
    assert crop_box(image, [79.5, 63.5, 79.5, 63.5]).shape == (1, 1, 3)  # degenerate: one pixel


def test_subjects_then_images_are_averaged():
    assert mean_of_means([[100.0, 50.0], [90.0]]) == pytest.approx((75.0 + 90.0) / 2)
    assert mean_of_means([[], [40.0]]) == 40.0 and mean_of_means([]) is None


def _depth():
    yy, xx = np.mgrid[0:32, 0:40]
    depth = (2.0 + 0.05 * xx + 0.02 * yy).astype(np.float32)
    regions = np.zeros((2, 32, 40), bool)
    regions[0, 2:12, 3:15] = True
    regions[1, 20:30, 22:38] = True
    return depth, regions


def test_depth_mse_is_zero_for_the_conditioning_depth_at_any_scale():
    depth, regions = _depth()
    same = depth_mse(depth, depth, regions)
    assert same.normalised_mse == 0.0 and same.metric_mse == pytest.approx(0.0, abs=1e-12)
    assert same.pixels == int(regions.any(0).sum())
    scaled = depth_mse(depth * 3.0, depth, regions)  # a monocular estimate at another scale
    assert scaled.normalised_mse == pytest.approx(0.0, abs=1e-12) and scaled.metric_mse == pytest.approx(0.0, abs=1e-9)


def test_depth_mse_counts_subject_pixels_only_and_skips_unknown_depth():
    depth, regions = _depth()
    other = depth.copy()
    other[~regions.any(0)] = 50.0  # anything outside the subjects
    assert depth_mse(other, depth, regions).normalised_mse == 0.0
    wrong = depth.copy()
    wrong[regions[1]] = 9.0  # subject 1 flattened far away
    err = depth_mse(wrong, depth, regions)
    assert err.normalised_mse > 0.01 and err.metric_mse > 0.1
    assert err.mse_8bit == pytest.approx(err.normalised_mse * 65025)
    holes = depth.copy()
    holes[regions[0]] = np.nan
    assert depth_mse(holes, depth, regions).pixels == int(regions[1].sum())
    assert depth_mse(np.full_like(depth, np.nan), depth, regions).normalised_mse is None
