"""DINOv2 image embeddings through transformers (`Dinov2Model`), for identity similarity:
DINO features are what the field's identity metric (DINO-I) compares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from datagen.config import IdcheckConfig
from datagen.models.hub import load_model, pick_device, pretrained_kwargs, require, resolve_model

if TYPE_CHECKING:  # the idcheck stage imports this module: it needs nothing of datagen.eval
    from datagen.eval.config import MetricModel


class DinoEmbedder:
    def __init__(self, model: Any, processor: Any, device: str, batch_size: int = 32) -> None:
        self.model, self.processor, self.device, self.batch_size = model, processor, device, batch_size

    @classmethod
    def load(cls, cfg: IdcheckConfig, models_dir: str | None, stage: str = "idcheck") -> DinoEmbedder:
        return cls._load(cfg, models_dir, stage, cfg.exec.batch_size * 4)

    @classmethod
    def from_metric(cls, cfg: MetricModel, models_dir: str | None) -> DinoEmbedder:
        """DINO-I's embedder for `datagen eval` (EvalConfig.metrics.dino)."""
        return cls._load(cfg, models_dir, "metrics.dino", cfg.batch_size)

    @classmethod
    def _load(cls, cfg: IdcheckConfig | MetricModel, models_dir: str | None, stage: str, batch_size: int) -> DinoEmbedder:
        tf = require("transformers", "perception")
        path = resolve_model(cfg.model, models_dir)
        model = load_model(stage, cfg.model, lambda: tf.Dinov2Model.from_pretrained(path, **pretrained_kwargs(cfg)))
        processor = load_model(stage, cfg.model, lambda: tf.AutoImageProcessor.from_pretrained(path, revision=cfg.revision))
        device = pick_device(cfg.device)
        return cls(model.to(device).eval(), processor, device, batch_size)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, D) unit-length CLS embeddings of uint8 RGB images."""
        torch = require("torch")
        chunks = []
        for at in range(0, len(images), self.batch_size):
            pixels = self.processor(images=images[at : at + self.batch_size], return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                out = self.model(pixel_values=pixels.to(self.device, self.model.dtype))
            chunks.append(torch.nn.functional.normalize(out.pooler_output.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, int(self.model.config.hidden_size)), np.float32)


def cosine_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > 0, (a * b).sum(axis=1) / np.where(norms > 0, norms, 1.0), 0.0)
