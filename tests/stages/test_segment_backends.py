"""The real segment backends' shared post-processing on inputs whose answer is known, and the
transformers backend (Grounding DINO + SAM / SAM 2) on tiny random-weight models."""

from __future__ import annotations

import numpy as np
import pytest

from datagen.recipe.geometry import mask_box_2d
from datagen.recipe.mask_cleanup import clean_mask, drop_islands, fill_holes
from datagen.models.grounding import caption_columns, cxcywh_to_pixels, grounding_text
from datagen.models.perception import Detection, best_detection, grounding_rejections
from datagen.models.tiny.perception import bert_tokenizer
from datagen.store.inflight import Rejected, Sample
from datagen.stages.segment import SegmentStage


# --- mask clean-up ----------------------------------------------------------------------------


def _square(shape=(40, 40), box=(10, 10, 30, 30)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


def test_specks_go_and_the_tight_box_follows_the_subject():
    mask = _square()
    mask[0, 39] = mask[2, 2] = True  # two stray pixels stretch the tight box to the corners
    assert mask_box_2d(mask) == [2, 0, 40, 30]
    cleaned = drop_islands(mask, 0.05)
    assert mask_box_2d(cleaned) == [10, 10, 30, 30]
    # A second real piece (half the size) is kept: min_island_frac is relative to the largest.
    two = _square() | _square(box=(32, 0, 40, 20))
    np.testing.assert_array_equal(drop_islands(two, 0.05), two)


def test_small_holes_fill_large_holes_and_the_outside_stay():
    mask = _square()
    mask[15, 15] = mask[20, 21] = False  # pin holes
    mask[14:28, 24:28] = False  # a real opening: 56 px of a 400 px subject, touching nothing
    mask[10:12, 10:30] = False  # a notch open to the outside: not a hole
    filled = fill_holes(mask, 0.01)  # holes below 1% of the mask's area (~3 px)
    assert filled[15, 15] and filled[20, 21]
    assert not filled[14:28, 24:28].any() and not filled[10:12].any()
    assert fill_holes(mask, 0.5)[14:28, 24:28].all()  # with a generous bound it fills too


def test_clean_mask_of_an_empty_mask_is_empty():
    assert not clean_mask(np.zeros((8, 8), bool), 0.01, 0.05).any()


# --- choosing a caption's box -------------------------------------------------------------------


def test_best_detection_takes_the_best_box_that_passes_both_thresholds():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 2, 2]], dtype=float)
    probs = np.array([[0.50, 0.10, 0.10], [0.45, 0.40, 0.30], [0.90, 0.05, 0.05]])
    d = best_detection(probs, boxes, box_threshold=0.4, text_threshold=0.3)
    assert d == Detection((1.0, 1.0, 2.0, 2.0), 0.9, pytest.approx(1 / 3))
    # Raise the text bar: query 2's phrase is then one token of three, still not empty.
    assert best_detection(probs, boxes, 0.4, 0.85).box == (1.0, 1.0, 2.0, 2.0)
    assert best_detection(probs, boxes, 0.95, 0.3) is None  # nothing reaches the box threshold
    assert best_detection(probs[:, :0], boxes, 0.1, 0.1) is None  # a caption with no tokens


def test_unground_and_same_object_captions_are_dropped_keeping_the_higher_score():
    a = Detection((0, 0, 10, 10), 0.6, 1.0)
    b = Detection((0, 0, 10, 9.5), 0.8, 1.0)  # the same object, grounded by another caption
    c = Detection((20, 20, 30, 30), 0.5, 1.0)
    assert grounding_rejections([a, None, b, c], same_object_iou=0.8) == {1: "not_grounded", 0: "same_object"}
    assert grounding_rejections([a, b], same_object_iou=0.99) == {}


def test_caption_columns_are_the_captions_own_tokens():
    tok = bert_tokenizer()
    caption = "A Red ceramic Teapot."
    text = grounding_text(caption)
    assert text == "a red ceramic teapot ."
    ids = tok(text)["input_ids"]
    cols = caption_columns(tok, caption, 256)
    assert tok.convert_ids_to_tokens([ids[c] for c in cols]) == ["a", "red", "ceramic", "teapot"]
    assert tok.convert_ids_to_tokens([ids[0], ids[cols[-1] + 1], ids[cols[-1] + 2]]) == ["[CLS]", ".", "[SEP]"]


