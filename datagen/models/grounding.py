"""Grounded segmentation through transformers: Grounding DINO boxes, SAM (or SAM 2) masks.

Grounding DINO sees one subject caption per pass, as the paper runs it: concatenating
"a . b . c" into one query lets phrases borrow each other's tokens. Pairs of (image, caption)
are batched across the samples of a batch. SAM encodes each image once and decodes all of its
boxes from that embedding.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.config import SegmentConfig
from datagen.errors import UserError
from datagen.models.hub import load_model, pick_device, pretrained_kwargs, require, resolve_model
from datagen.models.perception import Detection, best_detection


def grounding_text(caption: str) -> str:
    """The query Grounding DINO was trained on: lower case, one phrase, closed by ' .'."""
    return caption.strip().lower().rstrip(" .") + " ."


def caption_columns(tokenizer: Any, caption: str, max_text_len: int) -> np.ndarray:
    """Logit columns of the caption's own tokens: after [CLS], before the closing '.' and [SEP]."""
    n = len(tokenizer(caption.strip().lower().rstrip(" ."), add_special_tokens=False)["input_ids"])
    return np.arange(1, min(1 + n, max_text_len - 1))


def cxcywh_to_pixels(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised (cx, cy, w, h) boxes to pixel (x0, y0, x1, y1), clipped to the image."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx, cy, w, h = b[:, 0] * width, b[:, 1] * height, b[:, 2] * width, b[:, 3] * height
    out = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    out[:, 0::2] = out[:, 0::2].clip(0, width)
    out[:, 1::2] = out[:, 1::2].clip(0, height)
    return out


class TransformersGrounder:
    """Grounding DINO (`GroundingDinoForObjectDetection`): the best box per caption."""

    def __init__(self, model: Any, processor: Any, cfg: SegmentConfig, device: str) -> None:
        self.model, self.processor, self.cfg, self.device = model, processor, cfg, device
        self.max_text_len = int(getattr(model.config, "max_text_len", 256))

    @classmethod
    def load(cls, cfg: SegmentConfig, models_dir: str | None) -> TransformersGrounder:
        tf = require("transformers", "perception")
        path = resolve_model(cfg.detector_model, models_dir)
        model = load_model("segment", cfg.detector_model, lambda: tf.GroundingDinoForObjectDetection.from_pretrained(path, **pretrained_kwargs(cfg)))
        processor = load_model("segment", cfg.detector_model, lambda: tf.AutoProcessor.from_pretrained(path, revision=cfg.revision))
        device = pick_device(cfg.device)
        return cls(model.to(device).eval(), processor, cfg, device)

    def detect(self, images: list[np.ndarray], captions: list[list[str]]) -> list[list[Detection | None]]:
        pairs = [(i, c) for i, caps in enumerate(captions) for c in caps]
        found: list[Detection | None] = []
        for at in range(0, len(pairs), self.cfg.captions_per_pass):
            found.extend(self._pass(images, pairs[at : at + self.cfg.captions_per_pass]))
        out: list[list[Detection | None]] = []
        pos = 0
        for caps in captions:
            out.append(found[pos : pos + len(caps)])
            pos += len(caps)
        return out

    def _pass(self, images: list[np.ndarray], pairs: list[tuple[int, str]]) -> list[Detection | None]:
        torch = require("torch")
        inputs = self.processor(
            images=[images[i] for i, _ in pairs], text=[grounding_text(c) for _, c in pairs], return_tensors="pt", padding=True
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            out = self.model(**inputs)
        probs = out.logits.float().sigmoid().cpu().numpy()
        boxes = out.pred_boxes.float().cpu().numpy()
        result = []
        for row, (i, caption) in enumerate(pairs):
            height, width = images[i].shape[:2]
            cols = caption_columns(self.processor.tokenizer, caption, probs.shape[2])
            result.append(
                best_detection(
                    probs[row][:, cols], cxcywh_to_pixels(boxes[row], width, height), self.cfg.box_threshold, self.cfg.text_threshold
                )
            )
        return result


class TransformersSegmenter:
    """SAM (`SamModel`) or SAM 2 (`Sam2Model`): one mask per box, images encoded once."""

    def __init__(self, model: Any, processor: Any, cfg: SegmentConfig, device: str) -> None:
        self.model, self.processor, self.cfg, self.device = model, processor, cfg, device

    @classmethod
    def load(cls, cfg: SegmentConfig, models_dir: str | None) -> TransformersSegmenter:
        tf = require("transformers", "perception")
        name = "Sam2Model" if cfg.sam_version == "sam2" else "SamModel"
        model_cls = getattr(tf, name, None)
        if model_cls is None:
            raise UserError(f"stages.segment.sam_version {cfg.sam_version}: transformers {tf.__version__} has no {name}")
        path = resolve_model(cfg.sam_model, models_dir)
        model = load_model("segment", cfg.sam_model, lambda: model_cls.from_pretrained(path, **pretrained_kwargs(cfg)))
        processor = load_model("segment", cfg.sam_model, lambda: tf.AutoProcessor.from_pretrained(path, revision=cfg.revision))
        device = pick_device(cfg.device)
        return cls(model.to(device).eval(), processor, cfg, device)

    def segment(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        torch = require("torch")
        out: list[tuple[np.ndarray, np.ndarray]] = [self._empty(img) for img in images]
        todo = [i for i, b in enumerate(boxes) if len(b)]
        if not todo:
            return out
        # One processor call maps every image and its pixel boxes into the model's frame (SAM
        # and SAM 2 differ); it wants as many boxes per image, so short lists repeat a box.
        most = max(len(boxes[i]) for i in todo)
        padded = [[*np.asarray(boxes[i], dtype=np.float64).tolist(), *[list(boxes[i][0])] * (most - len(boxes[i]))] for i in todo]
        inputs = self.processor(images=[images[i] for i in todo], input_boxes=padded, return_tensors="pt")
        with torch.inference_mode():
            embeddings = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device, self.model.dtype))
        for row, i in enumerate(todo):
            own = [e[row : row + 1] for e in embeddings] if isinstance(embeddings, (list, tuple)) else embeddings[row : row + 1]
            sizes = [inputs[k][row : row + 1] for k in ("original_sizes", "reshaped_input_sizes") if k in inputs]
            out[i] = self._decode(inputs["input_boxes"][row : row + 1, : len(boxes[i])], own, sizes)
        return out

    def _decode(self, input_boxes: Any, embedding: Any, sizes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        torch = require("torch")
        with torch.inference_mode():
            pred = self.model(
                image_embeddings=embedding, input_boxes=input_boxes.to(self.device, self.model.dtype), multimask_output=False
            )
        masks = self.processor.post_process_masks(
            pred.pred_masks.float().cpu(), *sizes, mask_threshold=self.cfg.mask_threshold, binarize=True
        )[0]
        k = input_boxes.shape[1]
        masks = masks.reshape(k, -1, *masks.shape[-2:])[:, 0].numpy().astype(bool)
        scores = pred.iou_scores.float().cpu().reshape(k, -1)[:, 0].numpy()
        return masks, scores

    @staticmethod
    def _empty(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((0, *image.shape[:2]), dtype=bool), np.zeros((0,), dtype=np.float32)


def load_transformers_perception(cfg: SegmentConfig, models_dir: str | None) -> tuple[TransformersGrounder, TransformersSegmenter]:
    return TransformersGrounder.load(cfg, models_dir), TransformersSegmenter.load(cfg, models_dir)
