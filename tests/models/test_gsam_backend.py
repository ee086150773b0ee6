"""The gsam segment backend (groundingdino-py + segment-anything) on a tiny random-weight stack
built from the real classes, loaded through `load_gsam` as real checkpoints are."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from datagen.config import SegmentConfig
from datagen.errors import UserError
from datagen.models import bert_compat
from datagen.models.grounding import cxcywh_to_pixels
from datagen.models.gsam import (
    GSAMGrounder,
    caption_passes,
    caption_token_columns,
    gsam_problem,
    load_gsam,
    load_sam,
    read_weights,
    resolve_file,
)
from datagen.models.perception import Detection, best_detection
from datagen.models.tiny.gsam import SAM_ENCODER, build_tiny_gsam

TINY = "gsam/tiny"
MIN32 = torch.finfo(torch.float32).min


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("models")
    build_tiny_gsam(root / TINY)
    return str(root)


def gsam_cfg(**over) -> SegmentConfig:
    gsam = {
        "config_file": f"{TINY}/GroundingDINO_tiny.py",
        "checkpoint": f"{TINY}/groundingdino_tiny.pth",
        "text_encoder": f"{TINY}/bert",
        "sam_checkpoint": f"{TINY}/sam_tiny.pth",
        "sam_encoder": SAM_ENCODER,
        "image_size": 224,  # the tiny stack's Swin-T costs seconds a pair at the real 800
        "max_image_size": 400,
        **over.pop("gsam", {}),
    }
    # Thresholds 0: a random model still grounds every caption, so shapes can be checked.
    data = {"backend": "gsam", "device": "cpu", "box_threshold": 0.0, "text_threshold": 0.0, "captions_per_pass": 2, "gsam": gsam}
    return SegmentConfig.model_validate({**data, **over})


@pytest.fixture(scope="module")
def stack(models_dir):
    return load_gsam(gsam_cfg(), models_dir, "cpu")


def scene(width: int, height: int) -> np.ndarray:
    im = Image.new("RGB", (width, height), (230, 230, 230))
    d = ImageDraw.Draw(im)
    d.rectangle([6, 8, 30, 28], fill=(220, 30, 30))
    d.ellipse([34, 30, 58, 56], fill=(30, 180, 40))
    return np.asarray(im)


# --- the transformers-5 shim ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bert():
    from transformers import BertConfig, BertModel

    bert_compat.apply()
    small = {"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 8}
    return BertModel(BertConfig(**small)), BertModel(BertConfig(**small, is_decoder=True))


def test_shim_applies_once():
    bert_compat.apply()
    assert bert_compat.apply() == []  # idempotent
    from transformers import BertModel

    for name in bert_compat.HELPERS:
        assert callable(getattr(BertModel, name))


def test_extended_attention_mask_by_hand(bert):
    encoder, decoder = bert
    mask = torch.tensor([[1, 1, 0]])
    got = encoder.get_extended_attention_mask(mask, (1, 3), torch.device("cpu"))
    assert got.shape == (1, 1, 1, 3) and got.dtype == torch.float32
    assert got.flatten().tolist() == [0.0, 0.0, MIN32]
    # groundingdino's case: a 3D (batch, from, to) mask between sub-sentences.
    mask3 = torch.tensor([[[1, 0], [1, 1]]])
    got3 = encoder.get_extended_attention_mask(mask3, (1, 2))
    assert got3.shape == (1, 1, 2, 2) and got3[0, 0].tolist() == [[0.0, MIN32], [0.0, 0.0]]
    # A decoder adds the causal mask: token i sees tokens <= i, and never the padded last one.
    causal = decoder.get_extended_attention_mask(torch.tensor([[1, 1, 0]]), (1, 3))
    assert causal[0, 0].tolist() == [[0.0, MIN32, MIN32], [0.0, 0.0, MIN32], [0.0, 0.0, MIN32]]
    half = encoder.get_extended_attention_mask(mask, (1, 3), dtype=torch.float16)
    assert half.dtype == torch.float16 and half.flatten()[2] == torch.finfo(torch.float16).min
    with pytest.raises(ValueError):
        encoder.get_extended_attention_mask(torch.ones(1, 1, 1, 3), (1, 3))


def test_invert_attention_mask_by_hand(bert):
    encoder, _ = bert
    assert encoder.invert_attention_mask(torch.tensor([[1, 0]])).tolist() == [[[[0.0, MIN32]]]]
    got = encoder.invert_attention_mask(torch.tensor([[[0, 1]]]))
    assert got.shape == (1, 1, 1, 2) and got.flatten().tolist() == [MIN32, 0.0]


def test_head_mask_by_hand(bert):
    encoder, _ = bert
    assert encoder.get_head_mask(None, 3) == [None, None, None]
    per_head = encoder.get_head_mask(torch.tensor([1.0, 0.0]), 3)
    assert per_head.shape == (3, 1, 2, 1, 1) and per_head[:, 0, :, 0, 0].tolist() == [[1.0, 0.0]] * 3
    per_layer = encoder.get_head_mask(torch.tensor([[1, 0], [0, 1], [1, 1]]), 3)
    assert per_layer.dtype == torch.float32 and per_layer[:, 0, :, 0, 0].tolist() == [[1, 0], [0, 1], [1, 1]]
    assert encoder.get_head_mask(torch.ones(2), 3, is_attention_chunked=True).shape == (3, 1, 2, 1, 1, 1)


def test_the_warper_gives_berts_own_output_on_the_installed_transformers(bert):
    """groundingdino's hand-driven BERT (embeddings, masks, encoder) equals BertModel's forward."""
    from groundingdino.models.GroundingDINO.bertwarper import BertModelWarper

    encoder, _ = bert
    encoder.eval()
    ids = torch.tensor([[1, 4, 5, 2, 0], [1, 7, 2, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        want = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        got = BertModelWarper(encoder)(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got, want)


class _OldEmbeddings:  # transformers 4 and 5 before 5.24
    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, past_key_values_length=0):
        return ("old", past_key_values_length)


class _RenamedEmbeddings:  # transformers 5.24
    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, cache_length=0):
        return ("renamed", input_ids, cache_length)


class _UnknownEmbeddings:
    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, offset=0):
        return None


class _StrictEncoder:
    def forward(self, hidden_states, attention_mask=None, use_cache=None):
        return hidden_states


def test_embeddings_take_the_warpers_keyword_on_both_signatures():
    from datagen.models.bert_compat import adapt_embeddings, embeddings_keyword

    assert embeddings_keyword(_OldEmbeddings) is None
    assert adapt_embeddings(_OldEmbeddings) is False  # left alone
    assert embeddings_keyword(_RenamedEmbeddings) == "cache_length"
    assert adapt_embeddings(_RenamedEmbeddings) is True
    assert adapt_embeddings(_RenamedEmbeddings) is False  # once
    call = _RenamedEmbeddings().forward(input_ids="ids", past_key_values_length=3)
    assert call == ("renamed", "ids", 3)
    assert _RenamedEmbeddings().forward(input_ids="ids", cache_length=2) == ("renamed", "ids", 2)
    from transformers.models.bert.modeling_bert import BertEmbeddings

    bert_compat.apply()
    assert embeddings_keyword(BertEmbeddings) is None or getattr(BertEmbeddings.forward, bert_compat.ADAPTED)


def test_an_unknown_shape_of_transformers_is_one_line_naming_its_version():
    from importlib.metadata import version

    from datagen.models.bert_compat import adapt_embeddings, check_encoder
    from datagen.models.third_party import IncompatibleDependency

    for shape, call in ((_UnknownEmbeddings, adapt_embeddings), (_StrictEncoder, check_encoder)):
        with pytest.raises(IncompatibleDependency) as e:
            call(shape)
        msg = str(e.value)
        assert "\n" not in msg and f"transformers {version('transformers')} " in msg, msg
        assert "pip install 'datagen[gsam]'" in msg and shape.__name__ in msg


# --- pure pieces ---------------------------------------------------------------------------


def test_caption_token_columns_by_hand():
    cls, sep, dot, q, pad = 101, 102, 1012, 1029, 0
    ids = np.array([[cls, 7, 8, dot, sep, pad], [cls, 9, dot, 5, dot, sep]])
    mask = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    # Row 2 has a '.' inside the caption ("st. bernard"): a delimiter for groundingdino, not a word.
    assert caption_token_columns(ids, mask, [cls, sep, dot, q]) == [[1, 2], [1, 3]]


def test_caption_columns_with_the_tiny_tokenizer(stack):
    tok = stack[0].model.tokenizer
    enc = tok(["a red square .", "a cat ."], padding="longest", return_tensors="np")
    cols = caption_token_columns(enc["input_ids"], enc["attention_mask"], stack[0].model.specical_tokens)
    words = [tok.convert_ids_to_tokens(enc["input_ids"][r][c].tolist()) for r, c in enumerate(cols)]
    assert words == [tok.tokenize("a red square"), tok.tokenize("a cat")]


def test_box_conversion_by_hand():
    got = cxcywh_to_pixels(np.array([[0.5, 0.5, 0.5, 0.25], [0.1, 0.9, 0.4, 0.4]]), 100, 40)
    assert got.tolist() == [[25.0, 15.0, 75.0, 25.0], [0.0, 28.0, 30.0, 40.0]]  # the second clipped


def test_caption_passes_one_caption_per_pair_and_one_shape_per_pass():
    shapes = [(3, 224, 224), (3, 224, 336), (3, 224, 224)]
    captions = [["a", "b", "c"], ["d"], ["e"]]
    assert caption_passes(shapes, captions, 2) == [[(0, 0), (0, 1)], [(0, 2), (2, 0)], [(1, 0)]]
    assert caption_passes(shapes, [[], [], []], 2) == []


def test_resolve_file_prefers_models_dir(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"x")
    assert resolve_file("w.pth", str(tmp_path)) == tmp_path / "w.pth"
    assert resolve_file("other.pth", str(tmp_path)) == Path("other.pth")
    assert resolve_file(str(tmp_path / "w.pth"), "/nowhere") == tmp_path / "w.pth"


# --- the tiny stack through load_gsam ------------------------------------------------------


def test_tiny_layout_is_small(models_dir):
    root = Path(models_dir) / TINY
    names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert {"GroundingDINO_tiny.py", "groundingdino_tiny.pth", "sam_tiny.pth", "bert/config.json"} <= names
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 100e6


def test_preprocessing_is_groundingdinos(stack):
    # The default config: shorter side 800, ImageNet normalisation.
    grounder = GSAMGrounder(stack[0].model, SegmentConfig(backend="gsam"), "cpu")
    x = grounder.preprocess(np.full((64, 96, 3), 128, np.uint8))
    assert x.shape == (3, 800, 1200)
    assert torch.allclose(x[:, 0, 0], (128 / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]))


def record_passes(model) -> tuple[list, object]:
    """What each forward pass of the real model got and gave (a hook, not a stand-in)."""
    seen = []

    def hook(module, args, kwargs, output):
        seen.append((args[0].shape, list(kwargs["captions"]), output["pred_logits"].sigmoid(), output["pred_boxes"]))

    return seen, model.register_forward_hook(hook, with_kwargs=True)


def test_detect_one_caption_per_pass(stack):
    grounder, _ = stack
    seen, handle = record_passes(grounder.model)
    try:
        images = [scene(64, 64), scene(96, 64)]
        found = grounder.detect(images, [["a red square", "A Green Circle", "a square."], ["a red square"]])
    finally:
        handle.remove()

    assert [len(r) for r in found] == [3, 1]
    assert all(isinstance(d, Detection) for r in found for d in r)
    for d, (w, h) in [(found[0][0], (64, 64)), (found[1][0], (96, 64))]:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h and 0 <= d.score <= 1
    # Three passes (captions_per_pass=2; the 96-wide image resizes to another shape), each row
    # one caption: lower case, closed by a single ' .'.
    assert [caps for _, caps, _, _ in seen] == [["a red square .", "a green circle ."], ["a square ."], ["a red square ."]]
    assert all(shape[0] == len(caps) for shape, caps, _, _ in seen)


def test_detect_scores_the_captions_own_tokens(stack):
    # text_threshold 0.5 makes phrase_frac depend on which columns are read.
    grounder = GSAMGrounder(stack[0].model, gsam_cfg(text_threshold=0.5), "cpu")
    seen, handle = record_passes(grounder.model)
    try:
        (found,) = grounder.detect([scene(64, 64)], [["a red square"]])
    finally:
        handle.remove()
    (_, _, probs, boxes), = seen
    n = len(grounder.model.tokenizer.tokenize("a red square"))  # columns 1..n: after [CLS], before '.'
    expected = best_detection(probs[0][:, 1 : 1 + n].numpy(), cxcywh_to_pixels(boxes[0].numpy(), 64, 64), 0.0, 0.5)
    assert expected is not None and found == [expected]


def test_segment_shapes_and_empty_prompts(stack):
    _, segmenter = stack
    images = [scene(64, 64), scene(96, 64)]
    out = segmenter.segment(images, [np.array([[6, 8, 30, 28], [34, 30, 58, 56]], float), np.zeros((0, 4))])
    (masks, iou), (none, none_iou) = out
    assert masks.shape == (2, 64, 64) and masks.dtype == bool and iou.shape == (2,) and iou.dtype == np.float32
    assert none.shape == (0, 64, 96) and none.dtype == bool and none_iou.shape == (0,)
    # The same as segment-anything's own single-box call, one mask per box (multimask_output=False).
    p = segmenter.predictor
    p.set_image(images[0])
    ref_masks, ref_iou, _ = p.predict(box=np.array([6, 8, 30, 28]), multimask_output=False)
    p.reset_image()
    assert np.array_equal(masks[0], ref_masks[0]) and iou[0] == pytest.approx(ref_iou[0], rel=1e-5)
    # The masks are SAM's logits above mask_threshold.
    segmenter.cfg = gsam_cfg(mask_threshold=1e9)
    try:
        (masks_hi, iou_hi), _ = segmenter.segment(images[:1] * 2, [np.array([[6, 8, 30, 28]], float)] * 2)
    finally:
        segmenter.cfg = gsam_cfg()
    assert masks_hi.shape == (1, 64, 64) and not masks_hi.any()
    np.testing.assert_allclose(iou_hi, iou[:1], rtol=1e-5)


# --- preflight and loading errors ----------------------------------------------------------


def test_gsam_problem_messages(models_dir, monkeypatch):
    assert gsam_problem(gsam_cfg(), models_dir) is None
    cases = {
        "checkpoint": "stages.segment.gsam.checkpoint: no such file: nope.pth",
        "sam_checkpoint": "stages.segment.gsam.sam_checkpoint: no such file: nope.pth",
        "config_file": "stages.segment.gsam.config_file: no such file: nope.pth",
    }
    for field, message in cases.items():
        problem = gsam_problem(gsam_cfg(gsam={field: "nope.pth"}), models_dir)
        assert problem.startswith(message) and "\n" not in problem
    problem = gsam_problem(gsam_cfg(gsam={"text_encoder": "models/nobert"}), models_dir)
    assert problem.startswith("stages.segment.gsam.text_encoder: no such directory: models/nobert")
    monkeypatch.setitem(sys.modules, "groundingdino", None)  # as if not installed
    problem = gsam_problem(gsam_cfg(), models_dir)
    assert "groundingdino" in problem and "pip install --no-build-isolation 'datagen[gsam]'" in problem


def _touch(path):
    Path(path).write_text("pickled code ran")


class Payload:
    """Unpickling this runs `_touch`: what weights_only must refuse."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def test_checkpoint_with_pickled_code_is_refused(models_dir, tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "args": Payload(str(marker))}, evil)
    with pytest.raises(UserError) as e:
        load_gsam(gsam_cfg(gsam={"checkpoint": str(evil)}), models_dir, "cpu")
    message = str(e.value)
    assert message.startswith("stages.segment.gsam.checkpoint:") and "refused" in message and "\n" not in message
    assert "Unsupported global" in message and "_touch" in message  # names what it refused
    assert not marker.exists()
    with pytest.raises(UserError, match=r"^stages\.segment\.gsam\.sam_checkpoint: .* refused"):
        read_weights("sam_checkpoint", evil)


