"""Check a LoRA against the base model before any GPU time is spent on it.

The file must be a safetensors LoRA (diffusers' `lora_A` / `lora_B` pairs), and every pair must
fit a linear layer of the base's transformer: the module exists and its in/out features match.
The transformer is built from its config on the meta device, so no weight is read.
"""

from __future__ import annotations

from pathlib import Path

from datagen.errors import UserError
from datagen.models.hub import require, resolve_model
from datagen.train.model import LORA_FILE


def lora_file(path: Path) -> Path:
    """The weights file of a LoRA given as its directory (datagen train's lora/) or its file."""
    path = Path(path)
    if path.is_dir():
        path = path / LORA_FILE
    if not path.is_file():
        raise UserError(f"--lora {path}: no such file (give datagen train's lora/ directory or its {LORA_FILE})")
    return path


def _lora_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"--lora {path}: not a LoRA (not a safetensors file: {str(e).splitlines()[0][:120]})") from None
    lora = {k: v for k, v in shapes.items() if ".lora_A." in k or ".lora_B." in k}
    if not lora:
        raise UserError(f"--lora {path}: not a LoRA (no lora_A / lora_B tensors among its {len(shapes)})")
    return lora


def check_lora(path: Path, model: str, models_dir: str | None, revision: str | None = None) -> Path:
    """The LoRA's file, after checking every pair fits `model`'s transformer; UserError otherwise."""
    file = lora_file(path)
    shapes = _lora_shapes(file)
    diffusers = require("diffusers", "train")
    accelerate = require("accelerate", "train")
    try:
        config = diffusers.FluxTransformer2DModel.load_config(resolve_model(model, models_dir), subfolder="transformer", revision=revision)
    except (OSError, ValueError) as e:
        raise UserError(f"generator model {model!r}: no transformer config ({str(e).splitlines()[0][:120]})") from None
    with accelerate.init_empty_weights():
        transformer = diffusers.FluxTransformer2DModel.from_config(config)
    modules = dict(transformer.named_modules())
    for key, shape in sorted(shapes.items()):
        name, side = key.removeprefix("transformer.").split(".lora_")[0], key.split(".lora_")[1][0]
        layer = modules.get(name)
        if layer is None or not hasattr(layer, "in_features"):
            raise UserError(f"--lora {file}: a LoRA for another base model ({name} is not a linear layer of {model}'s transformer)")
        wanted = layer.in_features if side == "A" else layer.out_features
        got = shape[1] if side == "A" else shape[0]
        if len(shape) != 2 or got != wanted:
            raise UserError(f"--lora {file}: a LoRA for another base model ({key} is {list(shape)}; {model} has {wanted} features there)")
    return file
