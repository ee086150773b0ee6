"""GPU eval benchmark: seconds per image of `datagen eval model`'s generation and of its six
metrics, against the number of subjects, at the published model sizes.

    python bench/gpu_eval.py                  # one GPU; writes bench/results/gpu_eval.json
    python bench/gpu_eval.py --tiny           # CPU smoke test, bench/results/gpu_eval_tiny.json

Nothing is downloaded: every model is built from its published config with random weights
(model_configs.py), so its compute and memory equal the real one's, and run through datagen's
own code: generation is datagen.train.generate.generate (the sampler `datagen sample` and eval
share) on a FluxKontextPipeline of FLUX.1 Kontext's transformer, VAE, T5-XXL and CLIP-L, the
SIGMA-GEN sequence (target + the stacked identities + control + 512 text tokens) for 28 steps;
the metrics are datagen.eval.judging's calls on DINOv2-base, SigLIP so400m, CLIP ViT-B/32
(CLIP-IQA), pyiqa's MUSIQ and MoGe-2 ViT-L. Per subject count: the identity metrics embed one
crop and one identity image per subject, the others run once per image. The paper claims
SIGMA-GEN is 4x faster than the alternatives at five or more subjects: the generation figures
show how its single pass grows with the identity tokens.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from common import fill_defaults, int_list, results_path, toy_spec, write_json  # bench/, the script's dir
from gpu_common import bench_device, bench_dtype, build_on, device_name, free, n_params, peak_gib, reset_peak, sig, timed
from gpu_generation import build_flux, build_text_encoders
from gpu_perception import build_dinov2, build_moge, recipe
from model_configs import EVAL, EVAL_TINY, GENERATION, GENERATION_TINY, PERCEPTION, PERCEPTION_TINY

from datagen.eval.judging import Judges
from datagen.eval.scores import identity_scores

DEFAULTS = {"subjects": [1, 3, 5, 8], "size": 1024, "identity_size": 512, "steps": 28, "reps": 2}
TINY_DEFAULTS = {"subjects": [1, 3], "size": 64, "identity_size": 32, "steps": 2, "reps": 1}
PROMPT = "Place these subjects to compose: a red ceramic teapot beside a small wooden chair in a sunlit kitchen"


def build_pipeline(spec: dict, device, dtype):
    """FLUX.1 Kontext's pipeline from random-weight parts (tokenizers: datagen's offline ones)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline

    from datagen.models.tiny.build import _clip_tokenizer, _t5_tokenizer

    transformer, vae = build_flux(spec, device, dtype)
    t5, clip = build_text_encoders(spec, device, dtype)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)  # fmt: skip
    clip_tok = _clip_tokenizer()
    clip_tok.model_max_length = spec["clip_tokens"]
    pipe = FluxKontextPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=clip_tok, text_encoder_2=t5,
                               tokenizer_2=_t5_tokenizer(), transformer=transformer, image_encoder=None, feature_extractor=None)  # fmt: skip
    return pipe, n_params(transformer)


def build_judges(spec: dict, perception: dict, device, dtype) -> tuple[Judges, dict]:
    import transformers as tf
    from pyiqa.archs.musiq_arch import MUSIQ

    from datagen.models.dinov2 import DinoEmbedder
    from datagen.models.iqa import ClipIqa, Musiq
    from datagen.models.siglip import SiglipJudge
    from datagen.models.tiny.build import _clip_tokenizer
    from datagen.models.tiny.eval_models import siglip_tokenizer

    s, c = spec["siglip"], spec["clip"]
    with build_on(device, dtype):
        siglip = tf.SiglipModel._from_config(tf.SiglipConfig(text_config=s["text"], vision_config=s["vision"]), dtype=dtype)
        clip = tf.CLIPModel._from_config(tf.CLIPConfig(text_config=c["text"], vision_config=c["vision"], projection_dim=c["projection_dim"]), dtype=dtype)  # fmt: skip
        musiq = MUSIQ(**spec["musiq"], pretrained=False)
    siglip_tok = siglip_tokenizer(s["text_tokens"])
    siglip_proc = tf.SiglipProcessor(image_processor=tf.SiglipImageProcessor(**s["processor"]), tokenizer=siglip_tok)
    clip_proc = tf.CLIPProcessor(image_processor=tf.CLIPImageProcessor(**c["processor"]), tokenizer=_clip_tokenizer())
    dino, dino_proc = build_dinov2(perception["dinov2"], device, dtype)
    moge = build_moge(perception["moge"], recipe(), device, dtype)
    dev = str(device)
    judges = Judges(DinoEmbedder(dino, dino_proc, dev), SiglipJudge(siglip.eval(), siglip_proc, dev), ClipIqa(clip.eval(), clip_proc, dev),
                    Musiq(musiq.to(device, torch.float32).eval(), dev, torch.float32), moge)  # fmt: skip
    params = {"dinov2": n_params(dino), "siglip": n_params(siglip), "clip": n_params(clip), "musiq": n_params(musiq), "moge": n_params(moge.net)}
    return judges, params


