"""DINOv2 image embeddings through transformers (`Dinov2Model`), for identity similarity:
DINO features are what the field's identity metric (DINO-I) compares."""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.config import IdcheckConfig
from datagen.models.hub import load_model, pick_device, require, resolve_model, torch_dtype


class DinoEmbedder:
    def __init__(self, model: Any, processor: Any, device: str, batch_size: int = 32) -> None:
        self.model, self.processor, self.device, self.batch_size = model, processor, device, batch_size

    @classmethod
    def load(cls, cfg: IdcheckConfig, models_dir: str | None, stage: str = "idcheck") -> DinoEmbedder:
        tf = require("transformers", "perception")
        path = resolve_model(cfg.model, models_dir)
        kw: dict[str, Any] = {"revision": cfg.revision}
        if cfg.dtype != "auto":
            kw["dtype"] = torch_dtype(cfg.dtype)
        if cfg.trust_remote_code:
            kw["trust_remote_code"] = True
        model = load_model(stage, cfg.model, lambda: tf.Dinov2Model.from_pretrained(path, **kw))
        processor = load_model(stage, cfg.model, lambda: tf.AutoImageProcessor.from_pretrained(path, revision=cfg.revision))
        device = pick_device(cfg.device)
        return cls(model.to(device).eval(), processor, device, cfg.exec.batch_size * 4)

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
