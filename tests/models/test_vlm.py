"""The caption stage's VLM engine on a tiny random-weight Qwen2.5-VL (transformers): JSON that
parses from random weights, seeds, batching, images, the pixel budget, a missing model."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from datagen.config import CaptionConfig
from datagen.errors import UserError
from datagen.models.tiny.build import build_tiny_models
from datagen.models.tiny.vlm import QWEN25_VL
from datagen.models.vlm import TransformersVLM, VLMRequest
from datagen.recipe.scene_spec import SYSTEM_PROMPT, Invalid, SceneSpec, json_schema, parse_scene

# Short texts keep answers (and the test) short: ~60 tokens each.
LIMITS = {"prompt_max_chars": 16, "background_max_chars": 8, "name_max_chars": 8, "caption_min_chars": 1, "caption_max_chars": 12}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-vlm")
    build_tiny_models(root, only=[QWEN25_VL], say=lambda _: None)
    return root


def engine(models_dir, **kw) -> TransformersVLM:
    cfg = CaptionConfig(backend="transformers", dtype="float32", max_new_tokens=160, limits=LIMITS, **kw)
    return TransformersVLM(cfg, str(models_dir))


@pytest.fixture(scope="module")
def vlm(models_dir):
    return engine(models_dir)


def image(seed: int, h: int = 64, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def req(vlm, images: list[np.ndarray], seed: int, n: int = 2) -> VLMRequest:
    return VLMRequest(SYSTEM_PROMPT, f"Name and caption the {n} subjects.", images, json_schema(n, vlm.cfg.limits), seed)


def test_chat_text_is_qwen_chat_with_one_vision_block_per_image(vlm):
    text = vlm.chat_text(req(vlm, [image(0), image(1)], 0))
    assert text.startswith("<|im_start|>system\n" + SYSTEM_PROMPT + "<|im_end|>\n<|im_start|>user\n")
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert text.endswith("Name and caption the 2 subjects.<|im_end|>\n<|im_start|>assistant\n")


def test_constrained_decoding_gives_the_schema_shape_from_random_weights(vlm):
    r = req(vlm, [image(0)], 1)
    text = vlm.generate([r])[0]
    data = json.loads(text)  # always parses
    assert set(data) == {"prompt", "background", "subjects"}
    assert len(data["subjects"]) == 2 and all(set(s) == {"name", "caption"} for s in data["subjects"])
    props = r.schema["properties"]
    assert re.match(props["prompt"]["pattern"], data["prompt"]) and re.match(props["background"]["pattern"], data["background"])
    assert all(len(s["name"]) <= LIMITS["name_max_chars"] and len(s["caption"]) <= LIMITS["caption_max_chars"] for s in data["subjects"])
    got = parse_scene(text, 2, vlm.cfg.limits)  # random words may fail its content checks, never raise
    assert isinstance(got, SceneSpec) or (isinstance(got, Invalid) and got.reason)


def test_same_seed_same_answer_and_seeds_differ(vlm):
    a = vlm.generate([req(vlm, [image(0)], 11)])
    assert vlm.generate([req(vlm, [image(0)], 11)]) == a
    assert vlm.generate([req(vlm, [image(0)], 12)]) != a


def test_an_answer_does_not_depend_on_its_batch(vlm):
    # Images of different sizes and counts, and a request with none, in one batch.
    requests = [req(vlm, [image(2)], 21), req(vlm, [image(3, 90, 50), image(4)], 22, n=3), req(vlm, [], 23)]
    batched = vlm.generate(requests)
    assert batched == [vlm.generate([r])[0] for r in requests]


def test_two_images_in_one_request(vlm):
    r = req(vlm, [image(5), image(6, 120, 80)], 31)
    enc = vlm.inputs([r])
    assert enc["image_grid_thw"].shape[0] == 2
    data = json.loads(vlm.generate([r])[0])
    assert len(data["subjects"]) == 2


def test_temperature_zero_is_greedy_and_images_shrink_to_the_pixel_budget(models_dir):
    vlm = engine(models_dir, temperature=0, max_image_pixels=56 * 56 * 2)
    a, b = vlm.generate([req(vlm, [image(7)], 1), req(vlm, [image(7)], 2)])
    assert a == b  # the seed only draws sampling noise
    t, h, w = vlm.inputs([req(vlm, [image(8, 448, 336)], 0)])["image_grid_thw"][0].tolist()
    assert h * w * 14 * 14 <= 56 * 56 * 2 < 448 * 336


def test_missing_model_is_one_line_naming_stage_and_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = CaptionConfig(backend="transformers", model="nobody/no-such-vlm")
    with pytest.raises(UserError) as e:
        TransformersVLM(cfg, str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("stages.caption: cannot load model 'nobody/no-such-vlm'")
