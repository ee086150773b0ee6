"""One SIGMA-GEN training step's loss: encode, noise, one forward over the unified sequence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datagen.models.hub import require
from datagen.train.model import encode_images, encode_prompts
from datagen.train.tokens import flow_loss, noisy, sequence


@dataclass
class Batch:
    """Images in [-1, 1]: target and control (B, 3, H, W), identity stacks (B, 3, N*s, s)."""

    target: Any
    control: Any
    identities: Any
    prompts: list[str]


def sample_sigmas(batch_size: int, generator: Any, mean: float = 0.0, std: float = 1.0) -> Any:
    """Noise levels from a logit-normal (SD3's and diffusers' FLUX recipe): mid levels most often."""
    torch = require("torch")
    return torch.sigmoid(mean + std * torch.randn(batch_size, generator=generator))


def step_loss(
    pipe: Any, batch: Batch, generator: Any, guidance: float, max_sequence_length: int, forward: Any = None
) -> Any:
    """The flow-matching loss of one batch; gradients reach only the trainable (LoRA) weights.

    `forward`: what to call for the transformer (a DDP/FSDP wrapper of `pipe.transformer`)."""
    torch = require("torch")
    transformer = pipe.transformer
    forward = forward or transformer
    with torch.no_grad():
        x0 = encode_images(pipe.vae, batch.target)
        z_c = encode_images(pipe.vae, batch.control)
        z_s = encode_images(pipe.vae, batch.identities)
        embeds, pooled, text_ids = encode_prompts(pipe, batch.prompts, max_sequence_length)
    # Noise drawn on the CPU from the step's generator: the same step gives the same loss on any device.
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    sigma = sample_sigmas(x0.shape[0], generator).to(x0.device)
    hidden, ids, n_x = sequence(noisy(x0, noise, sigma.to(x0.dtype)), z_s, z_c)
    dtype = transformer.dtype
    pred = forward(
        hidden_states=hidden.to(dtype), encoder_hidden_states=embeds.to(dtype), pooled_projections=pooled.to(dtype),
        timestep=sigma.to(dtype), img_ids=ids, txt_ids=text_ids,
        guidance=torch.full((x0.shape[0],), guidance, device=x0.device, dtype=dtype), return_dict=False,
    )[0]  # fmt: skip
    return flow_loss(pred, x0, noise, n_x)
