"""Training checkpoints: the LoRA, the optimizer, the step and the curriculum stage, written
atomically (a temporary directory, then a rename), read back without unpickling code. Works
for one process, DDP (replicated optimizer: one file) and FSDP (one optimizer shard per rank).

Data order and noise are functions of (seed, step), so these restore a run exactly.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
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
    """The trainable (LoRA) tensors by name, from an unsharded model."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def _noop() -> None:
    pass


def save(
    out: Path, step: int, stage: int, lora: dict[str, Any], optimizer: Any, *, rank: int = 0, world: int = 1,
    sharded_optimizer: bool = False, barrier: Callable[[], None] = _noop, extra: dict | None = None,
) -> Path:  # fmt: skip
    """Every process calls this. `lora`: the full LoRA tensors (only rank 0's are written).
    With `sharded_optimizer` (FSDP) each rank writes its own optimizer shard; otherwise the
    states are replicas (DDP) and rank 0 writes one. Rank 0 renames the directory into place
    once all files are written, so a crash leaves no half checkpoint under its final name."""
    torch = require("torch")
    from safetensors.torch import save_file

    final = checkpoint_dir(out, step)
    tmp = final.with_name(final.name + ".tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    # Tensors and numbers only: read back with weights_only.
    if sharded_optimizer:
        torch.save(optimizer.state_dict(), tmp / f"optimizer-rank{rank:05d}.pt")
    elif rank == 0:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    barrier()
    if rank == 0:
        save_file(lora, tmp / "lora.safetensors")
        state = {"step": step, "stage": stage, "world": world, "sharded_optimizer": sharded_optimizer, **(extra or {})}
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    barrier()
    return final


def load_lora(path: Path, model: Any) -> dict:
    """Restore the LoRA into the plain (not yet wrapped) model; returns the checkpoint's state.json."""
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
    return json.loads((path / "state.json").read_text())


def load_optimizer(path: Path, optimizer: Any, *, rank: int = 0, world: int = 1) -> None:
    """Restore the optimizer (after accelerate has prepared it): a sharded (FSDP) checkpoint
    resumes only with the world size that wrote it."""
    torch = require("torch")
    state = json.loads((path / "state.json").read_text())
    if state.get("sharded_optimizer"):
        if state.get("world") != world:
            raise UserError(f"{path}: written by {state.get('world')} FSDP processes; resume it with as many (not {world})")
        file = path / f"optimizer-rank{rank:05d}.pt"
    else:
        file = path / "optimizer.pt"
    optimizer.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
