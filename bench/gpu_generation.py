"""GPU generation benchmark: FLUX.1-dev, FLUX.1 Kontext and Qwen3-8B at their published sizes.

    python bench/gpu_generation.py                        # one H100; writes bench/results/gpu_generation.json
    python bench/gpu_generation.py --only flux,llm --batch-sizes 1,2 --llm-batch-sizes 8
    python bench/gpu_generation.py --tiny                 # CPU smoke test, bench/results/gpu_generation_tiny.json

Nothing is downloaded: every model is built from its published config with random weights, so
its compute and memory equal the real model's (its outputs are noise). bf16 on the GPU, SDPA
attention, a warm-up before each timing and torch.cuda.synchronize around it. Per batch size:
- flux: seconds per image (default 1024x1024, 28 steps): T5-XXL (512 tokens) and CLIP-L text
  encoders once per prompt, 28 FluxTransformer2DModel forwards on (B, 4096, 64) packed
  latents, one VAE decode;
- kontext: seconds per identity (repose, default 512x512): VAE encode of the input image, the
  text encoders, 28 forwards on target plus context-image tokens (B, 2 x 1024, 64), VAE decode;
- llm: Qwen3-8B `generate` of exactly 300 new tokens after ~300 prompt tokens: tokens/s and
  seconds per prompt.
Then each model's best batch size and `goals`: FLUX.1-dev <= 4.0 s per image, Kontext <= 2.0 s
per identity, LLM seconds per prompt an order of magnitude below FLUX's seconds per image. A
batch size that runs out of GPU memory is recorded as "oom". --tiny runs toy configs through the
same code in seconds (on the CPU in float32; on the GPU in bf16 where there is one) and marks the
JSON "tiny": true.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch
from common import fill_defaults, int_list, results_path, toy_spec, write_json  # bench/, the script's dir
from gpu_common import (
    bench_device, bench_dtype, best, build_on, device_name, free, n_params, peak_gib, per_batch, reset_peak, sig, timed,
)  # fmt: skip
from model_configs import GENERATION, GENERATION_TINY

# Settings: full size, then what --tiny changes when the flag is not given explicitly.
DEFAULTS = {"steps": 28, "size": 1024, "identity_size": 512, "prompt_tokens": 300, "new_tokens": 300}
TINY_DEFAULTS = {"steps": 2, "size": 64, "identity_size": 32, "prompt_tokens": 16, "new_tokens": 8}

# Guidance as configs/sigma_set27k.yaml runs them (t2i 3.5, repose 2.5); it does not change compute.
FLUX_GUIDANCE, KONTEXT_GUIDANCE = 3.5, 2.5
GOAL_FLUX_S, GOAL_KONTEXT_S = 4.0, 2.0
# "Far below t2i, never the bottleneck", read as: at most a tenth of FLUX's seconds per image.
GOAL_LLM_SHARE = 0.1


def specs(tiny: bool) -> dict:
    return toy_spec(GENERATION, GENERATION_TINY) if tiny else GENERATION


# ---------------------------------------------------------------- FLUX latents, as FluxPipeline


def vae_scale(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def pack(z: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) latents -> (B, H/2 * W/2, 4C) tokens (FluxPipeline._pack_latents)."""
    b, c, h, w = z.shape
    z = z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return z.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(x: torch.Tensor, grid: int) -> torch.Tensor:
    """Inverse of pack for a square grid x grid latent (FluxPipeline._unpack_latents)."""
    b, _, c = x.shape
    h = grid // 2
    x = x.view(b, h, h, c // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c // 4, grid, grid)


def image_ids(grid: int, index: int = 0) -> torch.Tensor:
    """Position ids of a grid x grid latent's tokens (FluxPipeline._prepare_latent_image_ids);
    Kontext gives its context image index 1 in the first axis."""
    h = grid // 2
    ids = torch.zeros(h, h, 3)
    ids[..., 0] = index
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(h)[None, :]
    return ids.reshape(h * h, 3)


def conditioning(spec: dict, b: int, img_ids: torch.Tensor, guidance: float, device, dtype) -> dict:
    """Transformer inputs besides the latents: T5 tokens, CLIP pooled vector, ids, guidance."""
    t5_dim, pooled_dim = spec["transformer"]["joint_attention_dim"], spec["transformer"]["pooled_projection_dim"]
    return {
        "encoder_hidden_states": torch.randn(b, spec["t5_tokens"], t5_dim, device=device, dtype=dtype),
        "pooled_projections": torch.randn(b, pooled_dim, device=device, dtype=dtype),
        "guidance": torch.full((b,), guidance, device=device, dtype=torch.float32),
        "txt_ids": torch.zeros(spec["t5_tokens"], 3, device=device, dtype=dtype),
        "img_ids": img_ids.to(device=device, dtype=dtype),
    }


def denoise(transformer, latents: torch.Tensor, context: torch.Tensor | None, cond: dict, steps: int) -> torch.Tensor:
    """Flow-matching Euler steps. Kontext appends the context image's tokens to every forward
    and keeps only the target tokens' prediction."""
    n = latents.shape[1]
    sigmas = [1.0 - i / steps for i in range(steps + 1)]
    for i in range(steps):
        x = latents if context is None else torch.cat([latents, context], dim=1)
        t = torch.full((latents.shape[0],), sigmas[i], device=latents.device, dtype=latents.dtype)
        v = transformer(hidden_states=x, timestep=t, **cond, return_dict=False)[0][:, :n]
        latents = latents + (sigmas[i + 1] - sigmas[i]) * v
    return latents


def vae_encode(vae, images: torch.Tensor) -> torch.Tensor:
    z = vae.encode(images).latent_dist.mode()
    return pack((z - vae.config.shift_factor) * vae.config.scaling_factor)


def vae_decode(vae, tokens: torch.Tensor, grid: int) -> torch.Tensor:
    z = unpack(tokens, grid) / vae.config.scaling_factor + vae.config.shift_factor
    return vae.decode(z, return_dict=False)[0]


# ---------------------------------------------------------------- models


def build_text_encoders(spec: dict, device, dtype):
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    with build_on(device, dtype):
        t5 = T5EncoderModel._from_config(T5Config(**spec["t5"]), dtype=dtype)
        clip = CLIPTextModel._from_config(CLIPTextConfig(**spec["clip"]), dtype=dtype, attn_implementation="sdpa")
    return t5.eval(), clip.eval()


def build_flux(spec: dict, device, dtype):
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    with build_on(device, dtype):
        transformer = FluxTransformer2DModel(**spec["transformer"]).eval()
        vae = AutoencoderKL(**spec["vae"]).eval()
    return transformer, vae


def build_llm(spec: dict, device, dtype):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    with build_on(device, dtype):
        model = Qwen3ForCausalLM._from_config(Qwen3Config(**spec["qwen3"]), dtype=dtype, attn_implementation="sdpa")
    return model.eval()


# ---------------------------------------------------------------- measurements


def run_text(t5, clip, spec: dict, b: int, device) -> dict:
    """T5 and CLIP once over a batch of b prompts (FluxPipeline.encode_prompt)."""
    t5_ids = torch.randint(0, spec["t5"]["vocab_size"], (b, spec["t5_tokens"]), device=device)
    clip_ids = torch.randint(0, spec["clip"]["vocab_size"], (b, spec["clip_tokens"]), device=device)

    def encode():
        return t5(input_ids=t5_ids).last_hidden_state, clip(input_ids=clip_ids).pooler_output

    encode()  # warm-up
    reset_peak(device)
    s, _ = timed(encode, device)
    return {"text_encoder_s": s, "peak_mem_gib": peak_gib(device)}


def run_t2i(transformer, vae, spec: dict, b: int, args, device, dtype) -> dict:
    grid = args.size // vae_scale(vae)
    cond = conditioning(spec, b, image_ids(grid), FLUX_GUIDANCE, device, dtype)
    noise = torch.randn(b, (grid // 2) ** 2, spec["transformer"]["in_channels"], device=device, dtype=dtype)
    vae_decode(vae, denoise(transformer, noise, None, cond, 1), grid)  # warm-up: kernels, allocator
    reset_peak(device)
    t_tr, latents = timed(lambda: denoise(transformer, noise, None, cond, args.steps), device)
    t_dec, _ = timed(lambda: vae_decode(vae, latents, grid), device)
    return {"tokens": noise.shape[1], "transformer_s": t_tr, "vae_decode_s": t_dec, "peak_mem_gib": peak_gib(device)}


def run_kontext(transformer, vae, spec: dict, b: int, args, device, dtype) -> dict:
    s = args.identity_size
    grid = s // vae_scale(vae)
    ids = torch.cat([image_ids(grid), image_ids(grid, index=1)])  # target tokens, then the context image's
    cond = conditioning(spec, b, ids, KONTEXT_GUIDANCE, device, dtype)
    images = torch.rand(b, 3, s, s, device=device, dtype=dtype) * 2 - 1
    noise = torch.randn(b, (grid // 2) ** 2, spec["transformer"]["in_channels"], device=device, dtype=dtype)

    def edit(steps: int):
        context = vae_encode(vae, images)
        return vae_decode(vae, denoise(transformer, noise, context, cond, steps), grid)

    edit(1)  # warm-up
    reset_peak(device)
    t_enc, context = timed(lambda: vae_encode(vae, images), device)
    t_tr, latents = timed(lambda: denoise(transformer, noise, context, cond, args.steps), device)
    t_dec, _ = timed(lambda: vae_decode(vae, latents, grid), device)
    return {"tokens": noise.shape[1] + context.shape[1], "vae_encode_s": t_enc, "transformer_s": t_tr,
            "vae_decode_s": t_dec, "peak_mem_gib": peak_gib(device)}


def run_llm(model, spec: dict, b: int, args, device) -> dict:
    ids = torch.randint(2, spec["qwen3"]["vocab_size"], (b, args.prompt_tokens), device=device)
    # min_new_tokens = max_new_tokens: random weights must not stop early on an EOS.
    kw = {"attention_mask": torch.ones_like(ids), "do_sample": False, "pad_token_id": 0, "eos_token_id": 1}
    model.generate(ids, max_new_tokens=2, min_new_tokens=2, **kw)  # warm-up
    reset_peak(device)
    n = args.new_tokens
    s, out = timed(lambda: model.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw), device)
    assert out.shape[1] == args.prompt_tokens + n, out.shape
    return {"generate_s": s, "tokens_per_s": b * n / s, "s_per_prompt": s / b, "peak_mem_gib": peak_gib(device)}


def finish(parts: dict | str, text: dict | str, per: str, b: int) -> dict | str:
    """One batch size's figures for an image model: its parts plus the text encoders, per item."""
    if parts == "oom" or text == "oom":
        return "oom"
    total = text["text_encoder_s"] + sum(v for k, v in parts.items() if k.endswith("_s"))
    row = {"text_encoder_s": text["text_encoder_s"], **parts, "total_s": total, per: total / b}
    row["peak_mem_gib"] = max(filter(None, [parts["peak_mem_gib"], text["peak_mem_gib"]]), default=None)
    return sig(row)


def text_encoders(spec: dict, args, device, dtype) -> tuple[dict, dict]:
    """T5 + CLIP seconds per batch size. The encoders die with this frame, before FLUX loads."""
    t5, clip = build_text_encoders(spec, device, dtype)
    params = {"t5": n_params(t5), "clip": n_params(clip)}
    with torch.inference_mode():
        text = per_batch("text_encoders", args.batch_sizes, lambda b: run_text(t5, clip, spec, b, device), device)
    return params, text


def image_section(name: str, run, text: dict, per: str, args, device) -> dict:
    """run(b) per batch size, the text encoders added, and the best batch size per image/identity."""
    raw = per_batch(name, args.batch_sizes, run, device)
    batches = {k: finish(raw[k], text[k], per, int(k)) for k in raw}
    b, s = best(batches, per)
    return {"steps": args.steps, "batches": batches, "best_batch_size": b, f"best_{per}": s}


def diffusion(spec: dict, args, text: dict, params: dict, device, dtype) -> dict:
    """flux and kontext on one transformer and VAE: the same weights, built once."""
    transformer, vae = build_flux(spec, device, dtype)
    params = {"transformer": n_params(transformer), "vae": n_params(vae), **params}
    out = {}
    with torch.inference_mode():
        if "flux" in args.only:
            t2i = partial(run_t2i, transformer, vae, spec, args=args, device=device, dtype=dtype)
            out["flux"] = {"size": args.size, "params": params,
                           **image_section("flux", t2i, text, "s_per_image", args, device)}
        if "kontext" in args.only:
            edit = partial(run_kontext, transformer, vae, spec, args=args, device=device, dtype=dtype)
            out["kontext"] = {"identity_size": args.identity_size, "params": params,
                              **image_section("kontext", edit, text, "s_per_identity", args, device)}
    return out


def image_models(spec: dict, args, device, dtype) -> dict:
    text_params, text = text_encoders(spec, args, device, dtype)
    free(device)
    out = diffusion(spec, args, text, text_params, device, dtype)
    free(device)
    return out


def llm_batches(spec: dict, args, device, dtype) -> tuple[int, dict]:
    model = build_llm(spec, device, dtype)
    with torch.inference_mode():
        batches = per_batch("llm", args.llm_batch_sizes, lambda b: run_llm(model, spec, b, args, device), device)
    return n_params(model), batches


def llm(spec: dict, args, device, dtype) -> dict:
    params, batches = llm_batches(spec, args, device, dtype)
    free(device)
    b, s = best(batches, "s_per_prompt")
    return {"prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "params": params,
            "batches": batches, "best_batch_size": b, "best_s_per_prompt": s}


def goals(report: dict, args) -> dict:
    """Each goal against the best batch size. `comparable` is false where the run's settings
    (tiny, size, steps, tokens) are not the ones the goal is about."""
    full = not args.tiny and report["device"] != "cpu" and args.steps == 28
    out = {}
    if "flux" in report:
        m = report["flux"]["best_s_per_image"]
        out["flux_s_per_image"] = {"goal": f"<= {GOAL_FLUX_S} s per 1024x1024 image, 28 steps, best batch size",
                                   "measured": m, "met": m is not None and m <= GOAL_FLUX_S,
                                   "comparable": full and args.size == 1024}
    if "kontext" in report:
        m = report["kontext"]["best_s_per_identity"]
        out["kontext_s_per_identity"] = {"goal": f"<= {GOAL_KONTEXT_S} s per 512x512 identity, 28 steps, best batch size",
                                         "measured": m, "met": m is not None and m <= GOAL_KONTEXT_S,
                                         "comparable": full and args.identity_size == 512}
    if "llm" in report:
        m = report["llm"]["best_s_per_prompt"]
        # Against the measured FLUX figure when there is one, else against FLUX's goal.
        ref = (report.get("flux") or {}).get("best_s_per_image") or GOAL_FLUX_S
        out["llm_s_per_prompt"] = {
            "goal": f"<= {GOAL_LLM_SHARE} x FLUX s per image ({ref:.4g} s): never the bottleneck",
            "measured": m, "flux_s_per_image": ref, "ratio": None if m is None else float(f"{m / ref:.4g}"),
            "met": m is not None and m <= GOAL_LLM_SHARE * ref,
            "comparable": not args.tiny and report["device"] != "cpu" and args.new_tokens == 300,
        }
    return out


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="flux,kontext,llm", help="comma list of flux, kontext, llm")
    ap.add_argument("--batch-sizes", type=int_list, default=[1, 2, 4], help="flux and kontext")
    ap.add_argument("--llm-batch-sizes", type=int_list, default=[1, 8, 32])
    ap.add_argument("--steps", type=int, help=f"denoising steps (default {DEFAULTS['steps']})")
    ap.add_argument("--size", type=int, help=f"FLUX image side (default {DEFAULTS['size']})")
    ap.add_argument("--identity-size", type=int, help=f"Kontext identity side (default {DEFAULTS['identity_size']})")
    ap.add_argument("--prompt-tokens", type=int, help=f"LLM prompt length (default {DEFAULTS['prompt_tokens']})")
    ap.add_argument("--new-tokens", type=int, help=f"LLM tokens generated (default {DEFAULTS['new_tokens']})")
    ap.add_argument("--out", type=Path, help="default bench/results/gpu_generation[_tiny].json")
    ap.add_argument("--tiny", action="store_true", help="toy configs on the CPU: a smoke test, not a benchmark")
    args = ap.parse_args(argv)
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    if bad := set(args.only) - {"flux", "kontext", "llm"}:
        ap.error(f"--only: unknown {sorted(bad)}")
    fill_defaults(args, DEFAULTS, TINY_DEFAULTS, args.tiny)
    args.out = args.out or results_path("gpu_generation", args.tiny)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = bench_device(args.tiny)
    dtype = bench_dtype(device)
    torch.manual_seed(0)
    spec = specs(args.tiny)

    import diffusers
    import transformers

    report = {
        "device": device_name(device),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__},
        "dtype": str(dtype).removeprefix("torch."),
        "attention": "sdpa",
        "tiny": args.tiny,
        "note": "random weights; models built from the published configs (FLUX.1-dev transformer and VAE, "
                "T5-v1.1-XXL, CLIP-L, Qwen3-8B), so the compute equals the published models'"
                + ("; TINY toy configs: a smoke test, the figures mean nothing" if args.tiny else ""),
    }
    if {"flux", "kontext"} & set(args.only):
        report |= image_models(spec, args, device, dtype)
    if "llm" in args.only:
        report["llm"] = llm(spec, args, device, dtype)
    report["goals"] = goals(report, args)
    write_json(args.out, report)
    print(json.dumps(report["goals"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
