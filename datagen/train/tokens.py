"""SIGMA-GEN's token sequence on FLUX.1 Kontext, and its flow-matching loss.

One unified attention over [text P, noisy target X, identities I_S, spatial control I_C]
(OminiControl style): `hidden_states = cat(pack(x_t), pack(z_S), pack(z_C))`. Positions (RoPE
ids, one row of (frame, row, column) per token): I_C takes exactly X's positions, so each control
token sits on the pixel it controls; I_S takes the same scheme with the frame set to 1, as
Kontext marks its context image. The loss reads only the first n_x tokens: the conditions are
inputs, never targets.
"""

from __future__ import annotations

from typing import Any

from datagen.models.hub import require


def pack(latents: Any) -> Any:
    """(B, C, H, W) latents -> (B, H/2 * W/2, 4C) tokens: 2x2 patches, row-major."""
    b, c, h, w = latents.shape
    if h % 2 or w % 2:
        raise ValueError(f"latent size {h}x{w} must be even to pack 2x2 patches")
    x = latents.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: Any, h: int, w: int) -> Any:
    """The inverse of `pack` for (H, W) latents."""
    b, n, d = tokens.shape
    c = d // 4
    x = tokens.reshape(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h, w)


def positions(h: int, w: int, frame: int = 0) -> Any:
    """(h/2 * w/2, 3) RoPE ids of packed (h, w) latents: (frame, row, column) per token."""
    torch = require("torch")
    rows = torch.arange(h // 2).repeat_interleave(w // 2)
    cols = torch.arange(w // 2).repeat(h // 2)
    return torch.stack([torch.full_like(rows, frame), rows, cols], dim=1).float()


def sequence(x_t: Any, z_s: Any, z_c: Any) -> tuple[Any, Any, int]:
    """Packed tokens, their ids and n_x for a noisy target, the identity stack and the control."""
    torch = require("torch")
    (h, w), (hs, ws) = x_t.shape[-2:], z_s.shape[-2:]
    if z_c.shape[-2:] != (h, w):
        raise ValueError(f"control latents {tuple(z_c.shape[-2:])} must match the target's {(h, w)}")
    hidden = torch.cat([pack(x_t), pack(z_s), pack(z_c)], dim=1)
    x_ids = positions(h, w)
    ids = torch.cat([x_ids, positions(hs, ws, frame=1), x_ids], dim=0).to(x_t.device)
    return hidden, ids, x_ids.shape[0]


def noisy(x0: Any, noise: Any, sigma: Any) -> Any:
    """Rectified flow: x_t = (1 - sigma) x0 + sigma * noise, sigma per sample in [0, 1]."""
    s = sigma.reshape(-1, *([1] * (x0.ndim - 1)))
    return (1.0 - s) * x0 + s * noise


def flow_loss(prediction: Any, x0: Any, noise: Any, n_x: int, weights: Any | None = None) -> Any:
    """Mean squared error of the velocity (noise - x0) on the target's tokens only.

    prediction: (B, L, D) transformer output over the whole sequence; x0, noise: (B, C, H, W)."""
    torch = require("torch")
    target = pack(noise - x0)
    err = (prediction[:, :n_x].float() - target.float()) ** 2
    per_sample = err.reshape(err.shape[0], -1).mean(dim=1)
    if weights is not None:
        per_sample = per_sample * weights.float()
    return torch.mean(per_sample)
