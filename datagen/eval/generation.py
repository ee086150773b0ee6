"""Eval generation, per sample: every mode's image for one row (a LoRA, or the base model),
through the same conditioning and sampler as `datagen sample`, committed at once.

A sample's images go to OUT/generated/<row>/<key>/<mode>.png with done.json (seconds per
image), written in a temporary directory renamed into place: a sample is either all there or
not there, so a killed eval resumes by skipping the keys it finds.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from datagen.eval.config import EvalConfig
from datagen.eval.eval_set import EvalItem, load_sample
from datagen.train.config import TrainConfig

# Eval mode -> datagen sample's structure mode.
SAMPLE_MODE = {"masks_depth": "masks", "boxes2d": "boxes2d", "boxes3d": "boxes3d", "full_depth": "full_depth", "mixed": "mixed"}
DONE = "done.json"


@dataclass(frozen=True)
class Row:
    """One line of the results: `name` as the user gave it (a LoRA path, or "base")."""

    id: str  # a directory name under generated/ and scores/
    name: str
    lora: str | None  # the checked weights file; None for the base model


def prompt_for(meta: dict, mode: str, template: str) -> str:
    """The paper's prompts (template "paper"): mask + depth with the background prompt, boxes
    with the full one; else one template for every mode."""
    from datagen.train.sampling import PAPER_TEMPLATES, prompt_text

    return prompt_text(meta, PAPER_TEMPLATES[SAMPLE_MODE[mode]] if template == "paper" else template)


def condition(decoded: dict, mode: str, train: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(I_C, I_S) for one eval mode, as `datagen sample` builds them."""
    from datagen.train.sampling import conditions

    return conditions(decoded, SAMPLE_MODE[mode], train.resolution, train.identity_size)


def sample_dir(out: Path, row: Row, key: str) -> Path:
    return out / "generated" / row.id / key


def is_generated(out: Path, row: Row, key: str) -> bool:
    return (sample_dir(out, row, key) / DONE).is_file()


def read_generated(out: Path, row: Row, key: str, modes: list[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    where = sample_dir(out, row, key)
    images = {m: np.asarray(Image.open(where / f"{m}.png").convert("RGB")) for m in modes}
    return images, json.loads((where / DONE).read_text())


class Generator:
    """A loaded FLUX.1 Kontext with every row's LoRA attached once; `use(row)` switches."""

    def __init__(self, cfg: EvalConfig, train: TrainConfig, rows: list[Row]) -> None:
        from datagen.models.hub import pick_device
        from datagen.train.model import load_kontext_pipeline

        self.cfg, self.train = cfg, train
        self.pipe = load_kontext_pipeline(train.model, train.models_dir, train.dtype, train.revision)
        self.pipe.to(pick_device("auto"))
        self.adapters = {}
        for row in rows:
            if row.lora is not None:
                path = Path(row.lora)
                self.pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=row.id)
                self.adapters[row.id] = row.id

    def use(self, row: Row) -> None:
        if not self.adapters:
            return
        if row.lora is None:
            self.pipe.disable_lora()
        else:
            self.pipe.enable_lora()
            self.pipe.set_adapters([row.id], adapter_weights=[1.0])

    def images(self, item: EvalItem, decoded: dict) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        from datagen.train.generate import generate

        images, seconds = {}, {}
        for mode in self.cfg.modes:
            control, ids = condition(decoded, mode, self.train)
            text = prompt_for(decoded["json"], mode, self.cfg.generator.prompt_template)
            start = time.perf_counter()
            images[mode] = generate(
                self.pipe, text, control, ids, self.cfg.seed + item.seed, steps=self.cfg.generator.steps,
                guidance=self.cfg.generator.guidance, max_sequence_length=self.train.max_sequence_length,
            )  # fmt: skip
            seconds[mode] = time.perf_counter() - start
        return images, seconds


def commit_generated(out: Path, row: Row, item: EvalItem, images: dict[str, np.ndarray], seconds: dict[str, float]) -> None:
    final = sample_dir(out, row, item.key)
    tmp = final.parent / f".tmp-{item.key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for mode, image in images.items():
        Image.fromarray(image).save(tmp / f"{mode}.png", compress_level=1)
    (tmp / DONE).write_text(json.dumps({"key": item.key, "subjects": item.subjects, "seconds": seconds}))
    try:
        os.replace(tmp, final)
    except OSError:  # another worker committed the same sample first: keep that one
        shutil.rmtree(tmp, ignore_errors=True)


def generate_item(gen: Generator, out: Path, row: Row, item: EvalItem) -> str:
    """Generate and commit one (row, sample) unless it is already there; 'done' or 'skipped'."""
    if is_generated(out, row, item.key):
        return "skipped"
    gen.use(row)
    images, seconds = gen.images(item, load_sample(item))
    commit_generated(out, row, item, images, seconds)
    return "done"
