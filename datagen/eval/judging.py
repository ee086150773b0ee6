"""The paper's six metrics on one sample's generated images (section 5), with the models of
EvalConfig.metrics loaded once per worker; arithmetic in datagen.eval.scores.

Geometry is mapped onto the generated image: the sample's boxes scale by resolution / width
and resolution / height, its masks and depth resize by nearest neighbour (no value is
invented between a subject and the background).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from datagen.eval.config import EvalConfig
from datagen.eval.scores import depth_mse, identity_scores

SCORES = "scores"


class Judges:
    """DINOv2, SigLIP, CLIP-IQA, MUSIQ and (with depth=True) the depth model, loaded once."""

    def __init__(self, dino: Any, siglip: Any, clip_iqa: Any, musiq: Any, depth_model: Any = None) -> None:
        self.dino, self.siglip, self.clip_iqa, self.musiq, self.depth_model = dino, siglip, clip_iqa, musiq, depth_model

    @classmethod
    def load(cls, cfg: EvalConfig, depth: bool = True) -> Judges:
        from datagen.models.dinov2 import DinoEmbedder
        from datagen.models.iqa import ClipIqa, Musiq
        from datagen.models.siglip import SiglipJudge

        m, where = cfg.metrics, cfg.models_dir
        depth_model = None
        if depth and m.depth.backend == "moge":
            from datagen.models.moge import MoGe2

            depth_model = MoGe2.load(m.depth, where)
        elif depth:
            from datagen.models.depth_transformers import TransformersDepth

            depth_model = TransformersDepth.load(m.depth, where)
        return cls(DinoEmbedder.from_metric(m.dino, where), SiglipJudge.load(m.siglip, where), ClipIqa.load(m.clip_iqa, where),
                   Musiq.load(m.musiq, where), depth_model)  # fmt: skip

    def depth(self, image: np.ndarray) -> np.ndarray:
        if hasattr(self.depth_model, "infer"):
            from datagen.models.moge import depth_and_camera

            return depth_and_camera(self.depth_model.infer(image[None])[0])[0]
        return self.depth_model.predict(image[None])[0]

    def quality(self, images: list[np.ndarray]) -> tuple[list[float], list[float]]:
        """(CLIP-IQA x100, MUSIQ) per image: the paper's no-reference quality columns."""
        return [100.0 * v for v in self.clip_iqa.score(images)], list(self.musiq.score(images))


def scaled_boxes(subjects: list[dict], width: int, height: int, size: int) -> list[list[float]]:
    sx, sy = size / width, size / height
    return [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in (s["box_2d"] for s in subjects)]


def resize_nearest(array: np.ndarray, size: int) -> np.ndarray:
    """(H, W) or (N, H, W) bool / float -> size x size by nearest neighbour."""
    array = np.asarray(array)
    h, w = array.shape[-2:]
    rows = np.minimum((np.arange(size) + 0.5) * h / size, h - 1).astype(int)
    cols = np.minimum((np.arange(size) + 0.5) * w / size, w - 1).astype(int)
    return array[..., rows[:, None], cols[None, :]]


def score_sample(judges: Judges, decoded: dict, images: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Per mode: the six metrics (identity scores also per subject) of one sample's outputs."""
    meta = decoded["json"]
    width, height, subjects = int(meta["width"]), int(meta["height"]), meta["subjects"]
    identities = list(decoded["identities"])
    modes = list(images)
    outputs = [images[m] for m in modes]
    size = outputs[0].shape[0]
    boxes = scaled_boxes(subjects, width, height, size)
    masks, depth = resize_nearest(decoded["masks"], size), resize_nearest(decoded["depth"], size)
    text = judges.siglip.text_scores(outputs, [meta["prompt"]["full"]] * len(outputs))
    clip_iqa, musiq = judges.quality(outputs)
    scores: dict[str, dict[str, Any]] = {}
    for i, mode in enumerate(modes):
        dino = identity_scores(judges.dino.embed, outputs[i], boxes, identities)
        siglip = identity_scores(judges.siglip.embed_images, outputs[i], boxes, identities)
        err = depth_mse(judges.depth(outputs[i]), depth, masks)
        scores[mode] = {
            "dino_i": float(np.mean(dino)), "siglip_i": float(np.mean(siglip)), "siglip_t": float(text[i]),
            "depth_mse": err.normalised_mse, "depth_mse_8bit": err.mse_8bit, "depth_metric_mse": err.metric_mse,
            "depth_pixels": err.pixels, "clip_iqa": clip_iqa[i], "musiq": musiq[i],
            "dino_i_subjects": dino, "siglip_i_subjects": siglip,
        }  # fmt: skip
    return scores


def score_path(out: Path, row_id: str, key: str) -> Path:
    return out / SCORES / row_id / f"{key}.json"


def commit_scores(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