def layout(n: int, size: int, identity_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list, list]:
    """A control image, the identity stack and n subject boxes / identity images of the given sizes."""
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    ids = [rng.integers(0, 256, (identity_size, identity_size, 3), dtype=np.uint8) for _ in range(n)]
    side = size // 4
    boxes = [[(i % 3) * side, (i // 3 % 3) * side, (i % 3) * side + side, (i // 3 % 3) * side + side] for i in range(n)]
    return image, np.concatenate(ids, axis=0), boxes, ids


def time_generation(pipe, n: int, args, device, rng) -> dict:
    from datagen.train.generate import generate

    control, stack, _, _ = layout(n, args.size, args.identity_size, rng)

    def once():
        return generate(pipe, PROMPT, control, stack, seed=0, steps=args.steps, guidance=2.5, max_sequence_length=args.text_tokens)

    once()  # warm-up
    seconds = [timed(once, device)[0] for _ in range(args.reps)]
    return {"s_per_image": float(np.mean(seconds)), "tokens": (args.size // 16) ** 2 * 2 + n * (args.identity_size // 16) ** 2 + args.text_tokens}


def time_metrics(judges: Judges, n: int, args, device, rng) -> dict:
    """Each metric as judging.score_sample calls it, on one generated image with n subjects."""
    image, _, boxes, ids = layout(n, args.size, args.identity_size, rng)
    parts = {
        "dino_i": lambda: identity_scores(judges.dino.embed, image, boxes, ids),
        "siglip_i": lambda: identity_scores(judges.siglip.embed_images, image, boxes, ids),
        "siglip_t": lambda: judges.siglip.text_scores([image], [PROMPT]),
        "clip_iqa": lambda: judges.clip_iqa.score([image]),
        "musiq": lambda: judges.musiq.score([image]),
        "depth_mse": lambda: judges.depth(image),
    }
    out = {}
    for name, fn in parts.items():
        fn()  # warm-up
        out[name] = float(np.mean([timed(fn, device)[0] for _ in range(args.reps)]))
    return {**out, "s_per_image": sum(out.values())}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="toy configs on the CPU: checks the code path, not the figures")
    p.add_argument("--subjects", type=int_list, default=None, help="subject counts, e.g. 1,3,5,8")
    p.add_argument("--size", type=int, default=None, help="generated image side (px)")
    p.add_argument("--identity-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--only", default="generation,metrics", help="generation, metrics or both")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/gpu_eval[_tiny].json)")
    args = p.parse_args(argv)
    fill_defaults(args, DEFAULTS, TINY_DEFAULTS, args.tiny)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = bench_device(args.tiny, "eval benchmark")
    dtype = bench_dtype(device)
    gen_spec = toy_spec(GENERATION, GENERATION_TINY) if args.tiny else GENERATION
    args.text_tokens = gen_spec["t5_tokens"]
    rng = np.random.default_rng(0)
    report: dict = {"device": device_name(device), "tiny": args.tiny, "dtype": str(dtype).removeprefix("torch."),
                    "settings": {k: getattr(args, k) for k in ("subjects", "size", "identity_size", "steps", "reps", "text_tokens")}}  # fmt: skip
    only = set(args.only.split(","))
    if "generation" in only:
        reset_peak(device)
        pipe, params = build_pipeline(gen_spec, device, dtype)
        report["generation"] = {"transformer_params": params,
                                "per_subjects": {str(n): sig(time_generation(pipe, n, args, device, rng)) for n in args.subjects}}  # fmt: skip
        report["generation"]["peak_gib"] = peak_gib(device)
        del pipe
        free(device)
    if "metrics" in only:
        reset_peak(device)
        spec = toy_spec(EVAL, EVAL_TINY) if args.tiny else EVAL
        judges, params = build_judges(spec, toy_spec(PERCEPTION, PERCEPTION_TINY) if args.tiny else PERCEPTION, device, dtype)
        report["metrics"] = {"params": params, "per_subjects": {str(n): sig(time_metrics(judges, n, args, device, rng)) for n in args.subjects}}
        report["metrics"]["peak_gib"] = peak_gib(device)
    out = args.out or results_path("gpu_eval", args.tiny)
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
