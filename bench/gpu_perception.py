"""GPU perception benchmark: Grounding DINO base, SAM ViT-H, MoGe-2 ViT-L and DINOv2 base at
their published sizes.

    python bench/gpu_perception.py                    # one H100; writes bench/results/gpu_perception.json
    python bench/gpu_perception.py --only sam,moge --sam-batch-sizes 1,16
    python bench/gpu_perception.py --tiny --out /tmp/p.json   # CPU smoke test of the same code

Nothing is downloaded: every model is built from its published config with random weights (the
parameter count is checked against the published one), so its compute and memory equal the real
model's. Inputs are 1024x1024 RGB images, 4 subjects per image; each model sees them through its
own preprocessing. Per batch size, after a warm-up, with torch.cuda.synchronize around the timed
calls and the peak GPU memory:
- grounding_dino: datagen.models.grounding.TransformersGrounder.detect, one caption per (image,
  caption) pair as the segment stage runs it; the batch is pairs per pass (captions_per_pass);
  the processor resizes to 800 on the shorter side. Per pass, per pair, and per image = 4 pairs;
- sam: TransformersSegmenter.segment, the image encoder once per image (1024 longest side) and
  the mask decoder on 4 boxes; the batch is images;
- moge: datagen.models.moge.MoGe2.infer and depth_and_camera, uint8 images to datagen's depth
  and pinhole camera, at the depth stage's resolution level (9: 3600 ViT tokens);
- dinov2: datagen.models.dinov2.DinoEmbedder.embed on 512x512 crops (the identity size; the
  processor resizes to 256 and crops 224); per image = 4 subjects x (identity + crop) = 8 crops.
Each section also times the bare model forward on prepared inputs, so preprocessing can be told
from the model. Settings (dtypes, thresholds, resolution level, default batch sizes) are the
recipe's, configs/sigma_set27k.yaml. `goals`: every model under 0.5 s per image at its default batch size (the one
configs/sigma_set27k.yaml runs) on one H100; `every_model_met` is true only when all are, on
figures comparable with the goal. --tiny runs toy configs on tiny images through the same code
(on the CPU in float32) and marks the JSON "tiny": true.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import torch
from common import ROOT, int_list, results_path, toy_spec, write_json  # bench/, the script's dir
from gpu_common import (
    bench_device, best, build_on, device_name, free, n_params, peak_gib, per_batch, reset_peak, timed,
)  # fmt: skip
from model_configs import PERCEPTION, PERCEPTION_TINY

from datagen.config import StagesConfig, load_config
from datagen.models.dinov2 import DinoEmbedder
from datagen.models.grounding import TransformersGrounder, TransformersSegmenter, grounding_text
from datagen.models.hub import torch_dtype
from datagen.models.moge import MoGe2, depth_and_camera, precision
from datagen.models.tiny.perception import bert_tokenizer

MODELS = ("grounding_dino", "sam", "moge", "dinov2")
SUBJECTS = 4  # per image, as the goal is stated
CROPS_PER_SUBJECT = 2  # idcheck embeds the identity image and the subject's crop
GOAL_S_PER_IMAGE = 0.5
# Published sizes: the model cards of IDEA-Research/grounding-dino-base, facebook/sam-vit-huge,
# Ruicheng/moge-2-vitl-normal and facebook/dinov2-base. A built model must match within 2%.
PUBLISHED_PARAMS = {"grounding_dino": 233e6, "sam": 641e6, "moge": 331e6, "dinov2": 86.6e6}
# Captions of the procedural world's kind, in words the offline BERT tokenizer knows whole, so
# their token counts are what bert-base-uncased would give (the text side's cost).
CAPTIONS = ("a red ceramic teapot", "a small wooden chair", "a blue glass vase with a plant", "an old metal lamp")

IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}


def specs(tiny: bool) -> dict:
    """PERCEPTION, or PERCEPTION with each model's sub-configs updated by PERCEPTION_TINY's."""
    return toy_spec(PERCEPTION, PERCEPTION_TINY) if tiny else PERCEPTION


def recipe() -> StagesConfig:
    return load_config(ROOT / "configs" / "sigma_set27k.yaml").stages


def default_batches(stages: StagesConfig) -> dict[str, int]:
    """Batch sizes the recipe runs: Grounding DINO pairs per pass, SAM and MoGe images per stage
    call, DINOv2 crops per forward (DinoEmbedder.load: 4 x the idcheck batch)."""
    return {"grounding_dino": stages.segment.captions_per_pass, "sam": stages.segment.exec.batch_size,
            "moge": stages.depth.exec.batch_size, "dinov2": stages.idcheck.exec.batch_size * 4}


def model_dtype(name: str, stages: StagesConfig, device) -> torch.dtype:
    """The weights' dtype the recipe loads each model in; float32 on the CPU (--tiny), where
    half-precision kernels are slow or missing and prove nothing."""
    if device.type != "cuda":
        return torch.float32
    if name == "moge":
        return getattr(torch, precision(stages.depth.dtype, "cuda")[0])
    dtype = (stages.idcheck if name == "dinov2" else stages.segment).dtype
    # "auto" loads a checkpoint's own dtype: float32 for these models' published files.
    return torch.float32 if dtype == "auto" else torch_dtype(dtype)


# ---------------------------------------------------------------- inputs


def random_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def subject_boxes(size: int) -> np.ndarray:
    """SUBJECTS pixel boxes, one per image quadrant."""
    h = size / 2
    return np.array([[x * h + h / 8, y * h + h / 8, x * h + 7 * h / 8, y * h + 7 * h / 8] for y in (0, 1) for x in (0, 1)])


def pairs_for(b: int, images: list[np.ndarray]) -> tuple[list[np.ndarray], list[list[str]]]:
    """b (image, caption) pairs: SUBJECTS captions per image, the last image taking the rest."""
    n = math.ceil(b / SUBJECTS)
    imgs = [images[i % len(images)] for i in range(n)]
    caps = [list(CAPTIONS[: min(SUBJECTS, b - i * SUBJECTS)]) for i in range(n)]
    return imgs, caps


def mean_time(fn, reps: int, device) -> float:
    """Mean seconds of fn() over reps calls, after one warm-up call (kernels, allocator, caches)."""
    fn()
    return sum(timed(fn, device)[0] for _ in range(reps)) / reps


# ---------------------------------------------------------------- models


def build_grounding_dino(spec: dict, device, dtype):
    import transformers as tf

    tokenizer = bert_tokenizer()
    text = tf.BertConfig(**spec["text"], pad_token_id=tokenizer.pad_token_id)
    config = tf.GroundingDinoConfig(backbone_config=tf.SwinConfig(**spec["backbone"]), text_config=text, **spec["model"])
    with build_on(device, dtype):
        model = tf.GroundingDinoForObjectDetection._from_config(config, dtype=dtype)
    processor = tf.GroundingDinoProcessor(image_processor=tf.GroundingDinoImageProcessor(**spec["processor"]), tokenizer=tokenizer)
    return model.eval(), processor


def build_sam(spec: dict, device, dtype):
    import transformers as tf

    config = tf.SamConfig(
        vision_config=tf.SamVisionConfig(**spec["vision"]),
        prompt_encoder_config=tf.SamPromptEncoderConfig(**spec["prompt"]),
        mask_decoder_config=tf.SamMaskDecoderConfig(**spec["decoder"]),
    )
    with build_on(device, dtype):
        model = tf.SamModel._from_config(config, dtype=dtype)
    return model.eval(), tf.SamProcessor(image_processor=tf.SamImageProcessor(**spec["processor"]))


def build_moge(spec: dict, stages: StagesConfig, device, dtype) -> MoGe2:
    """The depth stage's wrapper around a random-weight MoGe-2, set up as MoGe2.load does."""
    from moge.model.v2 import MoGeModel

    with torch.device(device):  # MoGe builds its DINOv2 in float32, then it is cast
        net = MoGeModel(**spec)
    net.enable_pytorch_native_sdpa()
    net.to(dtype=dtype).eval()
    return MoGe2(net, stages.depth, str(device))


