"""FLUX.1 Kontext for SIGMA-GEN training: the pipeline's parts, a LoRA on its transformer, the
encoders of prompts and images, and the LoRA file diffusers' `load_lora_weights` reads.

The base weights load in the configured dtype (bf16 on a GPU) and stay frozen; the LoRA
weights are trained in fp32 (`cast_training_params`), the usual diffusers recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datagen.errors import UserError
from datagen.models.hub import load_model, require, resolve_model, torch_dtype

DEFAULT_LORA_TARGETS = (
    "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0",
    "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out",
    "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2",
    "proj_mlp",
)  # fmt: skip
LORA_FILE = "pytorch_lora_weights.safetensors"


@dataclass
class LoraSpec:
    rank: int = 128
    alpha: int = 128
    targets: tuple[str, ...] = DEFAULT_LORA_TARGETS

    def problem(self) -> str | None:
        if self.rank < 1:
            return f"lora.rank: {self.rank}: must be at least 1"
        if self.alpha <= 0:
            return f"lora.alpha: {self.alpha}: must be positive"
        if not self.targets:
            return "lora.targets: name at least one module"
        return None


def load_kontext_pipeline(model: str, models_dir: str | None, dtype: str, revision: str | None = None) -> Any:
    """The whole FLUX.1 Kontext pipeline (transformer, VAE, CLIP and T5 with their tokenizers);
    anything else is refused in one line."""
    diffusers = require("diffusers", "train")
    # Full prompts run past CLIP's 77 tokens by design (T5 reads them whole): no warning per batch.
    require("transformers").logging.set_verbosity_error()
    path = resolve_model(model, models_dir)
    kw: dict[str, Any] = {"revision": revision}
    if dtype != "auto":
        kw["dtype"] = torch_dtype(dtype)
    pipe = load_model("train", model, lambda: diffusers.DiffusionPipeline.from_pretrained(path, **kw))
    if not isinstance(pipe, diffusers.FluxKontextPipeline):
        raise UserError(f"train.model {model!r}: a {type(pipe).__name__}, not a FLUX.1 Kontext pipeline")
    return pipe


def add_lora(transformer: Any, spec: LoraSpec) -> list[Any]:
    """Freeze the transformer, add the LoRA, cast its weights to fp32; returns the trainable ones."""
    peft = require("peft", "train")
    from diffusers.training_utils import cast_training_params

    problem = spec.problem()
    if problem:
        raise UserError(problem)
    transformer.requires_grad_(False)
    names = {n for n, _ in transformer.named_modules()}
    missing = [t for t in spec.targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise UserError(f"lora.targets: no module named {missing[0]!r} in the transformer")
    config = peft.LoraConfig(r=spec.rank, lora_alpha=spec.alpha, init_lora_weights="gaussian", target_modules=list(spec.targets))
    transformer.add_adapter(config)
    cast_training_params(transformer, dtype=require("torch").float32)
    return [p for p in transformer.parameters() if p.requires_grad]


def save_lora(pipe_cls: Any, transformer: Any, out: Path, state_dict: dict[str, Any] | None = None) -> Path:
    """The LoRA alone, as the safetensors file `pipe.load_lora_weights(out)` reads. `state_dict`:
    the LoRA tensors gathered from a sharded (FSDP) model, whose own parameters are shards."""
    peft_utils = require("peft.utils", "train")
    from diffusers.utils import convert_state_dict_to_diffusers

    state = convert_state_dict_to_diffusers(peft_utils.get_peft_model_state_dict(transformer, state_dict=state_dict))
    out.mkdir(parents=True, exist_ok=True)
    pipe_cls.save_lora_weights(out, transformer_lora_layers=state, weight_name=LORA_FILE)
    return out / LORA_FILE


def encode_images(vae: Any, images: Any) -> Any:
    """(B, 3, H, W) images in [-1, 1] -> scaled VAE latents (the distribution's mode: no noise)."""
    latents = vae.encode(images.to(vae.device, vae.dtype)).latent_dist.mode()
    return (latents - vae.config.shift_factor) * vae.config.scaling_factor


def encode_prompts(pipe: Any, prompts: list[str], max_sequence_length: int) -> tuple[Any, Any, Any]:
    """T5 token embeddings, CLIP pooled embedding and text ids, as the pipeline makes them."""
    torch = require("torch")
    with torch.no_grad():
        embeds, pooled, text_ids = pipe.encode_prompt(
            prompt=prompts, prompt_2=None, device=pipe.transformer.device, max_sequence_length=max_sequence_length
        )
    return embeds, pooled, text_ids
