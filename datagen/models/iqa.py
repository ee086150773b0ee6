"""No-reference image quality for `datagen eval`: CLIP-IQA and MUSIQ, the SIGMA-GEN paper's
quality columns.

`ClipIqa` is CLIP-IQA's antonym-prompt method (Wang et al., AAAI 2023) on a transformers
`CLIPModel`: the softmax of 100 x the image's cosine with "Good photo." and "Bad photo.", the
probability of the first. pyiqa's own `clipiqa` needs the sdist-only openai-clip package and
an RN50 CLIP without positional embedding, so absolute figures differ from pyiqa's.

`Musiq` is pyiqa's MUSIQ architecture with the KonIQ-10k checkpoint (MOS on KonIQ's scale,
higher is better). The checkpoint is a local file, never downloaded, and is read with
`torch.load(weights_only=True)`: pyiqa's own loader unpickles arbitrary objects. pyiqa is the
`eval` extra, imported on first use.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from datagen.eval.config import MetricModel
from datagen.errors import UserError
from datagen.models.hub import load_model, pick_device, pretrained_kwargs, require, resolve_model, torch_dtype
from datagen.models.siglip import load_processor

# CLIP-IQA's default antonym pair and CLIP's trained logit scale (exp(4.6052) = 100).
PROMPTS = ("Good photo.", "Bad photo.")
LOGIT_SCALE = 100.0
# Architecture keywords written beside a checkpoint by `datagen tiny-models`; the published
# KonIQ checkpoint needs none (pyiqa's defaults are its architecture).
MUSIQ_ARCH_FILE = "musiq.json"


class ClipIqa:
    def __init__(self, model: Any, processor: Any, device: str, batch_size: int = 8) -> None:
        self.model, self.processor, self.device, self.batch_size = model, processor, device, batch_size
        self._prompts: np.ndarray | None = None

    @classmethod
    def load(cls, cfg: MetricModel, models_dir: str | None) -> ClipIqa:
        tf = require("transformers", "eval")
        path = resolve_model(cfg.model, models_dir)
        stage = "metrics.clip_iqa"
        model = load_model(stage, cfg.model, lambda: tf.CLIPModel.from_pretrained(path, **pretrained_kwargs(cfg)))
        processor = load_processor(stage, cfg, path)
        device = pick_device(cfg.device)
        return cls(model.to(device).eval(), processor, device, cfg.batch_size)

    def prompt_embeddings(self) -> np.ndarray:
        """(2, D) unit embeddings of PROMPTS, computed once."""
        if self._prompts is None:
            torch = require("torch")
            tokens = self.processor(text=list(PROMPTS), padding=True, return_tensors="pt")
            with torch.inference_mode():
                out = self.model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()})
            self._prompts = torch.nn.functional.normalize(out.pooler_output.float(), dim=-1).cpu().numpy()
        return self._prompts

    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        """(N, 2): softmax over (good, bad) of 100 x cosine, per uint8 RGB image."""
        torch = require("torch")
        prompts = torch.from_numpy(self.prompt_embeddings())
        chunks = []
        for at in range(0, len(images), self.batch_size):
            pixels = self.processor(images=images[at : at + self.batch_size], return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                out = self.model.get_image_features(pixel_values=pixels.to(self.device, self.model.dtype))
            embeds = torch.nn.functional.normalize(out.pooler_output.float(), dim=-1).cpu()
            chunks.append((LOGIT_SCALE * embeds @ prompts.T).softmax(dim=-1).double().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, len(PROMPTS)))

    def score(self, images: list[np.ndarray]) -> list[float]:
        """CLIP-IQA per image: the probability of "Good photo.", in [0, 1]."""
        return [float(p) for p in self.probabilities(images)[:, 0]]


def musiq_file(model: str, models_dir: str | None) -> Path:
    """The checkpoint file: models_dir/<model> when that is a file, else <model> as a path."""
    if models_dir and not Path(model).expanduser().is_absolute():
        local = Path(models_dir).expanduser() / model
        if local.is_file():
            return local
    path = Path(model).expanduser()
    if not path.is_file():
        where = f"under models_dir ({models_dir}) or " if models_dir else ""
        raise UserError(
            f"metrics.musiq: checkpoint {model!r} is not a file {where}at that path; it is pyiqa's "
            "musiq_koniq_ckpt-e95806b9.pth, which datagen never downloads"
        )
    return path


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else e.__class__.__name__)[:300]


def musiq_weights(path: Path) -> dict[str, Any]:
    """The checkpoint's state dict, tensors only: safetensors, or torch.load(weights_only=True)."""
    torch = require("torch", "eval")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UserError(f"metrics.musiq: {path} is not a tensors-only checkpoint: {_first_line(e)}") from None
    except (OSError, RuntimeError) as e:
        raise UserError(f"metrics.musiq: cannot read {path}: {_first_line(e)}") from None
    if isinstance(state, dict) and isinstance(state.get("params"), dict):
        state = state["params"]  # pyiqa's trainer saves {"params": state_dict}
    if not isinstance(state, dict):
        raise UserError(f"metrics.musiq: {path} holds no state dict")
    # Weights saved from DataParallel carry a "module." prefix, as pyiqa's clean_state_dict strips.
    return {k.removeprefix("module."): v for k, v in state.items()}