def build_dinov2(spec: dict, device, dtype):
    import transformers as tf

    with build_on(device, dtype):
        model = tf.Dinov2Model._from_config(tf.Dinov2Config(**spec["model"]), dtype=dtype)
    processor = tf.BitImageProcessor(**spec["processor"], do_center_crop=True, **IMAGENET)
    return model.eval(), processor


# ---------------------------------------------------------------- measurements


def run_grounding_dino(model, processor, images, b: int, args, device) -> dict:
    cfg = args.recipe.segment.model_copy(update={"captions_per_pass": b})
    grounder = TransformersGrounder(model, processor, cfg, str(device))
    imgs, caps = pairs_for(b, images)
    reset_peak(device)
    pass_s = mean_time(lambda: grounder.detect(imgs, caps), args.reps, device)
    peak = peak_gib(device)
    texts = [grounding_text(c) for cs in caps for c in cs]
    inputs = processor(images=[im for im, cs in zip(imgs, caps) for _ in cs], text=texts, return_tensors="pt", padding=True)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    forward_s = mean_time(lambda: model(**inputs), args.reps, device)
    per_pair = pass_s / b
    return {"pass_s": pass_s, "forward_s": forward_s, "s_per_pair": per_pair, "s_per_image": per_pair * SUBJECTS,
            "images_per_s": 1 / (per_pair * SUBJECTS), "pixel_shape": list(inputs["pixel_values"].shape[-2:]),
            "peak_mem_gib": peak}


