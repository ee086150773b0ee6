"""What every benchmark script shares: the checkout on sys.path, where results go, timing, the
datagen command, and the smoke-run defaults. Standard library only, so the CPU benchmarks run on
the core install; the torch plumbing of the GPU benchmarks is in gpu_common.py.

A script imports it by name (`from common import ...`): `python bench/x.py` puts bench/ first on
sys.path. Import it before anything from datagen, so a run from outside the checkout finds it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# Run as a script from anywhere: datagen and configs/ resolve from this checkout.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

T = TypeVar("T")


def results_path(name: str, tiny: bool = False) -> Path:
    """The default JSON of a benchmark; a smoke run's goes beside it, never over the real figures."""
    return RESULTS / (f"{name}_tiny.json" if tiny else f"{name}.json")


def write_json(path: Path | str, report: dict, indent: int = 1) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=indent) + "\n")


def timed(fn: Callable[[], T], drain: Callable[[], None] | None = None) -> tuple[float, T]:
    """(seconds, result) of fn(). drain() runs before and inside the timing, so that work queued
    asynchronously (a GPU's) is counted where it was issued."""
    if drain is not None:
        drain()
    start = time.perf_counter()
    result = fn()
    if drain is not None:
        drain()
    return time.perf_counter() - start, result


def datagen_cli(*args: str) -> list[str]:
    """The command line of `datagen ARGS` in this interpreter (a subprocess: its own Ray, its own
    memory, timed from outside)."""
    return [sys.executable, "-m", "datagen.cli", *args]


def int_list(text: str) -> list[int]:
    """argparse type of "1,2,4"."""
    return [int(x) for x in text.split(",") if x]


def fill_defaults(args: argparse.Namespace, defaults: dict[str, Any], smoke: dict[str, Any], is_smoke: bool) -> None:
    """Set every option left at None to its default: the smoke run's (--tiny, --small) or the real one."""
    for key, value in (smoke if is_smoke else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def toy_spec(full: dict, toy: dict) -> dict:
    """full with each model's sub-config updated by toy's (same keys); non-dict entries replaced."""
    return {k: {**v, **toy[k]} if isinstance(v, dict) else toy[k] for k, v in full.items()}
