"""The paper's own segmentation stack (Grounded-Segment-Anything): groundingdino-py boxes and
segment-anything masks, loaded from checkpoint files the way Grounded-SAM's demo loads them.

Grounding DINO sees one caption per pass, never "a . b . c" (phrases would borrow each other's
tokens); (image, caption) pairs are batched `captions_per_pass` at a time. Weights are read with
`torch.load(weights_only=True)`, so a checkpoint cannot run pickled code. `dtype` applies to
SAM on a GPU only (see `_autocast`). groundingdino and segment_anything are imported inside
functions: without the [gsam] extra the rest of datagen still imports, and `gsam_problem` says
what to install before any worker starts.
"""

from __future__ import annotations

import importlib.util
import logging
import pickle
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from datagen.config import GSAMConfig, SegmentConfig
from datagen.errors import UserError
from datagen.models.grounding import cxcywh_to_pixels, grounding_text
from datagen.models.hub import (
    hub_offline,
    load_model,
    pick_device,
    require,
    resolve_model,
    torch_dtype,
)
from datagen.models.perception import Detection, best_detection

log = logging.getLogger(__name__)

FIELD = "stages.segment.gsam"
INSTALL = "pip install --no-build-isolation 'datagen[gsam]'"
PACKAGED_CONFIG = "GroundingDINO_SwinT_OGC.py"
# groundingdino's get_pretrained_language_model loads these hub ids; anything else must be a directory.
HUB_TEXT_ENCODERS = ("bert-base-uncased", "roberta-base")
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def resolve_file(path: str, models_dir: str | None) -> Path:
    """`models_dir/path` when that exists, else `path` itself (absolute, or relative to the cwd)."""
    if models_dir and not Path(path).expanduser().is_absolute():
        local = Path(models_dir).expanduser() / path
        if local.exists():
            return local
    return Path(path).expanduser()


def config_file(g: GSAMConfig, models_dir: str | None) -> Path:
    """The Grounding DINO config to build: the configured file, else the packaged SwinT OGC one."""
    if g.config_file is not None:
        return resolve_file(g.config_file, models_dir)
    spec = importlib.util.find_spec("groundingdino")
    return Path(spec.origin).parent / "config" / PACKAGED_CONFIG


def _missing_package() -> str | None:
    for module in ("groundingdino", "segment_anything"):
        if importlib.util.find_spec(module) is None:
            return f"stages.segment: the gsam backend needs {module}: {INSTALL}"
    return None


def _text_encoder_problem(name: str, models_dir: str | None) -> str | None:
    if Path(resolve_model(name, models_dir)).expanduser().is_dir():
        return None
    if name not in HUB_TEXT_ENCODERS:
        return f"{FIELD}.text_encoder: no such directory: {name} (hub ids groundingdino loads: {', '.join(HUB_TEXT_ENCODERS)})"
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            return f"{FIELD}.text_encoder: {name!r} is not in models_dir or the hub cache, and HF_HUB_OFFLINE is set"
    return None


def gsam_problem(cfg: SegmentConfig, models_dir: str | None) -> str | None:
    """Why the gsam backend cannot load, in one line naming the field to fix; None if it may."""
    problem = _missing_package()
    if problem:
        return problem
    g = cfg.gsam
    files = {"config_file": g.config_file, "checkpoint": g.checkpoint, "sam_checkpoint": g.sam_checkpoint}
    for field, value in files.items():
        if value is not None and not resolve_file(value, models_dir).is_file():
            where = f" (nor under models_dir {models_dir})" if models_dir else ""
            return f"{FIELD}.{field}: no such file: {value}{where}"
    return _text_encoder_problem(g.text_encoder, models_dir)


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else e.__class__.__name__)[:300]


