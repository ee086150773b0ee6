"""t2i (FLUX.1 [dev] through AutoPipelineForText2Image) and repose (FLUX.1 Kontext) on tiny
random-weight pipelines, loaded by their real ids from models_dir."""

from __future__ import annotations

import numpy as np
import pytest

from datagen.errors import UserError
from datagen.recipe.identity_input import identity_input
from datagen.store.inflight import Sample
from datagen.seeds import sample_seed
from datagen.pipeline.preflight import build_stage


def prompted(cfg, n: int = 3) -> list[Sample]:
    stage = build_stage("prompts", cfg)
    stage.setup()
    # The tiny random-weight Qwen3 fails validation often: ask for enough that n survive.
    out = [s for s in stage.process_batch([Sample(index=i, shard=0, seed=sample_seed(0, i)) for i in range(3 * n + 3)]) if isinstance(s, Sample)]
    assert len(out) >= n
    return out[:n]


def clone(samples):
    import copy

    return copy.deepcopy(samples)


def run_t2i(cfg, samples):
    stage = build_stage("t2i", cfg)
    stage.setup()
    return stage, stage.process_batch(samples)


def test_t2i_shapes_seeds_and_batching(tiny_cfg):
    tiny_cfg = tiny_cfg.model_copy(deep=True)
    tiny_cfg.stages.prompts.layout = "procedural"  # a layout too: t2i keeps its truth render
    samples = prompted(tiny_cfg)
    stage, out = run_t2i(tiny_cfg, clone(samples))
    assert type(stage.pipe).__name__ == "FluxPipeline"
    images = [s.arrays["image"] for s in out]
    for s, im in zip(out, images, strict=True):
        assert im.shape == (64, 64, 3) and im.dtype == np.uint8
        assert (s.meta["width"], s.meta["height"]) == (64, 64)
        assert s.arrays["truth_instance"].shape == (64, 64)  # the layout's truth, for oracle stages
    assert len({im.tobytes() for im in images}) == len(images)  # a seed per sample
    # Same seed, same image; one by one equals the batch (float noise at most 1 level).
    for s, im in zip(samples, images, strict=True):
        _, (alone,) = run_t2i(tiny_cfg, clone([s]))
        assert np.abs(alone.arrays["image"].astype(int) - im.astype(int)).max() <= 1
    settings = stage.generation_settings()
    assert settings["model"] == "black-forest-labs/FLUX.1-dev" and settings["pipeline"] == "FluxPipeline"
    assert settings["steps"] == tiny_cfg.stages.t2i.steps and settings["dtype"] == "float32"


def test_identity_input_cuts_with_the_mask_pads_square_and_centres():
    image = np.zeros((40, 60, 3), np.uint8)
    image[...] = (255, 0, 0)
    mask = np.zeros((40, 60), bool)
    mask[10:30, 5:45] = True  # 40 wide, 20 high
    mask[10, 5] = False  # a pixel of the box outside the mask stays grey
    out = identity_input(image, mask, [5, 10, 45, 30], size=32, fill=0.5, grey=128)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    red = (out[..., 0] > 200) & (out[..., 1] < 60)
    ys, xs = np.nonzero(red)
    assert xs.max() - xs.min() + 1 == pytest.approx(16, abs=1)  # longer side = fill * size
    assert ys.max() - ys.min() + 1 == pytest.approx(8, abs=1)
    assert abs((xs.min() + xs.max()) / 2 - 15.5) <= 1 and abs((ys.min() + ys.max()) / 2 - 15.5) <= 1
    assert tuple(out[0, 0]) == (128, 128, 128)


def through_segment(cfg):
    # Random-weight masks are specks that may overlap anywhere: keep them all (no 'occluded'
    # drop), so repose has subjects to work on whatever the tiny detector's draw.
    cfg = cfg.model_copy(deep=True)
    f = cfg.filters
    f.overlap, f.max_mask_overlap, f.min_exclusive_share, f.min_subjects = "score", 1.0, 0.0, 1
    samples = prompted(cfg)
    _, samples = run_t2i(cfg, samples)
    for name in ("segment", "depth", "boxes"):
        stage = build_stage(name, cfg)
        stage.setup()
        samples = [s for s in stage.process_batch(samples) if isinstance(s, Sample)]
    return samples


