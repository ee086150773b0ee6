"""Metric depth through transformers (`AutoModelForDepthEstimation`): Depth Anything V2 metric
by default.

These models predict depth only, not the camera, so the intrinsics come from the configured
horizontal field of view (`fov_x_deg`, 60 degrees when unset) with the principal point at the
image centre.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from datagen.config import DepthConfig
from datagen.errors import UserError
from datagen.models.hub import load_model, pick_device, require, resolve_model, torch_dtype

DEFAULT_FOV_X_DEG = 60.0


def fov_camera(width: int, height: int, fov_x_deg: float) -> dict:
    """The pinhole camera of a horizontal field of view: square pixels, centred principal point."""
    f = width / (2.0 * math.tan(math.radians(fov_x_deg) / 2.0))
    return {"model": "pinhole", "fx": f, "fy": f, "cx": width / 2.0, "cy": height / 2.0}


def metric_problem(config: Any) -> str | None:
    """Why a depth model's config does not promise metres, or None.

    Depth Anything's relative models predict inverse depth up to scale, which no camera turns
    into a box in metres; only configs that say `depth_estimation_type: metric` are taken.
    """
    kind = getattr(config, "depth_estimation_type", None)
    if kind == "metric":
        return None
    return (
        f"predicts {kind or 'non-metric'} depth (config depth_estimation_type={kind!r}); the depth stage needs a "
        "metric model, e.g. depth-anything/Depth-Anything-V2-Metric-Indoor-Large-hf"
    )


def known_depth(depth: np.ndarray) -> np.ndarray:
    """float32 metres, NaN where not a positive number (bicubic resizing can undershoot 0 at edges)."""
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32)


class TransformersDepth:
    """A metric depth model and its image processor."""

    def __init__(self, model: Any, processor: Any, device: str) -> None:
        self.model, self.processor, self.device = model, processor, device

    @classmethod
    def load(cls, cfg: DepthConfig, models_dir: str | None) -> TransformersDepth:
        tf = require("transformers", "perception")
        path = resolve_model(cfg.model, models_dir)
        common: dict[str, Any] = {"revision": cfg.revision}
        if cfg.trust_remote_code:
            common["trust_remote_code"] = True
        # The config first: refusing a relative model should not cost loading its weights.
        config = load_model("depth", cfg.model, lambda: tf.AutoConfig.from_pretrained(path, **common))
        problem = metric_problem(config)
        if problem:
            raise UserError(f"stages.depth.model {cfg.model!r}: {problem}")
        kw = dict(common)
        if cfg.dtype != "auto":
            kw["dtype"] = torch_dtype(cfg.dtype)
        model = load_model("depth", cfg.model, lambda: tf.AutoModelForDepthEstimation.from_pretrained(path, **kw))
        processor = load_model("depth", cfg.model, lambda: tf.AutoImageProcessor.from_pretrained(path, **common))
        device = pick_device(cfg.device)
        return cls(model.to(device).eval(), processor, device)

    def predict(self, images: np.ndarray) -> list[np.ndarray]:
        """Depth in metres at each image's own size, for (N, H, W, 3) uint8 images, as one batch."""
        torch = require("torch")
        height, width = images.shape[1:3]
        inputs = self.processor(images=list(images), return_tensors="pt")
        with torch.inference_mode():
            out = self.model(pixel_values=inputs["pixel_values"].to(self.device, dtype=self.model.dtype))
        # Resize in fp32: a bf16 model's output would otherwise be interpolated in bf16.
        out.predicted_depth = out.predicted_depth.float()
        resized = self.processor.post_process_depth_estimation(out, target_sizes=[(height, width)] * len(images))
        return [known_depth(r["predicted_depth"].cpu().numpy()) for r in resized]
