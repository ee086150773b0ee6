"""idcheck: identity images compared with their subject's crop; lost and copied identities go."""

from __future__ import annotations

import numpy as np
import pytest

from datagen.recipe.colour_similarity import foreground, histogram_similarity
from datagen.recipe.identity_input import identity_input
from datagen.models.dinov2 import cosine_pairs
from datagen.store.inflight import Rejected, Sample
from datagen.stages.idcheck import IdcheckStage


def _subject_image():
    image = np.full((64, 64, 3), 90, np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 20:44] = True
    image[16:32, 20:44] = (200, 30, 30)  # a red top
    image[32:48, 20:44] = (30, 30, 200)  # a blue bottom
    return image, mask


def test_histogram_similarity_tells_a_kept_subject_from_a_lost_one():
    image, mask = _subject_image()
    same = identity_input(image, mask, [20, 16, 44, 48], 48, 0.8, 200)
    assert histogram_similarity(image, mask, same) > 0.9
    other = np.full((48, 48, 3), 200, np.uint8)
    other[10:38, 10:38] = (30, 200, 30)  # a green object
    assert histogram_similarity(image, mask, other) < 0.1
    blank = np.full((48, 48, 3), 200, np.uint8)  # the edit returned the background only
    assert not foreground(blank).any() and histogram_similarity(image, mask, blank) == 0.0


def test_cosine_pairs():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    np.testing.assert_allclose(cosine_pairs(a, b), [1.0, -1.0, 0.0])


def test_every_identity_is_scored_and_the_bounds_drop_subjects(small_cfg, through):
    kept = through("idcheck")
    assert kept
    for s in kept:
        sims = [subj["idcheck"]["similarity"] for subj in s.subjects]
        assert all(small_cfg.stages.idcheck.min_similarity <= v <= 1.0 for v in sims)
    cfg = small_cfg.model_copy(deep=True)
    cfg.stages.idcheck.min_similarity = 0.99  # nothing re-posed is that close
    strict = through("idcheck", cfg=cfg)
    assert len(strict) < len(kept)


def test_a_sample_left_with_too_few_subjects_is_rejected(small_cfg, through):
    samples = through("repose", n=3)
    cfg = small_cfg.model_copy(deep=True)
    cfg.stages.idcheck.min_similarity = 1.0
    out = IdcheckStage(cfg).process_batch(samples)
    assert all(isinstance(r, Rejected) and r.reason == "too_few_subjects" for r in out)


def test_with_filters_last_idcheck_only_marks(small_cfg, through):
    samples = through("repose", n=2)
    counts = [len(s.subjects) for s in samples]
    cfg = small_cfg.model_copy(deep=True)
    cfg.filters.apply = "last"
    cfg.stages.idcheck.min_similarity = 1.0
    out = IdcheckStage(cfg).process_batch(samples)
    for s, n in zip(out, counts, strict=True):
        assert isinstance(s, Sample) and len(s.subjects) == n
        assert all(subj["pending_rejection"] == "identity_lost" for subj in s.subjects)


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory):
    from datagen.models.tiny.perception import DINOV2, build_dinov2

    root = tmp_path_factory.mktemp("tiny-dinov2")
    (root / DINOV2).mkdir(parents=True)
    build_dinov2(root / DINOV2)
    return root


def _dino_stage(small_cfg, models, **kw):
    cfg = small_cfg.model_copy(deep=True)
    cfg.models_dir = str(models)
    cfg.stages.idcheck = type(cfg.stages.idcheck)(backend="transformers", dtype="float32", **kw)
    cfg.filters.min_subjects = 1
    stage = IdcheckStage(cfg)
    stage.setup()
    return stage


def test_dinov2_scores_a_copy_as_a_copy(small_cfg, through, tiny_dinov2):
    """An 'edit' that returns its input unchanged has cosine 1 with it: dropped as a copy."""
    stage = _dino_stage(small_cfg, tiny_dinov2)
    assert (stage.cfg.min_similarity, stage.cfg.max_similarity) == (0.4, 0.97)
    samples = through("repose", n=2)
    repose = small_cfg.stages.repose
    for s in samples:
        size = s.arrays["identity"].shape[1]
        copies = [
            identity_input(s.arrays["image"], m, subj["box_2d"], size, repose.subject_fill, repose.background_grey)
            for subj, m in zip(s.subjects, s.arrays["masks"], strict=True)
        ]
        s.set_array("identity", np.stack(copies))
    out = stage.process_batch(samples)
    assert all(isinstance(r, Rejected) and r.reason == "too_few_subjects" for r in out)
    for s in samples:
        assert {r["reason"] for r in s.meta["rejected_subjects"] if r["stage"] == "idcheck"} == {"identity_copy"}


def test_dinov2_embeddings_do_not_depend_on_the_batch(small_cfg, through, tiny_dinov2):
    stage = _dino_stage(small_cfg, tiny_dinov2)
    images = [s.arrays["image"] for s in through("t2i", n=3)]
    together = stage.embedder.embed(images)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    for i, image in enumerate(images):
        np.testing.assert_allclose(stage.embedder.embed([image])[0], together[i], atol=1e-5)
    assert stage.generation_settings()["model"] == "facebook/dinov2-base"
