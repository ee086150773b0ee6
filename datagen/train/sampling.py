"""`datagen sample`: one image from identities + a layout + a prompt, with a trained LoRA.

The layout comes from a final-shard sample (its masks, depth, boxes, camera and identity
images) or from a JSON file naming boxes, optional masks + depth and identity image paths.
`conditions` and `prompt_text` are the inference options `datagen eval` shares: the structure
modes masks, boxes3d, boxes2d, full_depth (paper Table 3) and mixed (per-subject granularity,
paper A.5), and the two prompt templates."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from datagen.recipe.conditioning import Layout, identity_stack
from datagen.recipe.mixed_granularity import check_granularities, cycle_granularities, layout_control
from datagen.errors import UserError
from datagen.train.augment import TEMPLATES
from datagen.train.config import load_train_config
from datagen.train.data import BadSample, decode_sample
from datagen.train.model import LORA_FILE

MEMBER_RE = re.compile(r"^(?P<key>[A-Za-z0-9_]+)\.(?P<field>[a-z0-9_.]+)$")
INFERENCE_MODES: tuple[str, ...] = ("masks", "boxes3d", "boxes2d", "full_depth", "mixed")
PROMPT_TEMPLATES = {"background": TEMPLATES[0], "full": TEMPLATES[1]}
# The paper's prompt per mode (§5.1): background prompts for precise masks + depth (Table 1, and
# Table 3's depth ablation), full prompts for the box modes (MSDiffusion expects them); mixed has
# box subjects, so full.
PAPER_TEMPLATES = {"masks": "background", "full_depth": "background", "boxes2d": "full", "boxes3d": "full", "mixed": "full"}
# The granularity each single mode puts on every subject, and what a granularity needs per subject.
_MODE_GRANULARITY = {"masks": "mask", "full_depth": "mask", "boxes3d": "box3d", "boxes2d": "box2d"}
_SUBJECT_FIELD = {"mask": "mask", "box3d": "box_3d", "box2d": "box_2d"}


def read_shard_sample(shard: str, key: str | None) -> dict:
    """The decoded sample `key` (default: the first) of a final shard; member names are checked."""
    members: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(shard) as tar:
            for m in tar:
                match = MEMBER_RE.match(m.name)
                if not m.isfile() or match is None:
                    raise UserError(f"{shard}: member {m.name!r} is not a sample file (<key>.<field>)")
                if key is None or match["key"] == key:
                    members.setdefault(match["key"], {})[match["field"]] = tar.extractfile(m).read()
    except (OSError, tarfile.TarError) as e:
        raise UserError(f"{shard}: cannot read ({e.__class__.__name__}: {e})") from None
    if not members:
        raise UserError(f"{shard}: no sample {key!r}" if key else f"{shard}: holds no samples")
    chosen = key or next(iter(members))
    try:
        return decode_sample(members[chosen], chosen)
    except BadSample as e:
        raise UserError(f"{shard}: sample {chosen}: {e}") from None


def _image(path: Path, mode: str, field: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode))
    except OSError as e:
        raise UserError(f"{field}: cannot read {path} ({e.__class__.__name__})") from None


def read_layout(path: Path) -> dict:
    """A JSON layout as a decoded sample: width, height, prompt {full, background} (or a string),
    optional camera, optional depth (a .npy path), subjects [{identity, box_2d, mask?, box_3d?}]."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a JSON layout ({e.__class__.__name__}: {e})") from None
    base = path.parent
    try:
        width, height, subjects = int(spec["width"]), int(spec["height"]), list(spec["subjects"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: needs width, height and subjects ({e.__class__.__name__}: {e})") from None
    if not subjects:
        raise UserError(f"{path}: subjects: give at least one")
    prompt = spec.get("prompt", "")
    prompt = prompt if isinstance(prompt, dict) else {"full": str(prompt), "background": str(prompt)}
    ids, masks = [], []
    for i, s in enumerate(subjects):
        if "identity" not in s or "box_2d" not in s:
            raise UserError(f"{path}: subjects[{i}]: needs identity (an image path) and box_2d")
        ids.append(_image(base / s["identity"], "RGB", f"subjects[{i}].identity"))
        mask = _image(base / s["mask"], "L", f"subjects[{i}].mask") > 127 if "mask" in s else None
        if mask is not None and mask.shape != (height, width):
            raise UserError(f"{path}: subjects[{i}].mask is {mask.shape[1]}x{mask.shape[0]}, not {width}x{height}")
        masks.append(mask)
    # Masks may be given for some subjects only (mixed granularity): the others get an empty
    # one, and `mask_given` says which are real, so no mode routes through an empty mask.
    given = [m is not None for m in masks]
    if any(given):
        masks = [np.zeros((height, width), dtype=bool) if m is None else m for m in masks]
    depth = None
    if "depth" in spec:
        depth = np.load(base / spec["depth"], allow_pickle=False).astype(np.float32)
    meta = {"width": width, "height": height, "prompt": prompt, "subjects": subjects, "camera": spec.get("camera")}
    # Identities may differ in size here: `conditions` resizes each to the identity size.
    return {"json": meta, "masks": np.stack(masks) if any(given) else None, "mask_given": given, "depth": depth, "identities": ids}


def parse_granularities(text: str | None) -> list[str] | None:
    """--granularity "mask, box2d,box3d" -> ["mask", "box2d", "box3d"]; None stays None."""
    return None if text is None else [g.strip() for g in text.split(",")]


def _granularities(decoded: dict, mode: str, granularities: Sequence[str] | None) -> list[str]:
    """The granularity of every subject under `mode`, checked: one-line UserErrors naming the flag."""
    n = len(decoded["json"]["subjects"])
    if mode not in INFERENCE_MODES:
        raise UserError(f"--mode {mode!r}: one of {', '.join(INFERENCE_MODES)}")
    if mode != "mixed":
        if granularities is not None:
            raise UserError(f"--granularity: goes with --mode mixed, not --mode {mode}")
        return [_MODE_GRANULARITY[mode]] * n
    if granularities is None:
        return cycle_granularities(n)
    try:
        return check_granularities(granularities, n)
    except ValueError as e:
        raise UserError(f"--granularity {','.join(map(str, granularities))}: {e}") from None


def _lacking(decoded: dict, mode: str, grans: list[str]) -> list[str]:
    """What the layout misses for these granularities: masks, depth, camera, <field> for subjects[i]."""
    meta = decoded["json"]
    missing = []
    if mode == "full_depth" or "mask" in grans:
        missing += [n for n in ("masks", "depth") if decoded.get(n) is None]
    if "box3d" in grans and meta.get("camera") is None:
        missing.append("camera")
    given = decoded.get("mask_given") or [decoded.get("masks") is not None] * len(grans)
    for i, (s, g) in enumerate(zip(meta["subjects"], grans)):
        if g == "mask":  # no masks at all is reported once, above
            has = given[i] or decoded.get("masks") is None
        else:
            has = _SUBJECT_FIELD[g] in s
        if not has:
            missing.append(f"{_SUBJECT_FIELD[g]} for subjects[{i}]")
    return missing


def conditions(
    decoded: dict, mode: str, resolution: int, identity_size: int, granularities: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(I_C at resolution x resolution, I_S with identity_size squares), both uint8.

    mode: masks, boxes3d, boxes2d, full_depth or mixed; granularities: with mixed only, one of
    mask / box2d / box3d per subject in identity order (None: mask, box2d, box3d, mask, ...)."""
    grans = _granularities(decoded, mode, granularities)
    missing = _lacking(decoded, mode, grans)
    if missing:
        named = f"--mode mixed (--granularity {','.join(grans)})" if mode == "mixed" else f"--mode {mode}"
        raise UserError(f"{named}: the layout lacks {', '.join(missing)}")
    try:
        control = layout_control(Layout.from_sample(decoded), mode, grans if mode == "mixed" else None)
    except ValueError as e:  # e.g. masks or depth of another size than the layout's
        raise UserError(f"--mode {mode}: {e}") from None
    control = np.asarray(Image.fromarray(control).resize((resolution, resolution), Image.NEAREST))
    ids = [np.asarray(Image.fromarray(x).resize((identity_size, identity_size), Image.BICUBIC)) for x in decoded["identities"]]
    return control, identity_stack(ids)


def prompt_text(meta: dict, template: str) -> str:
    """The prompt of a sample's meta by template: "background" -> "Place these subjects in
    <background>", "full" -> "Place these subjects to compose: <full>" (augment.TEMPLATES)."""
    if template not in PROMPT_TEMPLATES:
        raise UserError(f"--prompt-template {template!r}: one of {', '.join(PROMPT_TEMPLATES)}")
    p = meta["prompt"]
    return PROMPT_TEMPLATES[template].format(background=p["background"], full=p["full"])


def run_sample(
    lora: Path | None, shard: str | None, key: str | None, layout: Path | None, prompt: str | None, mode: str,
    out: Path, config: str, overrides: list[str], seed: int, steps: int, guidance: float,
    granularity: str | None = None, prompt_template: str | None = None,
) -> Path:  # fmt: skip
    from datagen.models.hub import pick_device
    from datagen.train.generate import generate
    from datagen.train.model import load_kontext_pipeline

    if (shard is None) == (layout is None):
        raise UserError("give one of --from SHARD or --layout JSON")
    if lora is not None and not lora.exists():
        raise UserError(f"--lora {lora}: no such file or directory")
    if prompt is not None and prompt_template is not None:
        raise UserError("give one of --prompt or --prompt-template")
    if prompt_template is not None and prompt_template not in PROMPT_TEMPLATES:
        raise UserError(f"--prompt-template {prompt_template!r}: one of {', '.join(PROMPT_TEMPLATES)}")
    cfg = load_train_config(config, overrides)
    decoded = read_shard_sample(shard, key) if shard else read_layout(layout)
    control, ids = conditions(decoded, mode, cfg.resolution, cfg.identity_size, parse_granularities(granularity))
    text = prompt or prompt_text(decoded["json"], prompt_template or "full")
    pipe = load_kontext_pipeline(cfg.model, cfg.models_dir, cfg.dtype, cfg.revision)
    pipe.to(pick_device("auto"))
    if lora is not None:
        try:
            pipe.load_lora_weights(str(lora.parent if lora.is_file() else lora), weight_name=lora.name if lora.is_file() else LORA_FILE)
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"--lora {lora}: not a LoRA for this model ({str(e).strip().splitlines()[0][:200]})") from None
    image = generate(pipe, text, control, ids, seed, steps=steps, guidance=guidance, max_sequence_length=cfg.max_sequence_length)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, out)  # never a half-written image
    return out