def _refusal(e: BaseException) -> str:
    """What torch's weights-only unpickler objected to (its message opens with generic advice)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for at, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            reason = line.split("WeightsUnpickler error:", 1)[1].strip() or " ".join(lines[at + 1 : at + 2])
            return reason.split(" Please use")[0][:300]
    return _first_line(e)


def read_weights(field: str, path: Path) -> Any:
    """torch.load with weights_only=True: tensors and plain containers, never pickled code."""
    torch = require("torch", "gsam")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # pickled objects, or not a pickle at all
        raise UserError(f"{FIELD}.{field}: {path} is not a tensors-only checkpoint, refused by weights-only loading: {_refusal(e)}") from None
    except (OSError, RuntimeError) as e:  # unreadable, or a broken torch zip
        raise UserError(f"{FIELD}.{field}: cannot read {path}: {_first_line(e)}") from None


def _autocast(device: str, dtype: str) -> Any:
    """SAM in half precision on a GPU, through autocast: its weights stay fp32 as published (its
    prompt code mixes in fp32 tensors); the CPU runs fp32. Grounding DINO always runs fp32, as
    the demo runs it: its decoder turns autocast off around fp32 layers fed half tensors."""
    if not device.startswith("cuda") or dtype not in ("bfloat16", "float16"):
        return nullcontext()
    torch = require("torch", "gsam")
    return torch.autocast("cuda", dtype=torch_dtype(dtype))


def build_grounding_dino(g: GSAMConfig, models_dir: str | None) -> Any:
    """SLConfig.fromfile + build_model, with our BERT, as Grounded-SAM's demo does."""
    require("groundingdino", "gsam")
    from groundingdino.models import build_model
    from groundingdino.util.slconfig import SLConfig

    from datagen.models import bert_compat

    path = config_file(g, models_dir)
    try:
        args = SLConfig.fromfile(str(path))
    except (OSError, SyntaxError) as e:
        raise UserError(f"{FIELD}.config_file: cannot read {path}: {_first_line(e)}") from None
    args.text_encoder_type = resolve_model(g.text_encoder, models_dir)
    # Gradient checkpointing only saves memory in a backward pass; inference has none.
    args.use_checkpoint = args.use_transformer_ckpt = False
    bert_compat.apply()  # what groundingdino's BERT wrapper needs from transformers 5, or one line
    return load_model("segment", g.text_encoder, lambda: build_model(args))


