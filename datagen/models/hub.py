"""Finding and loading model weights: lazy imports, model ids or local paths, one-line errors.

A model is named by its hub id (`Qwen/Qwen3-8B`) or a local directory. With `models_dir`
set, `models_dir/<id>` is used when it exists, so a mirror of the hub (or the tiny models of
`datagen tiny-models`) serves the real ids unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from datagen.errors import BackendUnavailable, UserError

T = TypeVar("T")

# Which extra brings which module, for the one-line message when it is missing.
EXTRA_OF = {
    "torch": "llm",
    "transformers": "llm",
    "xgrammar": "llm",
    "diffusers": "diffusion",
    "vllm": "vllm",
    "moge": "moge",
    "groundingdino": "gsam",
    "segment_anything": "gsam",
    "pyiqa": "eval",
    "sentencepiece": "eval",
}


def require(module: str, extra: str | None = None) -> Any:
    """Import a heavy optional module, or fail in one line naming the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra = extra or EXTRA_OF.get(module.split(".")[0], module)
        raise BackendUnavailable(
            f"{module} is not installed ({e.__class__.__name__}: {e}); install it with: pip install 'datagen[{extra}]'"
        ) from None


def resolve_model(model: str, models_dir: str | None) -> str:
    """A local directory for `model` if there is one, else the id itself (for the hub cache)."""
    if models_dir:
        local = Path(models_dir).expanduser() / model
        if local.is_dir():
            return str(local)
    return model


# Kinds of model: the extra and module that load one, and the file every model of the kind has
# at its root (what `model_problem` looks for in the hub cache).
MODEL_KINDS = {
    "transformers": ("llm", "transformers", "config.json"),
    "perception": ("perception", "transformers", "config.json"),
    "vllm": ("vllm", "vllm", "config.json"),
    "diffusers": ("diffusion", "diffusers", "model_index.json"),
    "moge": ("moge", "moge", "model.pt"),
}


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def model_problem(stage: str, kind: str, model: str, revision: str | None, models_dir: str | None) -> str | None:
    """Why a stage's model cannot load, checked before any worker starts; None if it may.

    Offline (HF_HUB_OFFLINE=1) a model must be a local directory or in the hub cache; online
    a hub id may still download, so only its extra is checked.
    """
    extra, module, marker = MODEL_KINDS[kind]
    if importlib.util.find_spec(module) is None:
        return f"stages.{stage}: this backend needs {module}: pip install 'datagen[{extra}]'"
    path = resolve_model(model, models_dir)
    if Path(path).expanduser().is_dir():
        return None
    looks_local = model.startswith(("/", "./", "../", "~")) or model.count("/") > 1
    if looks_local:
        return f"stages.{stage}: model {model!r}: no such directory"
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, marker, revision=revision), str):
            where = f"models_dir ({models_dir}), " if models_dir else ""
            return f"stages.{stage}: model {model!r} is not in {where}the hub cache, and HF_HUB_OFFLINE is set"
    return None


def load_model(stage: str, model: str, load: Callable[[], T]) -> T:
    """Run a `from_pretrained` call; a missing or unknown model becomes one line naming both."""
    try:
        return load()
    except (OSError, ValueError) as e:
        # OSError: not found offline / no such repo / missing files; ValueError: not a model of
        # the expected kind (a config of another architecture).
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        where = stage if "." in stage else f"stages.{stage}"  # "metrics.dino" is already a config path
        raise UserError(f"{where}: cannot load model {model!r}: {first[:300]}") from None


def torch_dtype(name: str) -> Any:
    torch = require("torch")
    if name == "auto":
        return "auto"
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def pretrained_kwargs(cfg: Any) -> dict[str, Any]:
    """from_pretrained's keywords for a ModelBackend config: revision, dtype ("auto" leaves the
    checkpoint's), and remote code only when the config says so."""
    kw: dict[str, Any] = {"revision": cfg.revision}
    if cfg.dtype != "auto":
        kw["dtype"] = torch_dtype(cfg.dtype)
    if cfg.trust_remote_code:
        kw["trust_remote_code"] = True
    return kw


def pick_device(requested: str) -> str:
    """'auto' is the first CUDA device Ray gave this worker, else the CPU."""
    if requested != "auto":
        return requested
    torch = require("torch")
    return "cuda" if torch.cuda.is_available() else "cpu"
