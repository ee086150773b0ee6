"""SIGMA-GEN sampling: FLUX.1 Kontext (+ a trained LoRA) denoises the target while attending to
the identity stack I_S and the spatial control I_C, one transformer forward per step over the
same unified sequence the trainer uses (datagen.train.tokens)."""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.models.hub import require
from datagen.train.defaults import INFERENCE_GUIDANCE, INFERENCE_STEPS
from datagen.train.model import encode_images, encode_prompts
from datagen.train.tokens import pack, sequence, unpack


def shift_mu(seq_len: int, scheduler: Any) -> float:
    """FLUX's resolution-dependent timestep shift: linear in the number of image tokens."""
    c = scheduler.config
    base_len, max_len = c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096)
    base_shift, max_shift = c.get("base_shift", 0.5), c.get("max_shift", 1.15)
    slope = (max_shift - base_shift) / (max_len - base_len)
    return seq_len * slope + base_shift - slope * base_len


def to_model_image(image: np.ndarray) -> Any:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [-1, 1]."""
    torch = require("torch")
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def generate(
    pipe: Any, prompt: str, control: np.ndarray, identities: np.ndarray, seed: int,
    steps: int = INFERENCE_STEPS, guidance: float = INFERENCE_GUIDANCE, max_sequence_length: int = 512,
) -> np.ndarray:  # fmt: skip
    """The generated (H, W, 3) uint8 image for a control image I_C (H, W, 3) and identity stack
    I_S (N*s, s, 3), both uint8; the same seed gives the same image."""
    torch = require("torch")
    transformer, vae, scheduler = pipe.transformer, pipe.vae, pipe.scheduler
    device, dtype = transformer.device, transformer.dtype
    with torch.no_grad():
        z_c = encode_images(vae, to_model_image(control)).to(dtype)
        z_s = encode_images(vae, to_model_image(identities)).to(dtype)
        embeds, pooled, text_ids = encode_prompts(pipe, [prompt], max_sequence_length)
        h, w = z_c.shape[-2:]
        # The initial noise is drawn on the CPU from the seed: the same image on any device.
        x = torch.randn((1, z_c.shape[1], h, w), generator=torch.Generator().manual_seed(seed)).to(device, dtype)
        sigmas = np.linspace(1.0, 1.0 / steps, steps)
        scheduler.set_timesteps(sigmas=sigmas, device=device, mu=shift_mu((h // 2) * (w // 2), scheduler))
        scheduler.set_begin_index(0)
        latents = pack(x)
        g = torch.full((1,), guidance, device=device, dtype=dtype)
        for t in scheduler.timesteps:
            hidden, ids, n_x = sequence(unpack(latents, h, w), z_s, z_c)
            pred = transformer(
                hidden_states=hidden, encoder_hidden_states=embeds.to(dtype), pooled_projections=pooled.to(dtype),
                timestep=(t / 1000).expand(1).to(dtype), img_ids=ids, txt_ids=text_ids, guidance=g, return_dict=False,
            )[0][:, :n_x]  # fmt: skip
            latents = scheduler.step(pred, t, latents, return_dict=False)[0]
        z = unpack(latents, h, w) / vae.config.scaling_factor + vae.config.shift_factor
        image = vae.decode(z.to(vae.dtype), return_dict=False)[0]
    out = ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return out
