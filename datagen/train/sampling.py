"""`datagen sample`: one image from identities + a layout + a prompt, with a trained LoRA.

The layout comes from a final-shard sample (its masks, depth, boxes, camera and identity
images) or from a JSON file naming boxes, optional masks + depth and identity image paths."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from datagen.recipe.conditioning import Layout, control_image, identity_stack
from datagen.errors import UserError
from datagen.train.augment import TEMPLATES
from datagen.train.config import load_train_config
from datagen.train.data import BadSample, decode_sample
from datagen.train.model import LORA_FILE

MEMBER_RE = re.compile(r"^(?P<key>[A-Za-z0-9_]+)\.(?P<field>[a-z0-9_.]+)$")


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
        if "mask" in s:
            masks.append(_image(base / s["mask"], "L", f"subjects[{i}].mask") > 127)
    depth = None
    if "depth" in spec:
        depth = np.load(base / spec["depth"], allow_pickle=False).astype(np.float32)
    meta = {"width": width, "height": height, "prompt": prompt, "subjects": subjects, "camera": spec.get("camera")}
    # Identities may differ in size here: `conditions` resizes each to the identity size.
    return {"json": meta, "masks": np.stack(masks) if len(masks) == len(subjects) else None, "depth": depth, "identities": ids}


def conditions(decoded: dict, mode: str, resolution: int, identity_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(I_C at resolution x resolution, I_S with identity_size squares), both uint8."""
    meta = decoded["json"]
    needs = {"masks": ("masks", "depth"), "boxes3d": ("camera",), "boxes2d": ()}.get(mode)
    if needs is None:
        raise UserError(f"--mode {mode!r}: one of masks, boxes3d, boxes2d")
    missing = [n for n in needs if (meta.get(n) if n == "camera" else decoded.get(n)) is None]
    if missing or (mode == "boxes3d" and any("box_3d" not in s for s in meta["subjects"])):
        raise UserError(f"--mode {mode}: the layout lacks {', '.join(missing) or 'box_3d for every subject'}")
    control = control_image(Layout.from_sample(decoded), mode)
    control = np.asarray(Image.fromarray(control).resize((resolution, resolution), Image.NEAREST))
    ids = [np.asarray(Image.fromarray(x).resize((identity_size, identity_size), Image.BICUBIC)) for x in decoded["identities"]]
    return control, identity_stack(ids)


def run_sample(
    lora: Path | None, shard: str | None, key: str | None, layout: Path | None, prompt: str | None, mode: str,
    out: Path, config: str, overrides: list[str], seed: int, steps: int, guidance: float,
) -> Path:  # fmt: skip
    from datagen.models.hub import pick_device
    from datagen.train.generate import generate
    from datagen.train.model import load_kontext_pipeline

    if (shard is None) == (layout is None):
        raise UserError("give one of --from SHARD or --layout JSON")
    if lora is not None and not lora.exists():
        raise UserError(f"--lora {lora}: no such file or directory")
    cfg = load_train_config(config, overrides)
    decoded = read_shard_sample(shard, key) if shard else read_layout(layout)
    control, ids = conditions(decoded, mode, cfg.resolution, cfg.identity_size)
    text = prompt or TEMPLATES[1].format(**decoded["json"]["prompt"])
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