def test_the_tiny_bert_vocabulary_has_every_id_below_its_size():
    """The tiny Grounding DINO's embedding table is len(tok) rows: an id at len(tok) (the last
    piece, once "a" sat in the vocabulary twice) crashed captions like "thing19"."""
    tok = bert_tokenizer()
    ids = tok("thing19 number 9 a cube")["input_ids"]
    assert max(ids) < len(tok) and sorted(tok.get_vocab().values()) == list(range(len(tok)))


def test_normalised_centre_boxes_become_clipped_pixel_corners():
    boxes = cxcywh_to_pixels(np.array([[0.5, 0.5, 0.5, 0.25], [0.95, 0.1, 0.2, 0.4]]), width=200, height=100)
    np.testing.assert_allclose(boxes, [[50, 37.5, 150, 62.5], [170, 0, 200, 30]])


# --- the stage's post-processing with known model outputs -------------------------------------


class TruthGrounder:
    """A Grounder answering from the procedural truth: the true box of each subject, except
    for `missing` captions; caption `copies_of` -> subject whose box it grounds instead."""

    def __init__(self, samples, missing=(), copies_of=None):
        self.truth = {s.key: s for s in samples}
        self.missing, self.copies_of = set(missing), copies_of or {}

    def detect(self, images, captions):
        out = []
        for (key, s), caps in zip(self.truth.items(), captions, strict=True):
            inst = s.arrays["truth_instance"]
            row = []
            for i, subj in enumerate(s.subjects):
                if i in self.missing:
                    row.append(None)
                    continue
                src = s.subjects[self.copies_of.get(i, i)]
                box = mask_box_2d(inst == src["sid"] + 1)
                row.append(Detection(tuple(float(v) for v in box), 0.9 - 0.1 * i, 1.0))
            out.append(row)
        return out