def run_sam(model, processor, images, b: int, args, device) -> dict:
    segmenter = TransformersSegmenter(model, processor, args.recipe.segment, str(device))
    imgs = [images[i % len(images)] for i in range(b)]
    boxes = [subject_boxes(args.size)] * b
    reset_peak(device)
    call_s = mean_time(lambda: segmenter.segment(imgs, boxes), args.reps, device)
    peak = peak_gib(device)
    pixels = processor(images=imgs, return_tensors="pt")["pixel_values"].to(device, model.dtype)
    encoder_s = mean_time(lambda: model.get_image_embeddings(pixels), args.reps, device)
    return {"call_s": call_s, "encoder_forward_s": encoder_s, "s_per_image": call_s / b, "images_per_s": b / call_s,
            "peak_mem_gib": peak}


def run_moge(moge: MoGe2, images, b: int, args, device) -> dict:
    batch = np.stack([images[i % len(images)] for i in range(b)])
    reset_peak(device)
    call_s = mean_time(lambda: [depth_and_camera(out) for out in moge.infer(batch)], args.reps, device)
    peak = peak_gib(device)
    net = moge.net
    x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).to(net.dtype) / 255
    low, high = net.num_tokens_range
    tokens = int(low + moge.cfg.resolution_level / 9 * (high - low))  # as MoGeModel.infer
    with torch.autocast(device.type, torch.float16, enabled=moge.use_fp16):
        forward_s = mean_time(lambda: net(x, num_tokens=tokens), args.reps, device)
    return {"call_s": call_s, "forward_s": forward_s, "s_per_image": call_s / b, "images_per_s": b / call_s,
            "vit_tokens": tokens, "peak_mem_gib": peak}


def run_dinov2(model, processor, crops, b: int, args, device) -> dict:
    embedder = DinoEmbedder(model, processor, str(device), batch_size=b)
    batch = [crops[i % len(crops)] for i in range(b)]
    reset_peak(device)
    call_s = mean_time(lambda: embedder.embed(batch), args.reps, device)
    peak = peak_gib(device)
    pixels = processor(images=batch, return_tensors="pt")["pixel_values"].to(device, model.dtype)
    forward_s = mean_time(lambda: model(pixel_values=pixels), args.reps, device)
    per_crop = call_s / b
    per_image = per_crop * SUBJECTS * CROPS_PER_SUBJECT
    return {"call_s": call_s, "forward_s": forward_s, "s_per_crop": per_crop, "s_per_image": per_image,
            "images_per_s": 1 / per_image, "peak_mem_gib": peak}


def runner(name: str, spec: dict, args, device, dtype):
    """(model, run): the model built and run(b) measuring it at batch size b."""
    images = random_images(4, args.size)
    if name == "grounding_dino":
        model, processor = build_grounding_dino(spec[name], device, dtype)
        return model, lambda b: run_grounding_dino(model, processor, images, b, args, device)
    if name == "sam":
        model, processor = build_sam(spec[name], device, dtype)
        return model, lambda b: run_sam(model, processor, images, b, args, device)
    if name == "moge":
        moge = build_moge(spec[name], args.recipe, device, dtype)
        return moge.net, lambda b: run_moge(moge, images, b, args, device)
    model, processor = build_dinov2(spec[name], device, dtype)
    crops = random_images(4, spec["crop_size"], seed=1)
    return model, lambda b: run_dinov2(model, processor, crops, b, args, device)


def measure(name: str, spec: dict, args, device, dtype) -> tuple[int, dict]:
    """Parameter count and per-batch figures; the model dies with this frame, before the next loads."""
    model, run = runner(name, spec, args, device, dtype)
    with torch.inference_mode():
        return n_params(model), per_batch(name, args.batch_sizes[name], run, device)


