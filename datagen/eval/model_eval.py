"""`datagen eval model`: check the request, record it in OUT/eval.json, run the Ray passes, write
the results. A second call with the same settings resumes; other settings in the same OUT are
refused in one line (results would mix two protocols)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datagen.errors import UserError
from datagen.eval.config import EvalConfig, load_eval_config
from datagen.eval.generation import Row
from datagen.train.config import TrainConfig, load_train_config

REQUEST = "eval.json"


@dataclass
class EvalRequest:
    config: str
    data: Path
    out: Path
    loras: list[Path] = field(default_factory=list)
    base: bool = False
    modes: list[str] | None = None
    overrides: list[str] = field(default_factory=list)
    workers: int | None = None
    address: str | None = None


def load_configs(request: EvalRequest) -> tuple[EvalConfig, TrainConfig]:
    overrides = list(request.overrides)
    if request.modes is not None:
        overrides.append(f"modes={json.dumps(request.modes)}")
    cfg = load_eval_config(request.config, overrides)
    train_overrides = list(cfg.generator.overrides)
    if cfg.models_dir is not None:
        train_overrides.append(f"models_dir={cfg.models_dir}")
    return cfg, load_train_config(cfg.generator.config, train_overrides)


def make_rows(request: EvalRequest, train: TrainConfig) -> list[Row]:
    from datagen.eval.lora_check import check_lora

    if not request.loras and not request.base:
        raise UserError("give at least one --lora, or --base to judge the base model")
    rows = [Row("base", "base", None)] if request.base else []
    for i, lora in enumerate(request.loras):
        file = check_lora(lora, train.model, train.models_dir, train.revision)
        # Named after the training run: RUN/lora/pytorch_lora_weights.safetensors -> RUN. The id
        # is also the adapter's name in peft, which refuses dots.
        named = lora.parent if lora.is_file() else lora
        named = named.parent if named.name == "lora" else named
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", named.name or "lora")
        rows.append(Row(f"lora{i}-{stem}", str(lora), str(file.resolve())))
    names = [r.name for r in rows]
    if len(set(names)) != len(names):
        raise UserError(f"--lora: {next(n for n in names if names.count(n) > 1)} given twice")
    return rows


def record_request(out: Path, cfg: EvalConfig, train: TrainConfig, data: Path) -> None:
    """OUT/eval.json: the settings every committed image and score was made with."""
    settings = {"data": str(data.resolve()), "eval": cfg.model_dump(mode="json"), "generator": train.model_dump(mode="json")}
    settings["eval"].pop("bottom_k", None)
    path = out / REQUEST
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError):
            before = None
        if before != settings:
            changed = sorted(k for k in settings if not isinstance(before, dict) or before.get(k) != settings[k])
            raise UserError(f"{out}: holds an eval made with other settings ({', '.join(changed) or REQUEST}); choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{REQUEST}.tmp"
    tmp.write_text(json.dumps(settings, indent=2))
    os.replace(tmp, path)


def eval_model(request: EvalRequest, say: Callable[[str], None]) -> dict:
    from datagen.eval.eval_set import eval_items, load_sample
    from datagen.eval.results import GRID_SAMPLES, write_results
    from datagen.eval.runner import run_eval_on_ray

    cfg, train = load_configs(request)
    if request.out.exists() and not request.out.is_dir():
        raise UserError(f"--out {request.out}: exists and is not a directory")
    items = eval_items(request.data)
    rows = make_rows(request, train)
    record_request(request.out, cfg, train, request.data)
    counts = run_eval_on_ray(cfg, train, rows, items, request.out, request.workers, request.address, say)
    samples = [load_sample(i) for i in items[:GRID_SAMPLES]]
    results = write_results(request.out, cfg, train, rows, [i.key for i in items], str(request.data), samples)
    return {**counts, "samples": results["samples"], "results": str(request.out / "results.json")}
