"""From committed per-sample scores to what people read: results.json (the paper's six metrics
per row and mode, overall and split into single / multi subject as Table 1 is), results.md
beside the paper's numbers, scores.parquet (one line per row, sample and mode) and a grid PNG
per mode (conditioning | identities | each row's output)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from datagen.eval.config import EvalConfig
from datagen.eval.generation import Row, condition, read_generated
from datagen.eval.judging import score_path
from datagen.eval.paper import METRICS
from datagen.eval.results_md import render_results
from datagen.train.config import TrainConfig

EXTRA = ("depth_mse_8bit", "depth_metric_mse")
DEPTH_NOTE = ("depth_mse: MoGe-style depth of the output against the conditioning depth over the subject masks, "
              "each map's inverse depth min-max normalised over the compared pixels (0-1); depth_mse_8bit: the same "
              "on the 0-255 scale the paper's figures read like; depth_metric_mse: metres^2 after median scale alignment")  # fmt: skip
GRID_SAMPLES = 8


def _mean(values: list[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _figures(records: list[dict], mode: str) -> dict[str, Any]:
    """Means over images of per-image figures (identity scores are already subject means)."""
    out = {m: _mean([r["modes"][mode][m] for r in records]) for m in (*METRICS, *EXTRA)}
    return {**out, "samples": len(records)}


def read_scores(out: Path, rows: list[Row], keys: list[str]) -> dict[str, list[dict]]:
    return {row.id: [json.loads(score_path(out, row.id, k).read_text()) for k in keys] for row in rows}


def aggregate(cfg: EvalConfig, rows: list[Row], scores: dict[str, list[dict]]) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for row in rows:
        records = scores[row.id]
        per_mode = {}
        for mode in cfg.modes:
            single = [r for r in records if r["subjects"] == 1]
            multi = [r for r in records if r["subjects"] > 1]
            per_mode[mode] = {**_figures(records, mode), "single": _figures(single, mode) if single else None,
                              "multi": _figures(multi, mode) if multi else None}  # fmt: skip
        table[row.name] = per_mode
    return table


def seconds_per_image(rows: list[Row], scores: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Per row, mean generation seconds per image by subject count (the paper's speed claim)."""
    out = {}
    for row in rows:
        by_count: dict[int, list[float]] = defaultdict(list)
        for r in scores[row.id]:
            by_count[r["subjects"]] += list(r["seconds"].values())
        out[row.name] = {str(n): round(float(np.mean(v)), 4) for n, v in sorted(by_count.items())}
    return out


def write_parquet(path: Path, rows: list[Row], scores: dict[str, list[dict]]) -> None:
    import pandas as pd

    lines = []
    for row in rows:
        for r in scores[row.id]:
            for mode, figures in r["modes"].items():
                flat = {k: v for k, v in figures.items() if not k.endswith("_subjects")}
                lines.append({"row": row.name, "key": r["key"], "mode": mode, "subjects": r["subjects"],
                              "seconds": r["seconds"].get(mode), **flat})  # fmt: skip
    tmp = path.with_name(f".{path.name}.tmp")
    pd.DataFrame(lines).to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.NEAREST if image.dtype == np.uint8 else Image.BILINEAR))


def write_grid(path: Path, mode: str, out: Path, rows: list[Row], samples: list[dict], train: TrainConfig) -> None:
    """One line per sample: I_C, the identity images side by side, then each row's output."""
    size = train.resolution
    lines = []
    for decoded in samples[:GRID_SAMPLES]:
        control, _ = condition(decoded, mode, train)
        ids = [_fit(np.asarray(x), size // 2) for x in decoded["identities"]]
        strip = np.zeros((size, size, 3), np.uint8)
        for i, x in enumerate(ids[:4]):
            strip[(i // 2) * (size // 2) : (i // 2 + 1) * (size // 2), (i % 2) * (size // 2) : (i % 2 + 1) * (size // 2)] = x
        outputs = [read_generated(out, row, decoded["key"], [mode])[0][mode] for row in rows]
        lines.append(np.concatenate([control, strip, *outputs], axis=1))
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(np.concatenate(lines, axis=0)).save(tmp)
    os.replace(tmp, path)


def models_of(cfg: EvalConfig, train: TrainConfig) -> dict[str, str]:
    m = cfg.metrics
    return {"generator": train.model, "dino": m.dino.model, "siglip": m.siglip.model, "clip_iqa": m.clip_iqa.model,
            "musiq": m.musiq.model, "depth": f"{m.depth.backend}:{m.depth.model}"}  # fmt: skip


def write_results(out: Path, cfg: EvalConfig, train: TrainConfig, rows: list[Row], keys: list[str], data: str, samples: list[dict]) -> dict:
    scores = read_scores(out, rows, keys)
    results = {
        "samples": len(keys),
        "data": data,
        "paper_table": cfg.paper_table,
        "models": models_of(cfg, train),
        "settings": {"steps": cfg.generator.steps, "guidance": cfg.generator.guidance, "seed": cfg.seed,
                     "prompt_template": cfg.generator.prompt_template, "resolution": train.resolution},  # fmt: skip
        "depth_mse_normalisation": DEPTH_NOTE,
        "rows": aggregate(cfg, rows, scores),
        "seconds_per_image": seconds_per_image(rows, scores),
    }
    for name, text in (("results.json", json.dumps(results, indent=2)), ("results.md", render_results(results))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)
    write_parquet(out / "scores.parquet", rows, scores)
    for mode in cfg.modes:
        write_grid(out / f"grid_{mode}.png", mode, out, rows, samples, train)
    return results