class SpeckledSegmenter:
    """SAM's answer as the true mask inside each box, with a speck and a pin hole added."""

    def __init__(self, samples):
        self.samples = samples

    def segment(self, images, boxes):
        out = []
        for s, image, bxs in zip(self.samples, images, boxes, strict=True):
            inst = s.arrays["truth_instance"]
            masks = []
            for b in bxs:
                x0, y0, x1, y1 = (int(round(v)) for v in b)
                ids, counts = np.unique(inst[y0:y1, x0:x1], return_counts=True)
                ids, counts = ids[ids > 0], counts[ids > 0]
                m = inst == ids[np.argmax(counts)]
                noisy = m.copy()
                noisy[0, 0] = True  # a speck in the corner
                r, c = np.argwhere(m)[len(np.argwhere(m)) // 2]
                noisy[r, c] = False  # a pin hole (filled back, unless on the edge)
                masks.append(noisy)
            out.append((np.array(masks, dtype=bool).reshape(-1, *image.shape[:2]), np.full(len(bxs), 0.7, np.float32)))
        return out


@pytest.fixture
def segment_input(small_cfg, through):
    return through("t2i", n=4)


def _stage(cfg, samples, **kw):
    cfg = cfg.model_copy(deep=True)
    cfg.stages.segment.backend = "transformers"
    cfg.filters.min_subjects = 1
    stage = SegmentStage(cfg)
    stage.grounder, stage.segmenter = TruthGrounder(samples, **kw), SpeckledSegmenter(samples)
    return stage


def test_model_masks_are_cleaned_and_scored(small_cfg, segment_input):
    stage = _stage(small_cfg, segment_input)
    for s in stage.process_batch(segment_input):
        assert isinstance(s, Sample)
        for subj, mask in zip(s.subjects, s.arrays["masks"], strict=True):
            true = s.arrays["truth_instance"] == subj["sid"] + 1
            assert mask[0, 0] == true[0, 0]  # the corner speck is gone (unless it is the subject)
            assert subj["box_2d"] == mask_box_2d(mask)
            assert subj["segment"]["mask_score"] == pytest.approx(0.7)
            assert subj["score"] == pytest.approx(subj["segment"]["detection_score"], abs=1e-6)


def test_tight_box_equals_the_true_masks_box(small_cfg, segment_input):
    stage = _stage(small_cfg, segment_input)
    sids = {s.key: {subj["sid"]: s.arrays["truth_instance"] == subj["sid"] + 1 for subj in s.subjects} for s in segment_input}
    for s in stage.process_batch(segment_input):
        for subj in s.subjects:
            true = sids[s.key][subj["sid"]]
            if true[0, 0]:
                continue  # the speck landed on the subject itself
            # Small pieces of an occluded subject go with the specks.
            c = stage.cfg
            assert subj["box_2d"] == mask_box_2d(clean_mask(true, c.fill_holes_frac, c.min_island_frac))


def test_missing_and_duplicate_captions_are_dropped_with_their_reason(small_cfg, segment_input):
    names = [[subj["name"] for subj in s.subjects] for s in segment_input]
    stage = _stage(small_cfg, segment_input, missing={0}, copies_of={2: 1})
    out = stage.process_batch(segment_input)
    for s, before in zip(out, names, strict=True):
        reasons = {r["name"]: r["reason"] for r in s.meta["rejected_subjects"]}
        assert reasons[before[0]] == "not_grounded"
        # Subject 2's caption grounded subject 1's object with a lower score: 2 goes, 1 stays.
        assert reasons[before[2]] == "same_object"
        assert before[1] in [subj["name"] for subj in s.subjects]


def test_with_filters_last_the_segment_stage_only_marks(small_cfg, segment_input):
    cfg = small_cfg.model_copy(deep=True)
    cfg.filters.apply = "last"
    counts = [len(s.subjects) for s in segment_input]
    stage = _stage(cfg, segment_input, missing={0})
    for s, count in zip(stage.process_batch(segment_input), counts, strict=True):
        assert len(s.subjects) == count
        assert s.subjects[0]["pending_rejection"] == "not_grounded" and s.subjects[0]["box_2d"] is None


# --- the transformers backend on tiny models -------------------------------------------------


@pytest.fixture(scope="module")
def perception_models(tmp_path_factory):
    from datagen.models.tiny import perception as tp

    root = tmp_path_factory.mktemp("tiny-perception")
    for model_id, build in [(tp.GROUNDING_DINO, tp.build_grounding_dino), (tp.SAM, tp.build_sam), (tp.SAM2, tp.build_sam2)]:
        (root / model_id).mkdir(parents=True)
        build(root / model_id)
    return root


def _real_stage(small_cfg, models, **segment):
    cfg = small_cfg.model_copy(deep=True)
    cfg.models_dir = str(models)
    for k, v in {"backend": "transformers", "dtype": "float32", "box_threshold": 0.0, "text_threshold": 0.0, **segment}.items():
        setattr(cfg.stages.segment, k, v)
    cfg.filters.min_subjects, cfg.filters.min_box_area_frac, cfg.filters.max_box_area_frac = 1, 0.0, 1.0
    stage = SegmentStage(cfg)
    stage.setup()
    return stage


@pytest.mark.parametrize("sam_version,sam_model", [("sam", "facebook/sam-vit-huge"), ("sam2", "facebook/sam2.1-hiera-large")])
def test_tiny_grounding_dino_and_sam_run_through_the_stage(small_cfg, perception_models, segment_input, sam_version, sam_model):
    stage = _real_stage(small_cfg, perception_models, sam_version=sam_version, sam_model=sam_model)
    assert type(stage.segmenter.model).__name__ == ("Sam2Model" if sam_version == "sam2" else "SamModel")
    out = stage.process_batch(segment_input)
    assert len(out) == len(segment_input)
    kept = [s for s in out if isinstance(s, Sample)]
    assert kept
    for s in kept:
        masks = s.arrays["masks"]
        assert masks.dtype == bool and masks.shape == (len(s.subjects), 128, 128)
        for subj, mask in zip(s.subjects, masks, strict=True):
            assert subj["box_2d"] == mask_box_2d(mask)
            seg = subj["segment"]
            assert 0 <= seg["detection_score"] <= 1 and 0 < seg["phrase_frac"] <= 1 and "mask_score" in seg
            assert len(seg["detector_box"]) == 4
    settings = stage.generation_settings()
    assert settings["detector_model"] == "IDEA-Research/grounding-dino-base" and settings["sam_version"] == sam_version


def test_each_caption_is_grounded_alone(small_cfg, perception_models, segment_input):
    """One caption per pass: a caption's box does not depend on the other captions of its
    image, nor on the other pairs of the batch."""
    stage = _real_stage(small_cfg, perception_models, captions_per_pass=16)
    images = [s.arrays["image"] for s in segment_input[:2]]
    captions = [[subj["caption"] for subj in s.subjects] for s in segment_input[:2]]
    together = stage.grounder.detect(images, captions)
    for i, (image, caps) in enumerate(zip(images, captions, strict=True)):
        for j, caption in enumerate(caps):
            alone = stage.grounder.detect([image], [[caption]])[0][0]
            np.testing.assert_allclose(alone.box, together[i][j].box, atol=1e-3)
            assert alone.score == pytest.approx(together[i][j].score, abs=1e-4)


def test_box_threshold_drops_the_weaker_captions(small_cfg, perception_models, segment_input):
    images = [s.arrays["image"] for s in segment_input]
    captions = [[subj["caption"] for subj in s.subjects] for s in segment_input]
    loose = _real_stage(small_cfg, perception_models)
    scores = sorted(d.score for row in loose.grounder.detect(images, captions) for d in row)
    bar = scores[len(scores) // 2]
    assert scores[0] < bar  # random weights still rank the captions
    strict = _real_stage(small_cfg, perception_models, box_threshold=bar)
    found = strict.grounder.detect(images, captions)
    for row, loose_row in zip(found, loose.grounder.detect(images, captions), strict=True):
        for d, ld in zip(row, loose_row, strict=True):
            assert (d is None) == (ld.score < bar)


def test_segmenter_with_no_boxes_returns_empty_masks(small_cfg, perception_models, segment_input):
    stage = _real_stage(small_cfg, perception_models)
    image = segment_input[0].arrays["image"]
    (masks, scores), = stage.segmenter.segment([image], [np.zeros((0, 4))])
    assert masks.shape == (0, *image.shape[:2]) and scores.shape == (0,)


def test_a_missing_sam2_class_or_model_is_one_line(small_cfg, perception_models, tmp_path):
    from datagen.errors import UserError

    with pytest.raises(UserError, match=r"stages.segment: cannot load model 'no/such-model'"):
        _real_stage(small_cfg, tmp_path, detector_model="no/such-model")


@pytest.mark.parametrize("sam_version,sam_model", [("sam", "facebook/sam-vit-huge"), ("sam2", "facebook/sam2.1-hiera-large")])
def test_masks_do_not_depend_on_the_batch(small_cfg, perception_models, segment_input, sam_version, sam_model):
    """Images with different box counts share one encoder pass; each image's masks are what it
    gets alone."""
    stage = _real_stage(small_cfg, perception_models, sam_version=sam_version, sam_model=sam_model)
    images = [s.arrays["image"] for s in segment_input[:3]]
    boxes = [np.array([[4, 4, 60, 70], [50, 20, 120, 90]], float), np.zeros((0, 4)), np.array([[10, 30, 100, 110]], float)]
    together = stage.segmenter.segment(images, boxes)
    assert [m.shape[0] for m, _ in together] == [2, 0, 1]
    for image, b, (masks, scores) in zip(images, boxes, together, strict=True):
        (alone_masks, alone_scores), = stage.segmenter.segment([image], [b])
        assert alone_masks.shape == masks.shape and np.count_nonzero(alone_masks != masks) <= 1e-3 * masks.size
        np.testing.assert_allclose(alone_scores, scores, atol=1e-4)
