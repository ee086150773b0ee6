"""diffusers pipelines for t2i (FLUX.1 [dev], or any text-to-image pipeline) and repose
(FLUX.1 Kontext): loading by id or path, placement, per-item seeded generators, and calls.

Each image of a batch gets its own `torch.Generator`, so its initial noise (and so the image)
does not depend on what else is in the batch.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from datagen.config import DiffusionConfig
from datagen.errors import UserError
from datagen.models.hub import load_model, pick_device, require, resolve_model, torch_dtype


def _load(stage: str, cfg: Any, models_dir: str | None, cls: Any) -> Any:
    path = resolve_model(cfg.model, models_dir)
    kw: dict[str, Any] = {"revision": cfg.revision}
    if cfg.dtype != "auto":
        kw["dtype"] = torch_dtype(cfg.dtype)
    if cfg.trust_remote_code:  # custom pipelines only; off unless a config says so
        kw["trust_remote_code"] = True
    return load_model(stage, cfg.model, lambda: cls.from_pretrained(path, **kw))


def place(pipe: Any, cfg: DiffusionConfig) -> str:
    """Move to the device (or set up CPU offload) and optionally compile; returns the device."""
    device = pick_device(cfg.device)
    if cfg.cpu_offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if cfg.compile:
        torch = require("torch")
        pipe.transformer = torch.compile(pipe.transformer)
    pipe.set_progress_bar_config(disable=True)
    return device


def load_text_to_image(cfg: Any, models_dir: str | None, stage: str = "t2i") -> Any:
    diffusers = require("diffusers", "diffusion")
    return _load(stage, cfg, models_dir, diffusers.AutoPipelineForText2Image)


def load_kontext(cfg: Any, models_dir: str | None, stage: str = "repose") -> Any:
    diffusers = require("diffusers", "diffusion")
    pipe = _load(stage, cfg, models_dir, diffusers.DiffusionPipeline)
    if not isinstance(pipe, diffusers.FluxKontextPipeline):
        raise UserError(f"stages.{stage}: model {cfg.model!r} is a {type(pipe).__name__}, not a FLUX.1 Kontext pipeline")
    return pipe


def pipeline_settings(cfg: Any, pipe: Any, **extra: Any) -> dict[str, Any]:
    """What `generation.settings` records for a diffusers stage."""
    return {
        "backend": cfg.backend, "model": cfg.model, "revision": cfg.revision, "dtype": cfg.dtype,
        "pipeline": type(pipe).__name__ if pipe is not None else None,
        "steps": cfg.steps, "guidance": cfg.guidance, "max_sequence_length": cfg.max_sequence_length, **extra,
    }  # fmt: skip


def generators(seeds: list[int], device: str) -> list[Any]:
    torch = require("torch")
    # CPU generators: the same noise on any GPU model, and on the CPU (diffusers moves it over).
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def accepts(pipe: Any, name: str) -> bool:
    return name in inspect.signature(pipe.__call__).parameters


def to_uint8(images: np.ndarray) -> np.ndarray:
    """diffusers' float images in [0, 1] (N, H, W, 3) to uint8."""
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def text_to_image(pipe: Any, cfg: Any, prompts: list[str], seeds: list[int], width: int, height: int, device: str) -> np.ndarray:
    kw: dict[str, Any] = {
        "prompt": prompts,
        "height": height,
        "width": width,
        "num_inference_steps": cfg.steps,
        "guidance_scale": cfg.guidance,
        "generator": generators(seeds, device),
        "output_type": "np",
    }
    if accepts(pipe, "max_sequence_length"):
        kw["max_sequence_length"] = cfg.max_sequence_length
    return to_uint8(pipe(**kw).images)


def edit_images(pipe: Any, cfg: Any, images: list[np.ndarray], prompts: list[str], seeds: list[int], device: str) -> np.ndarray:
    """FLUX.1 Kontext edits of square inputs, output at the same size."""
    from PIL import Image

    size = images[0].shape[0]
    out = pipe(
        image=[Image.fromarray(im) for im in images],
        prompt=prompts,
        height=size,
        width=size,
        num_inference_steps=cfg.steps,
        guidance_scale=cfg.guidance,
        generator=generators(seeds, device),
        output_type="np",
        max_sequence_length=cfg.max_sequence_length,
        max_area=size * size,  # else Kontext resizes to about a megapixel
        _auto_resize=False,  # keep the identity size rather than snap to Kontext's preferred ones
    ).images
    return to_uint8(out)