def run_repose(cfg, samples):
    stage = build_stage("repose", cfg)
    stage.setup()
    return stage, stage.process_batch(samples)


def test_repose_shapes_seeds_and_batching_across_samples(tiny_cfg):
    samples = through_segment(tiny_cfg)
    assert sum(len(s.subjects) for s in samples) >= 2, "nothing to repose"
    size = tiny_cfg.stages.repose.identity_size
    stage, out = run_repose(tiny_cfg, clone(samples))
    assert type(stage.pipe).__name__ == "FluxKontextPipeline"
    for s in out:
        ids = s.arrays["identity"]
        assert ids.shape == (len(s.subjects), size, size, 3) and ids.dtype == np.uint8
        assert all(subj["identity"] == {"width": size, "height": size} for subj in s.subjects)
    # Subjects of several samples in one call equal one subject per call.
    one = tiny_cfg.model_copy(deep=True)
    one.stages.repose.subjects_per_call = 1
    _, single = run_repose(one, clone(samples))
    for a, b in zip(out, single, strict=True):
        assert np.abs(a.arrays["identity"].astype(int) - b.arrays["identity"].astype(int)).max() <= 1
    # The instruction names the subject and comes from the templates.
    first = next(s for s in samples if s.subjects)  # the tiny detector may leave a sample none
    text, seed = stage.instruction(first, first.subjects[0])
    assert first.subjects[0]["name"] in text
    assert stage.instruction(first, first.subjects[0]) == (text, seed)


def test_repose_refuses_a_pipeline_that_is_not_kontext(tiny_cfg):
    cfg = tiny_cfg.model_copy(deep=True)
    cfg.stages.repose.model = "black-forest-labs/FLUX.1-dev"
    with pytest.raises(UserError, match="not a FLUX.1 Kontext pipeline"):
        build_stage("repose", cfg).setup()


def test_unknown_model_is_one_line_naming_stage_and_id(tiny_cfg, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = tiny_cfg.model_copy(deep=True)
    cfg.stages.t2i.model = "nobody/not-a-pipeline"
    with pytest.raises(UserError) as e:
        build_stage("t2i", cfg).setup()
    assert "\n" not in str(e.value) and str(e.value).startswith("stages.t2i: cannot load model 'nobody/not-a-pipeline'")


def test_repose_repairs_with_the_dinov2_check(tiny_cfg):
    """retries on the real backends: Kontext edits again what tiny DINOv2 rejects (here every
    subject: the bound is above any cosine), with the next template and a new seed."""
    cfg = tiny_cfg.model_copy(deep=True)
    cfg.stages.prompts = cfg.stages.prompts.with_backend("procedural")  # the subjects matter here, not their words
    samples = through_segment(cfg)
    assert sum(len(s.subjects) for s in samples) >= 1, "nothing to repose"
    once = tiny_cfg.model_copy(deep=True)
    once.stages.repose.retries = 0
    _, first = run_repose(once, clone(samples))
    again = tiny_cfg.model_copy(deep=True)
    again.stages.repose.retries = 1
    again.stages.idcheck.min_similarity = again.stages.idcheck.max_similarity = 1.0
    stage, second = run_repose(again, clone(samples))
    assert type(stage.checker.embedder).__name__ == "DinoEmbedder"
    for a, b in zip(first, second, strict=True):
        assert all(x["repose"]["attempts"] == 1 for x in a.subjects)
        assert all(x["repose"]["attempts"] == 2 for x in b.subjects)
        for i in range(len(b.subjects)):
            assert not np.array_equal(a.arrays["identity"][i], b.arrays["identity"][i])
