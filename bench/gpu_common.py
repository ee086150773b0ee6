"""The torch plumbing the GPU benchmarks share (gpu_generation, gpu_perception, gpu_train): the
device, timing with the GPU drained, peak memory, building random-weight models on the device, and
per-batch-size runs that survive out-of-memory. The models' configs are in model_configs.py.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
from collections.abc import Callable
from typing import TypeVar

import torch
from common import timed as wall_timed  # bench/, the script's dir

T = TypeVar("T")


# ---------------------------------------------------------------- device


def bench_device(tiny: bool, what: str = "benchmark") -> torch.device:
    """CUDA where there is one. Without it only a --tiny smoke run goes on, on the CPU: full-size
    figures from a CPU would mean nothing."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if not tiny:
        sys.exit(f"the full-size {what} needs a CUDA GPU; --tiny runs a CPU smoke test")
    return torch.device("cpu")


def bench_dtype(device: torch.device) -> torch.dtype:
    """bf16 on the GPU; float32 on the CPU, where bf16 matmuls are slow and prove nothing."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: torch.device) -> tuple[float, T]:
    """(seconds, result) of fn(), with the GPU drained on both sides so queued work counts."""
    return wall_timed(fn, drain=lambda: sync(device))


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


# ---------------------------------------------------------------- models


@contextlib.contextmanager
def build_on(device: torch.device, dtype: torch.dtype):
    """Create parameters straight on the device in the target dtype: a 12B model initialised in
    float32 on the CPU first would need 48 GB of RAM and minutes."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with device:
            yield
    finally:
        torch.set_default_dtype(old)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- batch sizes


def sig(row: dict) -> dict:
    """Floats to 4 significant digits: readable, and a tiny run's milliseconds never round to 0."""
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in row.items()}


def per_batch(name: str, batch_sizes: list[int], fn, device: torch.device) -> dict[str, dict | str]:
    """fn(b) for each batch size; an out-of-memory batch size is recorded, not fatal."""
    out: dict[str, dict | str] = {}
    for b in batch_sizes:
        try:
            out[str(b)] = sig(fn(b))
        except torch.OutOfMemoryError:
            out[str(b)] = "oom"
        free(device)  # after the except block, so the traceback's tensors are gone
        print(f"{name} batch {b}: {json.dumps(out[str(b)])}", flush=True)
    return out


def best(batches: dict[str, dict | str], key: str) -> tuple[int | None, float | None]:
    """(batch size, figure) of the lowest `key` among the batch sizes that ran."""
    ok = {int(b): r[key] for b, r in batches.items() if isinstance(r, dict)}
    if not ok:
        return None, None
    b = min(ok, key=ok.get)
    return b, ok[b]