def section(name: str, spec: dict, args, device) -> dict:
    dtype = model_dtype(name, args.recipe, device)
    params, batches = measure(name, spec, args, device, dtype)
    free(device)
    default = args.defaults[name]
    b, s = best(batches, "s_per_image")
    row = batches.get(str(default))
    out = {"dtype": str(dtype).removeprefix("torch."), "params": params, "params_published": PUBLISHED_PARAMS[name],
           "batches": batches,
           "default_batch_size": default, "s_per_image_at_default": row["s_per_image"] if isinstance(row, dict) else None,
           "best_batch_size": b, "best_s_per_image": s}
    if not args.tiny:
        out["params_match_published"] = abs(params / PUBLISHED_PARAMS[name] - 1) < 0.02
    return out


def goals(report: dict, args) -> dict:
    """Each model against GOAL_S_PER_IMAGE at its default batch size. `comparable` is false
    where the run (tiny, CPU, another image size) is not what the goal is about."""
    comparable = not args.tiny and report["device"] != "cpu" and args.size == 1024
    out = {}
    for name in MODELS:
        if name in report:
            m = report[name]["s_per_image_at_default"]
            out[name] = {"goal": f"< {GOAL_S_PER_IMAGE} s per 1024x1024 image ({SUBJECTS} subjects) on one H100, "
                                 f"batch {report[name]['default_batch_size']}",
                         "measured": m, "met": m is not None and m < GOAL_S_PER_IMAGE, "comparable": comparable}
    return out


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--gdino-batch-sizes", type=int_list, default=[1, 4, 16], help="(image, caption) pairs per pass")
    ap.add_argument("--sam-batch-sizes", type=int_list, default=[1, 4, 16], help="images per call")
    ap.add_argument("--moge-batch-sizes", type=int_list, default=[1, 4, 16], help="images per call")
    ap.add_argument("--dinov2-batch-sizes", type=int_list, default=[1, 8, 32], help="crops per forward")
    ap.add_argument("--reps", type=int, help="timed calls per batch size, after a warm-up (default 3, tiny 1)")
    ap.add_argument("--out", type=Path, help="default bench/results/gpu_perception[_tiny].json")
    ap.add_argument("--tiny", action="store_true", help="toy configs on the CPU: a smoke test, not a benchmark")
    args = ap.parse_args(argv)
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    if bad := set(args.only) - set(MODELS):
        ap.error(f"--only: unknown {sorted(bad)}")
    if "moge" in args.only and importlib.util.find_spec("moge") is None:
        ap.error("moge: the MoGe package is not installed (pip install 'datagen[moge]', see scripts/setup.sh), "
                 "or leave it out with --only")
    args.recipe = recipe()
    args.defaults = default_batches(args.recipe)
    # Every model is also run at its default batch size, so the goal is always measured.
    given = {"grounding_dino": args.gdino_batch_sizes, "sam": args.sam_batch_sizes,
             "moge": args.moge_batch_sizes, "dinov2": args.dinov2_batch_sizes}
    args.batch_sizes = {k: sorted({*v, args.defaults[k]}) for k, v in given.items()}
    args.reps = args.reps or (1 if args.tiny else 3)
    args.size = specs(args.tiny)["image_size"]
    args.out = args.out or results_path("gpu_perception", args.tiny)
    return args


def versions() -> dict:
    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__}
    if importlib.util.find_spec("moge") is not None:
        out["dlr-moge"] = importlib.metadata.version("dlr-moge")
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = bench_device(args.tiny)
    if args.tiny:
        # Toy ops are too small to gain from threads, and on a busy machine a thread pool waiting
        # for a descheduled worker stalls each op: one thread keeps the smoke test quick.
        torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = specs(args.tiny)
    report = {
        "device": device_name(device),
        "versions": versions(),
        "tiny": args.tiny,
        "image_size": args.size,
        "subjects_per_image": SUBJECTS,
        "reps": args.reps,
        "notes": [
            "random weights; models built from the published configs, parameter counts checked against the "
            "published ones" + ("; TINY toy configs: a smoke test, the figures mean nothing" if args.tiny else ""),
            ("timed through datagen's own classes (TransformersGrounder, TransformersSegmenter, MoGe2 with "
             "depth_and_camera, DinoEmbedder), host-side preprocessing and postprocessing included; forward_s / "
             "encoder_forward_s is the bare model on prepared inputs"),
            ("the Grounding DINO tokenizer is an offline WordPiece one (datagen.models.tiny.perception) whose "
             "vocabulary holds the benchmark's caption words whole, so caption token counts match bert-base-uncased"),
        ],
    }
    for name in args.only:
        report[name] = section(name, spec, args, device)
    report["goals"] = goals(report, args)
    report["every_model_met"] = all(g["met"] and g["comparable"] for g in report["goals"].values())
    write_json(args.out, report)
    print(json.dumps(report["goals"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
