"""What `datagen eval` runs: the generator's settings and the metric models, one YAML
(configs/eval_model_paper.yaml for the paper's models, configs/eval_model_tiny.yaml for the tiny
random-weight ones). Every model id lands in results.json, so two results say what judged them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from datagen.config.base import ModelBackend, Strict
from datagen.config.stages import DepthConfig
from datagen.train.defaults import INFERENCE_GUIDANCE, INFERENCE_STEPS

# The paper's three evaluation settings (Table 1), and Table 3's "Full depth" and appendix
# A.5's mixed granularity (one layout, subjects by mask, 2D box and 3D box in turn).
EVAL_MODES: tuple[str, ...] = ("masks_depth", "boxes2d", "boxes3d", "full_depth", "mixed")
PAPER_MODES: tuple[str, ...] = ("masks_depth", "boxes2d", "boxes3d")


class MetricModel(ModelBackend):
    """One metric model: a hub id or a path under models_dir, loaded with from_pretrained."""

    model: str
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "float32"
    batch_size: int = Field(8, ge=1)


class MetricModels(Strict):
    dino: MetricModel = MetricModel(model="facebook/dinov2-base")
    siglip: MetricModel = MetricModel(model="google/siglip-so400m-patch14-384")
    # CLIP-IQA (Wang et al. 2023): softmax of the image against "Good photo." / "Bad photo.".
    clip_iqa: MetricModel = MetricModel(model="openai/clip-vit-base-patch32")
    # MUSIQ through pyiqa's architecture; `model` is its checkpoint file under models_dir.
    musiq: MetricModel = MetricModel(model="pyiqa/musiq_koniq_ckpt-e95806b9.pth")
    # The depth stage's own settings: MoGe-2 (the paper's) or a transformers depth model.
    depth: DepthConfig = DepthConfig(backend="moge", dtype="float32")


class GeneratorConfig(Strict):
    # The training YAML the LoRA was trained with: base model, resolution, identity size, dtype.
    config: str = "train_sigma"
    overrides: list[str] = []
    steps: int = Field(INFERENCE_STEPS, ge=1)
    guidance: float = INFERENCE_GUIDANCE
    # paper: mask+depth modes take "Place these subjects in <background>", box modes the full
    # prompt; background / full: one template for every mode.
    prompt_template: Literal["paper", "background", "full"] = "paper"


class IngestPreset(Strict):
    """How `datagen eval dreambooth` ingests its folder: an ingest config (run.split: eval) and
    --set overrides; the eval's models_dir is passed on."""

    config: str = "ingest_dreambooth"
    overrides: list[str] = []


class EvalConfig(Strict):
    models_dir: str | None = None
    seed: int = 0
    modes: list[str] = list(PAPER_MODES)
    generator: GeneratorConfig = GeneratorConfig()
    metrics: MetricModels = MetricModels()
    # The lowest `bottom_k` samples of each distribution go on `eval data`'s contact sheet.
    bottom_k: int = Field(8, ge=1)
    # Which of the paper's tables results.md sets ours beside: table1 (its held-out split),
    # table4 (DreamBooth).
    paper_table: Literal["table1", "table4"] = "table1"
    # `datagen eval dreambooth`: how the DreamBooth folder becomes the evaluation run.
    ingest: IngestPreset = IngestPreset()

    @field_validator("modes")
    @classmethod
    def _modes(cls, modes: list[str]) -> list[str]:
        bad = [m for m in modes if m not in EVAL_MODES]
        if bad or not modes:
            raise ValueError(f"{bad[0] if bad else '[]'}: modes are {', '.join(EVAL_MODES)}")
        return list(dict.fromkeys(modes))


def load_eval_config(name_or_path: str, overrides: list[str] | None = None) -> EvalConfig:
    """A bundled name (eval_model_paper, eval_model_tiny) or a YAML path, with --set overrides."""
    from datagen.config.load import apply_overrides, read_yaml, resolve_config_path, validate_as

    path = resolve_config_path(name_or_path)
    data = read_yaml(path)
    flags = apply_overrides(data, overrides or [])
    return validate_as(EvalConfig, data, str(path), flags)


__all__ = ["EVAL_MODES", "PAPER_MODES", "EvalConfig", "GeneratorConfig", "IngestPreset", "MetricModel", "MetricModels", "load_eval_config"]
