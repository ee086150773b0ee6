"""SigLIP through transformers (`SiglipModel`), for `datagen eval`'s SigLIP-I and SigLIP-T:
identity crops against reference images, and the generated image against its prompt.

SigLIP-T is 100 x the cosine of the image and text embeddings, as the SIGMA-GEN paper reports
it. Texts are padded to the full context (padding="max_length") and the attention mask is not
passed: SigLIP was trained that way, its text tower attends to the padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.eval.config import MetricModel
from datagen.errors import BackendUnavailable
from datagen.models.hub import load_model, pick_device, pretrained_kwargs, require, resolve_model

STAGE = "metrics.siglip"


def load_processor(stage: str, cfg: MetricModel, path: str) -> Any:
    """AutoProcessor of a model; a tokenizer whose library is missing is one line, not a traceback."""
    tf = require("transformers", "eval")
    kw = {"revision": cfg.revision, **({"trust_remote_code": True} if cfg.trust_remote_code else {})}
    try:
        return load_model(stage, cfg.model, lambda: tf.AutoProcessor.from_pretrained(path, **kw))
    except ImportError as e:
        # The hub's SigLIP checkpoints ship only a sentencepiece model (SiglipTokenizer).
        reason = " ".join(str(e).split()).split(". ")[0][:200] or e.__class__.__name__
        raise BackendUnavailable(f"{stage}: model {cfg.model!r}: {reason}; install it with: pip install 'datagen[eval]'") from None


def unit_rows(torch: Any, features: Any) -> np.ndarray:
    return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()


class SiglipJudge:
    def __init__(self, model: Any, processor: Any, device: str, batch_size: int = 8) -> None:
        self.model, self.processor, self.device, self.batch_size = model, processor, device, batch_size

    @classmethod
    def load(cls, cfg: MetricModel, models_dir: str | None) -> SiglipJudge:
        tf = require("transformers", "eval")
        path = resolve_model(cfg.model, models_dir)
        model = load_model(STAGE, cfg.model, lambda: tf.SiglipModel.from_pretrained(path, **pretrained_kwargs(cfg)))
        processor = load_processor(STAGE, cfg, path)
        device = pick_device(cfg.device)
        return cls(model.to(device).eval(), processor, device, cfg.batch_size)

    @property
    def dim(self) -> int:
        return int(self.model.config.vision_config.hidden_size)

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, D) unit-length embeddings of uint8 RGB images."""
        torch = require("torch")
        chunks = []
        for at in range(0, len(images), self.batch_size):
            pixels = self.processor(images=images[at : at + self.batch_size], return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                out = self.model.get_image_features(pixel_values=pixels.to(self.device, self.model.dtype))
            chunks.append(unit_rows(torch, out.pooler_output))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """(N, D) unit-length embeddings of texts, padded to the full context as in training."""
        torch = require("torch")
        length = int(self.model.config.text_config.max_position_embeddings)
        chunks = []
        for at in range(0, len(texts), self.batch_size):
            ids = self.processor(
                text=list(texts[at : at + self.batch_size]), padding="max_length", max_length=length,
                truncation=True, return_tensors="pt",
            )["input_ids"]  # fmt: skip
            with torch.inference_mode():
                out = self.model.get_text_features(input_ids=ids.to(self.device))
            chunks.append(unit_rows(torch, out.pooler_output))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def text_scores(self, images: list[np.ndarray], texts: list[str]) -> list[float]:
        """SigLIP-T: 100 x cosine of images[i] and texts[i]."""
        if len(images) != len(texts):
            raise ValueError(f"text_scores: {len(images)} images but {len(texts)} texts")
        if not images:
            return []
        cos = (self.embed_images(images).astype(np.float64) * self.embed_texts(texts)).sum(axis=1)
        return [float(v) for v in 100.0 * cos]


__all__ = ["SiglipJudge", "load_processor"]