def musiq_arch_kwargs(path: Path) -> dict[str, Any]:
    """MUSIQ(...) keywords from musiq.json beside the checkpoint; {} when there is none."""
    arch = path.parent / MUSIQ_ARCH_FILE
    if not arch.is_file():
        return {}
    try:
        kwargs = json.loads(arch.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"metrics.musiq: {arch}: not JSON: {e}") from None
    if not isinstance(kwargs, dict):
        raise UserError(f"metrics.musiq: {arch}: expected an object of MUSIQ keyword arguments")
    # Never let the file point pyiqa at a download or at its unpickling loader.
    return {k: v for k, v in kwargs.items() if k not in ("pretrained", "pretrained_model_path")}


class Musiq:
    def __init__(self, model: Any, device: str, dtype: Any, batch_size: int = 8) -> None:
        self.model, self.device, self.dtype, self.batch_size = model, device, dtype, batch_size

    @classmethod
    def load(cls, cfg: MetricModel, models_dir: str | None) -> Musiq:
        arch = require("pyiqa.archs.musiq_arch", "eval")
        path = musiq_file(cfg.model, models_dir)
        kwargs = musiq_arch_kwargs(path)
        try:
            # pretrained=False: pyiqa would otherwise download its AVA weights.
            model = arch.MUSIQ(**kwargs, pretrained=False, pretrained_model_path=None)
        except TypeError as e:
            raise UserError(f"metrics.musiq: {path.parent / MUSIQ_ARCH_FILE}: {_first_line(e)}") from None
        try:
            model.load_state_dict(musiq_weights(path), strict=True)
        except RuntimeError as e:  # missing or unexpected keys, other shapes: another architecture
            detail = " ".join(ln.strip() for ln in str(e).splitlines()[:2])[:300]
            raise UserError(f"metrics.musiq: {path} does not fit pyiqa's MUSIQ{' of ' + str(kwargs) if kwargs else ''}: {detail}") from None
        dtype = torch_dtype("float32" if cfg.dtype == "auto" else cfg.dtype)
        device = pick_device(cfg.device)
        return cls(model.to(device, dtype).eval(), device, dtype, cfg.batch_size)

    def score(self, images: list[np.ndarray]) -> list[float]:
        """MUSIQ per uint8 RGB image: MOS on KonIQ-10k's scale (~0-100, higher is better).

        The model takes [0, 1] tensors and does MUSIQ's multi-scale patching itself; a batch
        holds images of one size, so consecutive images of the same shape run together.
        """
        torch = require("torch")
        out: list[float] = []
        at = 0
        while at < len(images):
            end = at + 1
            while end < len(images) and end - at < self.batch_size and images[end].shape == images[at].shape:
                end += 1
            batch = np.stack([np.asarray(im, np.uint8) for im in images[at:end]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device, self.dtype) / 255.0
            with torch.inference_mode():
                mos = self.model(x)
            out += [float(v) for v in mos.float().reshape(-1).cpu()]
            at = end
        return out


__all__ = ["LOGIT_SCALE", "MUSIQ_ARCH_FILE", "PROMPTS", "ClipIqa", "Musiq", "musiq_file"]
