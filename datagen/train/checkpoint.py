"""Training checkpoints: the LoRA, the optimizer, the step and the curriculum stage, written
atomically (a temporary directory, then a rename), read back without unpickling code.

Data order and noise are functions of (seed, step), so these restore a run exactly.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from datagen.errors import UserError
from datagen.models.hub import require

PREFIX = "step-"


def checkpoint_dir(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"{PREFIX}{step:08d}"


def latest(out: Path) -> Path | None:
    """The newest complete checkpoint (one with its state.json), or None."""
    root = out / "checkpoints"
    done = sorted(p for p in root.glob(f"{PREFIX}*") if (p / "state.json").is_file()) if root.is_dir() else []
    return done[-1] if done else None


def trainable_state(model: Any) -> dict[str, Any]:
    """The trainable (LoRA) tensors by name: all a checkpoint needs of the model."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save(out: Path, step: int, stage: int, model: Any, optimizer: Any, extra: dict | None = None) -> Path:
    torch = require("torch")
    from safetensors.torch import save_file

    final = checkpoint_dir(out, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), tmp / "lora.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")  # tensors and numbers: read with weights_only
    (tmp / "state.json").write_text(json.dumps({"step": step, "stage": stage, **(extra or {})}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def load(path: Path, model: Any, optimizer: Any) -> dict:
    """Restore the LoRA and optimizer from `path`; returns its state.json."""
    torch = require("torch")
    from safetensors.torch import load_file

    tensors = load_file(path / "lora.safetensors")
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in tensors]
    if missing or any(n not in params or params[n].shape != t.shape for n, t in tensors.items()):
        raise UserError(f"{path}: this checkpoint's LoRA does not match the configured one (lora.rank/targets changed?)")
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    return json.loads((path / "state.json").read_text())
