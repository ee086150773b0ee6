"""A tiny random-weight Qwen2.5-VL (the caption stage's VLM), saved as the real checkpoint is.

The real classes at toy size: a 2-layer text model of width 32, a 2-block vision tower, the
real image and video processors, and a byte-level BPE `Qwen2Tokenizer` trained here on
caption-like JSON (so constrained decoding spends few tokens per key) with Qwen's special
tokens and Qwen2.5-VL's chat template. A 64x64 image becomes 4 image tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

from datagen.models.hub import require

QWEN25_VL = "Qwen/Qwen2.5-VL-7B-Instruct"

# What the BPE learns its merges from: answers of the caption stage's shape and words of captions.
_CORPUS = [
    '{"prompt": "A photo of a brown dog and a blue ball on green grass.", "background": "green grass",',
    ' "subjects": [{"name": "dog", "caption": "a brown dog"}, {"name": "ball", "caption": "a blue ball"}]}',
    '{"prompt": "A white cat beside a glass vase on a wooden table.", "background": "a wooden table",',
    ' "subjects": [{"name": "cat", "caption": "a white cat"}, {"name": "vase", "caption": "a glass vase"}]}',
    "Describe the image: name each subject and caption it, then the background, as JSON.",
    "a an the of on in with at by near red green blue white black small large photo picture scene",
]
# Qwen2.5-VL's special tokens, in the order of the real vocabulary's added tokens.
_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip
# Qwen2.5-VL-Instruct's own chat template: a default system turn, an image as
# <|vision_start|><|image_pad|><|vision_end|> (the processor repeats the pad per image token).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# The processors' pixel budget: min 56x56 as the real ones, max small so a test image stays tiny.
_SIZE = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 64}


def _tokenizer(transformers):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    # Trained with Qwen2Tokenizer's own pre-tokenizer, so its merges apply unchanged there.
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: any JSON is expressible
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return transformers.Qwen2Tokenizer(
        vocab=state["vocab"], merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )  # fmt: skip


def build_qwen25_vl(out: Path) -> None:
    torch = require("torch", "llm")
    transformers = require("transformers", "llm")

    tok = _tokenizer(transformers)
    ids = {t: tok.convert_tokens_to_ids(t) for t in _SPECIALS}
    processor = transformers.Qwen2_5_VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(size=dict(_SIZE)),
        video_processor=transformers.Qwen2VLVideoProcessor(size=dict(_SIZE)),
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
    )
    torch.manual_seed(0)
    config = transformers.Qwen2_5_VLConfig(
        text_config={
            # Rounded up past the tokenizer, as the real 152064 rows are for 151665 tokens.
            "vocab_size": -(-len(tok) // 64) * 64,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 2048,
            # mrope_section must sum to head_dim / 2 (16 / 2).
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            "tie_word_embeddings": True,
            "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,  # the text model's width
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    model = transformers.Qwen2_5_VLForConditionalGeneration(config)
    # The real checkpoint's generation settings, repetition penalty included: the engine keeps
    # that one and replaces the sampling ones with its config's.
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=True,
        repetition_penalty=1.05,
        temperature=0.1,
        top_p=0.001,
        top_k=1,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
