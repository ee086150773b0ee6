"""GPU training benchmark: seconds per SIGMA-GEN LoRA step on the full-size FLUX.1 Kontext transformer.

    python bench/gpu_train.py                 # one H100; writes bench/results/gpu_train.json
    python bench/gpu_train.py --tiny --out /tmp/x.json   # CPU smoke test of the same code

Nothing is downloaded: FluxTransformer2DModel is built from the published FLUX.1 [dev] config
(Kontext shares it: 19 double + 38 single blocks, 24 heads x 128; 11.90B parameters, and 433.3M
in the r128 LoRA, counted on the meta device) with random weights, so its compute and memory
equal the real model's. As datagen.train does it: bf16 frozen base, LoRA
r = alpha = 128 on DEFAULT_LORA_TARGETS (add_lora, fp32 LoRA weights), gradient checkpointing,
Prodigy (loop.make_optimizer), gradient clipping at 1.0, batch 1. One step: forward over the
SIGMA-GEN sequence (tokens.sequence: 512x512 target -> 1024 tokens, 4 identities of 512x512
stacked -> 4096, control -> 1024, plus 512 T5 text tokens) + flow loss + backward + optimizer step.
The VAE and the text encoders are skipped (their latents and embeddings are random tensors of the
right shapes): they run under no_grad, once per sample, and are not what this measures.
Warm-up steps, then timed steps with torch.cuda.synchronize; peak torch.cuda.max_memory_allocated.
Goal: <= 1.5 s per step on one H100. --tiny: a toy transformer on the CPU in float32.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import fill_defaults, results_path, write_json  # bench/, the script's dir
from gpu_common import bench_device, bench_dtype, build_on, device_name, n_params, peak_gib, reset_peak, timed
from model_configs import FLUX_TRANSFORMER, FLUX_TRANSFORMER_TINY

GOAL_S_PER_STEP = 1.5

FULL = FLUX_TRANSFORMER  # FLUX.1 Kontext's transformer is FLUX.1 [dev]'s
TINY = {**FULL, **FLUX_TRANSFORMER_TINY}

# SIGMA-GEN's training shapes (configs/train_sigma.yaml), then the toy ones --tiny uses.
DEFAULTS = {"resolution": 512, "identity_size": 512, "subjects": 4, "text_tokens": 512, "rank": 128,
            "warmup": 2, "steps": 5}  # fmt: skip
TINY_DEFAULTS = {"resolution": 32, "identity_size": 32, "subjects": 4, "text_tokens": 16, "rank": 4,
                 "warmup": 1, "steps": 2}  # fmt: skip
VAE_FACTOR, LATENT_CHANNELS = 8, 16  # FLUX's VAE: 8x down, 16 channels


def inputs(args, device: torch.device, spec: dict, generator: torch.Generator) -> dict:
    """Random latents and text embeddings of the training shapes (VAE and text encoders skipped)."""
    r, s = args.resolution // VAE_FACTOR, args.identity_size // VAE_FACTOR

    def rand(*shape):
        return torch.randn(*shape, generator=generator).to(device)

    return {"x0": rand(1, LATENT_CHANNELS, r, r), "noise": rand(1, LATENT_CHANNELS, r, r),
            "z_s": rand(1, LATENT_CHANNELS, args.subjects * s, s), "z_c": rand(1, LATENT_CHANNELS, r, r),
            "embeds": rand(1, args.text_tokens, spec["joint_attention_dim"]),
            "pooled": rand(1, spec["pooled_projection_dim"]),
            "text_ids": torch.zeros(args.text_tokens, 3, device=device)}  # fmt: skip


def train_step(model, optimizer, params, x: dict, generator: torch.Generator, guidance: float) -> tuple[float, int]:
    """One step as datagen.train.step.step_loss + loop.train run it (after the encoders)."""
    from datagen.train.step import sample_sigmas
    from datagen.train.tokens import flow_loss, noisy, sequence

    dtype, device = model.dtype, x["x0"].device
    sigma = sample_sigmas(1, generator).to(device)
    hidden, ids, n_x = sequence(noisy(x["x0"], x["noise"], sigma), x["z_s"], x["z_c"])
    pred = model(
        hidden_states=hidden.to(dtype), encoder_hidden_states=x["embeds"].to(dtype),
        pooled_projections=x["pooled"].to(dtype), timestep=sigma.to(dtype), img_ids=ids, txt_ids=x["text_ids"],
        guidance=torch.full((1,), guidance, device=device, dtype=dtype), return_dict=False,
    )[0]  # fmt: skip
    loss = flow_loss(pred, x["x0"], x["noise"], n_x)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach()), hidden.shape[1] + x["embeds"].shape[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for k, v in DEFAULTS.items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=int, help=f"default {v} (--tiny: {TINY_DEFAULTS[k]})")
    ap.add_argument("--out", type=Path, help="default bench/results/gpu_train.json")
    ap.add_argument("--tiny", action="store_true", help="a toy transformer on the CPU: a smoke test, not a benchmark")
    args = ap.parse_args(argv)
    fill_defaults(args, DEFAULTS, TINY_DEFAULTS, args.tiny)
    for k in ("resolution", "identity_size"):
        if getattr(args, k) % 16:
            ap.error(f"--{k.replace('_', '-')}: {getattr(args, k)} must be a multiple of 16 (VAE 8x, then 2x2 patches)")
    args.out = args.out or results_path("gpu_train", args.tiny)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = bench_device(args.tiny, "training benchmark")
    import diffusers
    import peft

    from datagen.train.config import OptimizerConfig
    from datagen.train.loop import make_optimizer
    from datagen.train.model import DEFAULT_LORA_TARGETS, LoraSpec, add_lora

    dtype = bench_dtype(device)
    spec = TINY if args.tiny else FULL
    torch.manual_seed(0)
    with build_on(device, dtype):
        model = diffusers.FluxTransformer2DModel(**spec)
    base_params = n_params(model)
    params = add_lora(model, LoraSpec(rank=args.rank, alpha=args.rank, targets=DEFAULT_LORA_TARGETS))
    model.enable_gradient_checkpointing()
    model.train()
    optimizer = make_optimizer(params, OptimizerConfig())
    generator = torch.Generator().manual_seed(0)
    x = inputs(args, device, spec, generator)

    losses, times = [], []
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            reset_peak(device)
        step_s, (loss, tokens) = timed(lambda: train_step(model, optimizer, params, x, generator, guidance=1.0), device)
        if i >= args.warmup:
            times.append(step_s)
        losses.append(loss)
        print(f"step {i}{' (warm-up)' if i < args.warmup else ''}: {step_s:.3f} s, loss {loss:.4f}", flush=True)
    s_per_step = sum(times) / len(times)
    r, s = args.resolution // VAE_FACTOR // 2, args.identity_size // VAE_FACTOR // 2
    report = {
        "device": device_name(device),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "peft": peft.__version__},
        "dtype": str(dtype).removeprefix("torch."),
        "tiny": args.tiny,
        "note": "random weights; FluxTransformer2DModel from the published FLUX.1 [dev] config (Kontext's), so the "
                "compute equals the real model's; VAE and text encoders skipped (random latents and T5/CLIP "
                "embeddings of the right shapes)" + ("; TINY toy config: a smoke test, the figures mean nothing" if args.tiny else ""),
        "config": spec,
        "params": {"base": base_params, "lora": sum(p.numel() for p in params), "lora_tensors": len(params)},
        "setup": {"batch_size": 1, "lora_rank": args.rank, "lora_alpha": args.rank, "lora_targets": list(DEFAULT_LORA_TARGETS),
                  "gradient_checkpointing": True, "optimizer": "prodigy", "max_grad_norm": 1.0,
                  "resolution": args.resolution, "identity_size": args.identity_size, "subjects": args.subjects},
        "tokens": {"text": args.text_tokens, "target": r * r, "identities": args.subjects * s * s, "control": r * r, "total": tokens},
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "step_times_s": [float(f"{t:.4g}") for t in times],
        "s_per_step": float(f"{s_per_step:.4g}"),
        "peak_memory_gib": peak_gib(device),
        "losses": [float(f"{v:.4g}") for v in losses],
        "goal": {"goal": f"<= {GOAL_S_PER_STEP} s per step on one H100 (batch 1, the SIGMA-GEN sequence)",
                 "measured": float(f"{s_per_step:.4g}"), "met": s_per_step <= GOAL_S_PER_STEP,
                 "comparable": not args.tiny and "H100" in device_name(device)
                 and (args.resolution, args.identity_size, args.subjects, args.text_tokens, args.rank) == (512, 512, 4, 512, 128)},
    }  # fmt: skip
    write_json(args.out, report)
    print(json.dumps(report["goal"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