def test_wrong_files_fail_in_one_line(models_dir, tmp_path):
    sam_file = f"{models_dir}/{TINY}/sam_tiny.pth"
    with pytest.raises(UserError, match=r"^stages\.segment\.gsam\.checkpoint: .* has no 'model' state dict"):
        load_gsam(gsam_cfg(gsam={"checkpoint": sam_file}), models_dir, "cpu")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(UserError, match=r"^stages\.segment\.gsam\.sam_checkpoint: .* refused by weights-only loading"):
        load_gsam(gsam_cfg(gsam={"sam_checkpoint": str(tmp_path / "junk.pth")}), models_dir, "cpu")
    (tmp_path / "cut.pth").write_bytes(Path(sam_file).read_bytes()[:300])  # a broken download
    with pytest.raises(UserError, match=r"^stages\.segment\.gsam\.sam_checkpoint: cannot read .*zip archive"):
        read_weights("sam_checkpoint", tmp_path / "cut.pth")
    # A SAM of another size than the checkpoint's.
    other = {**SAM_ENCODER, "embed_dim": 32}
    with pytest.raises(UserError, match=r"^stages\.segment\.gsam\.sam_checkpoint: .* does not fit sam_encoder"):
        load_sam(gsam_cfg(gsam={"sam_encoder": other}).gsam, models_dir)