def load_grounding_dino(g: GSAMConfig, models_dir: str | None) -> Any:
    """The built model with the checkpoint's ['model'] weights, in eval mode (on the CPU)."""
    require("groundingdino", "gsam")
    from groundingdino.util.utils import clean_state_dict

    # The file first: a bad one fails before the seconds a build takes.
    path = resolve_file(g.checkpoint, models_dir)
    ckpt = read_weights("checkpoint", path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise UserError(f"{FIELD}.checkpoint: {path} has no 'model' state dict (Grounding DINO checkpoints hold {{'model': ...}})")
    state = clean_state_dict(ckpt["model"])
    model = build_grounding_dino(g, models_dir)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes that do not fit the config's model
        raise UserError(f"{FIELD}.checkpoint: {path} does not fit {FIELD}.config_file's model: {_first_line(e)}") from None
    if not set(state) & set(model.state_dict()):
        raise UserError(f"{FIELD}.checkpoint: {path} holds no weight of this Grounding DINO (another model's file?)")
    # strict=False as in the demo, which prints what it skipped: log it instead.
    if result.missing_keys or result.unexpected_keys:
        log.warning("%s: %d weights missing, %d unused", path, len(result.missing_keys), len(result.unexpected_keys))
    return model.eval()


def load_sam(g: GSAMConfig, models_dir: str | None) -> Any:
    """segment-anything's `Sam` of `sam_type` (or of `sam_encoder`'s size) with the checkpoint's weights."""
    sa = require("segment_anything", "gsam")
    path = resolve_file(g.sam_checkpoint, models_dir)
    state = read_weights("sam_checkpoint", path)
    if not isinstance(state, dict):
        raise UserError(f"{FIELD}.sam_checkpoint: {path} is not a state dict")
    if g.sam_encoder is None:
        sam = sa.sam_model_registry[g.sam_type](checkpoint=None)
    else:
        from segment_anything.build_sam import _build_sam

        e = g.sam_encoder
        sam = _build_sam(e.embed_dim, e.depth, e.num_heads, list(e.global_attn_indexes), checkpoint=None)
    size = f"sam_encoder {g.sam_encoder.model_dump()}" if g.sam_encoder else f"sam_type {g.sam_type}"
    try:
        sam.load_state_dict(state)  # strict, as segment-anything's own builder loads
    except RuntimeError as e:
        raise UserError(f"{FIELD}.sam_checkpoint: {path} does not fit {size}: {_first_line(e)}") from None
    return sam.eval()


def caption_token_columns(input_ids: np.ndarray, attention_mask: np.ndarray, special_ids: list[int]) -> list[list[int]]:
    """Per row, the logit columns of the caption's own tokens: not padding, and not the tokens
    groundingdino treats as delimiters ([CLS], [SEP], '.', '?')."""
    ids, mask = np.asarray(input_ids), np.asarray(attention_mask).astype(bool)
    own = mask & ~np.isin(ids, special_ids)
    return [np.flatnonzero(row).tolist() for row in own]


def caption_passes(shapes: list[tuple[int, ...]], captions: list[list[str]], per_pass: int) -> list[list[tuple[int, int]]]:
    """(image, caption index) pairs in model passes of at most `per_pass`, one caption per pair.

    The model takes one stacked image tensor, so a pass only mixes images whose resized shape
    matches (all of them when a run's images share a size).
    """
    groups: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for i, caps in enumerate(captions):
        groups.setdefault(tuple(shapes[i]), []).extend((i, j) for j in range(len(caps)))
    return [pairs[at : at + per_pass] for pairs in groups.values() for at in range(0, len(pairs), per_pass)]


class GSAMGrounder:
    """groundingdino-py's Grounding DINO: the best box per (image, caption)."""

    def __init__(self, model: Any, cfg: SegmentConfig, device: str) -> None:
        import groundingdino.datasets.transforms as T

        self.model, self.cfg, self.device = model.to(device), cfg, device
        # groundingdino's own inference preprocessing (util/inference.py): by default shorter side
        # 800, longer at most 1333; RandomResize with one size is deterministic.
        g = cfg.gsam
        self.transform = T.Compose(
            [T.RandomResize([g.image_size], max_size=g.max_image_size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        )

    @classmethod
    def load(cls, cfg: SegmentConfig, models_dir: str | None, device: str) -> GSAMGrounder:
        return cls(load_grounding_dino(cfg.gsam, models_dir), cfg, device)

    def preprocess(self, image: np.ndarray) -> Any:
        from PIL import Image

        tensor, _ = self.transform(Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB"), None)
        return tensor

    def detect(self, images: list[np.ndarray], captions: list[list[str]]) -> list[list[Detection | None]]:
        torch = require("torch", "gsam")
        tensors = [self.preprocess(im) for im in images]
        out: list[list[Detection | None]] = [[None] * len(caps) for caps in captions]
        for pairs in caption_passes([t.shape for t in tensors], captions, self.cfg.captions_per_pass):
            texts = [grounding_text(captions[i][j]) for i, j in pairs]
            batch = torch.stack([tensors[i] for i, _ in pairs])
            for (i, j), found in zip(pairs, self._pass(batch, texts, [images[i].shape[:2] for i, _ in pairs])):
                out[i][j] = found
        return out

    def _pass(self, batch: Any, texts: list[str], sizes: list[tuple[int, int]]) -> list[Detection | None]:
        torch = require("torch", "gsam")
        # The same call the model makes on `captions`, so the columns line up with its logits.
        tokens = self.model.tokenizer(texts, padding="longest", return_tensors="pt")
        with torch.inference_mode():
            pred = self.model(batch.to(self.device), captions=texts)
        probs = pred["pred_logits"].float().sigmoid().cpu().numpy()  # (pairs, queries, 256)
        boxes = pred["pred_boxes"].float().cpu().numpy()  # (pairs, queries, 4) cx cy w h in [0, 1]
        columns = caption_token_columns(tokens["input_ids"].numpy(), tokens["attention_mask"].numpy(), self.model.specical_tokens)
        found = []
        for row, ((height, width), cols) in enumerate(zip(sizes, columns)):
            cols = [c for c in cols if c < probs.shape[2]]  # past max_text_len the model has no column
            found.append(
                best_detection(
                    probs[row][:, cols], cxcywh_to_pixels(boxes[row], width, height), self.cfg.box_threshold, self.cfg.text_threshold
                )
            )
        return found


class GSAMSegmenter:
    """segment-anything's SamPredictor: each image encoded once, one mask per box."""

    def __init__(self, sam: Any, cfg: SegmentConfig, device: str) -> None:
        from segment_anything import SamPredictor

        self.predictor, self.cfg, self.device = SamPredictor(sam.to(device)), cfg, device

    @classmethod
    def load(cls, cfg: SegmentConfig, models_dir: str | None, device: str) -> GSAMSegmenter:
        return cls(load_sam(cfg.gsam, models_dir), cfg, device)

    def segment(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self._one(np.asarray(im, dtype=np.uint8), np.asarray(b, dtype=np.float32).reshape(-1, 4)) for im, b in zip(images, boxes)]

    def _one(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = require("torch", "gsam")
        height, width = image.shape[:2]
        if len(boxes) == 0:  # no prompt: skip the image encoder
            return np.zeros((0, height, width), dtype=bool), np.zeros((0,), dtype=np.float32)
        p = self.predictor
        with torch.inference_mode(), _autocast(self.device, self.cfg.dtype):
            p.set_image(image)
            prompts = p.transform.apply_boxes_torch(torch.as_tensor(boxes, device=p.device), (height, width))
            logits, iou, _ = p.predict_torch(None, None, boxes=prompts, multimask_output=False, return_logits=True)
        p.reset_image()  # drop the embedding: the next call brings another image
        masks = (logits[:, 0].float() > self.cfg.mask_threshold).cpu().numpy()
        return masks, iou[:, 0].float().cpu().numpy()


def load_gsam(cfg: SegmentConfig, models_dir: str | None, device: str | None = None) -> tuple[GSAMGrounder, GSAMSegmenter]:
    """Grounding DINO and SAM from `cfg.gsam`'s files; device None: `cfg.device` ('auto': the GPU if any)."""
    device = pick_device(device or cfg.device)
    return GSAMGrounder.load(cfg, models_dir, device), GSAMSegmenter.load(cfg, models_dir, device)
