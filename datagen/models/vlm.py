"""The caption stage's VLM engine: Qwen2.5-VL through transformers.

`generate(requests)` takes chat requests, each with its images, its own JSON schema and its
seed, and returns the answers' raw text in order, with the prompts stage's LLM guarantees
(`datagen.models.llm`, whose pieces it reuses): decoding constrained to each request's schema
by xgrammar, and each request sampled from its own seed, so an answer does not depend on which
other requests share its batch. Temperature 0 is greedy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from datagen.config import CaptionConfig
from datagen.models.hub import load_model, pick_device, pretrained_kwargs, require, resolve_model
from datagen.models.llm import GrammarEngine, constrained_generate


@dataclass(frozen=True)
class VLMRequest:
    system: str
    user: str
    images: list[np.ndarray]  # HxWx3 (or HxW) uint8, RGB
    schema: dict
    seed: int

    def messages(self) -> list[dict[str, Any]]:
        """Qwen's chat format: the images first (the processor inserts their tokens), then the text."""
        content = [{"type": "image"} for _ in self.images] + [{"type": "text", "text": self.user}]
        return [{"role": "system", "content": self.system}, {"role": "user", "content": content}]


def _pil(image: np.ndarray) -> Any:
    """An RGB PIL image: a numpy array's channel axis is guessed by the processor, and a tiny one
    (3 pixels wide) would be guessed wrong."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"VLM images are uint8 arrays, got {arr.dtype}")
    return Image.fromarray(arr).convert("RGB")


class TransformersVLM(GrammarEngine):
    """Batched `generate` with the checkpoint's chat template and xgrammar JSON-schema masks."""

    def __init__(self, cfg: CaptionConfig, models_dir: str | None, stage: str = "caption") -> None:
        self.cfg = cfg
        torch = require("torch")
        transformers = require("transformers", "llm")
        self.xgr = require("xgrammar")
        self._xgr_hf = require("xgrammar.contrib.hf", "llm")
        path = resolve_model(cfg.model, models_dir)
        kw = pretrained_kwargs(cfg)
        proc_kw = {k: v for k, v in kw.items() if k != "dtype"}
        self.processor = load_model(stage, cfg.model, lambda: transformers.AutoProcessor.from_pretrained(path, **proc_kw))
        self.tokenizer = self.processor.tokenizer
        self._limit_pixels(cfg.max_image_pixels)
        self.device = pick_device(cfg.device)
        self.model = load_model(
            stage, cfg.model, lambda: transformers.AutoModelForImageTextToText.from_pretrained(path, **kw)
        )
        self.model.to(self.device).eval()
        # The text model's rows (152064 in the real one), past the tokenizer's 151665.
        self.setup_grammar(self.model.config.get_text_config().vocab_size, torch)

    def _limit_pixels(self, max_pixels: int) -> None:
        """The image budget (Qwen's max_pixels): the processor resizes larger images down to it."""
        ip = self.processor.image_processor
        size = dict(ip.size)
        size["longest_edge"] = max_pixels
        size["shortest_edge"] = min(size.get("shortest_edge", 56 * 56), max_pixels)
        ip.size = type(ip.size)(**size) if not isinstance(ip.size, dict) else size

    def chat_text(self, req: VLMRequest) -> str:
        return self.processor.apply_chat_template(req.messages(), tokenize=False, add_generation_prompt=True)

    def inputs(self, requests: list[VLMRequest]) -> Any:
        """The model's inputs for one batch: Qwen2.5-VL takes images of different sizes together
        (their patches are concatenated and each image attends only to itself), so requests are
        not run one at a time; the prompts are padded on the left."""
        images = [_pil(im) for r in requests for im in r.images]
        return self.processor(
            text=[self.chat_text(r) for r in requests],
            images=images or None,
            return_tensors="pt",
            padding=True,
            padding_side="left",  # generation appends on the right
        ).to(self.device)

    def generate(self, requests: list[VLMRequest]) -> list[str]:
        """Each row decodes under its own grammar and seed."""
        if not requests:
            return []
        enc = self.inputs(requests)
        # The checkpoint's generation config (its repetition penalty) stays.
        return constrained_generate(self, enc, requests)
