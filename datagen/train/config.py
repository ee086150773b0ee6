"""`datagen train`'s configuration: one pydantic model, read from YAML with `--set` overrides,
checked before any model loads (one-line errors naming the file or flag and the key)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from datagen.config import DType, Strict, apply_overrides, read_yaml, resolve_config_path, validate_as
from datagen.errors import UserError
from datagen.train.defaults import INFERENCE_GUIDANCE, INFERENCE_STEPS
from datagen.train.model import DEFAULT_LORA_TARGETS


class LoraConfig(Strict):
    rank: int = Field(128, ge=1, description="the paper: rank = alpha = 128")
    alpha: int = Field(128, ge=1)
    targets: list[str] = Field(default_factory=lambda: list(DEFAULT_LORA_TARGETS), min_length=1)


class OptimizerConfig(Strict):
    name: Literal["prodigy", "adamw"] = "prodigy"
    lr: float = Field(1.0, gt=0, description="Prodigy: 1.0 (it finds the step size); AdamW: e.g. 1e-4")
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = Field(1.0, gt=0)


class DataSource(Strict):
    """One dataset the trainer draws from: a run dir, a folder of shards, a glob or a brace URL."""

    path: str
    name: str | None = Field(None, description="how stages' data_weights and the logs call it (default: from the path)")
    weight: float = Field(1.0, gt=0, description="its share of the draws, relative to the other sources'")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        parts = [p for p in Path(self.path.rstrip("/")).parts if p not in ("final", "/")]
        return parts[-1] if parts else self.path


class CurriculumStage(Strict):
    """A span of steps trained on samples with a subject count in [min_subjects, max_subjects],
    drawn from the data sources by `data_weights` (source name -> weight; an unnamed source is
    not drawn) or, when it is unset, by each source's own weight."""

    steps: int = Field(gt=0)
    min_subjects: int = Field(1, ge=1)
    max_subjects: int = Field(10, ge=1)
    data_weights: dict[str, float] | None = None

    @model_validator(mode="after")
    def _range(self) -> CurriculumStage:
        if self.min_subjects > self.max_subjects:
            raise ValueError("min_subjects must not exceed max_subjects")
        if self.data_weights is not None and (any(w < 0 for w in self.data_weights.values()) or not any(self.data_weights.values())):
            raise ValueError("data_weights: weights must be >= 0, and at least one > 0")
        return self


def paper_curriculum() -> list[CurriculumStage]:
    """RECIPE.md: 30k steps on <= 4 subjects, 20k on >= 3, 20k on > 4."""
    return [
        CurriculumStage(steps=30_000, min_subjects=1, max_subjects=4),
        CurriculumStage(steps=20_000, min_subjects=3, max_subjects=10),
        CurriculumStage(steps=20_000, min_subjects=5, max_subjects=10),
    ]


class AugmentConfig(Strict):
    """RECIPE.md's training augmentations, drawn per sample from a seeded stream."""

    structure_modes: list[Literal["masks", "boxes3d", "boxes2d"]] = Field(
        default_factory=lambda: ["masks", "boxes3d", "boxes2d"], min_length=1
    )
    channel_drop_p: float = Field(0.1, ge=0, le=1, description="drop one of I_C's three channels")
    max_dilate_px: int = Field(4, ge=0, description="random dilation of masks and boxes, up to this")
    aspect_jitter: float = Field(0.01, ge=0, lt=1, description="relative jitter of a box's aspect ratio")


class TrainConfig(Strict):
    model: str = Field("black-forest-labs/FLUX.1-Kontext-dev", description="a FLUX.1 Kontext pipeline id or path")
    revision: str | None = None
    models_dir: str | None = None
    dtype: DType = Field("bfloat16", description="the frozen base; LoRA weights train in fp32")
    seed: int = Field(0, ge=0)
    resolution: int = Field(512, ge=16, description="target and control side, a multiple of 16")
    identity_size: int = Field(512, ge=16, description="each identity image's side in I_S, a multiple of 16")
    max_sequence_length: int = Field(512, ge=16, le=512)
    guidance: float = Field(1.0, ge=0, description="Kontext's distilled guidance embedding during training")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    batch_size: int = Field(1, ge=1, description="per process; the paper: 8 in total on 8 GPUs")
    grad_accum: int = Field(1, ge=1)
    gradient_checkpointing: bool = True
    curriculum: list[CurriculumStage] = Field(default_factory=paper_curriculum, min_length=1)
    # What to train on; `datagen train --data PATH` (repeatable, NAME=PATH to name one) replaces it.
    data: list[DataSource] = []
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    shuffle_buffer: int = Field(256, ge=1)
    loader_workers: int = Field(2, ge=0)
    checkpoint_every: int = Field(1000, ge=1)
    sample_every: int = Field(0, ge=0, description="steps between sample images in OUT/samples (0: never)")
    sample_steps: int = Field(INFERENCE_STEPS, ge=1, description="denoising steps of those sample images")
    sample_guidance: float = Field(
        INFERENCE_GUIDANCE, ge=0, description="their embedded guidance: the default of `datagen sample` and eval too"
    )
    log: Literal["auto", "tensorboard", "wandb", "none"] = "auto"

    @model_validator(mode="after")
    def _sizes(self) -> TrainConfig:
        for name in ("resolution", "identity_size"):
            if getattr(self, name) % 16:
                raise ValueError(f"{name}: {getattr(self, name)} must be a multiple of 16 (VAE 8x, then 2x2 patches)")
        return self

    def mix(self, stage: CurriculumStage, sources: list[DataSource] | None = None) -> list[tuple[DataSource, float]]:
        """(source, probability) for a stage: its data_weights, or the sources' own weights."""
        sources = self.data if sources is None else sources
        if stage.data_weights is None:
            weights = [s.weight for s in sources]
        else:
            known = {s.label for s in sources}
            unknown = sorted(set(stage.data_weights) - known)
            if unknown:
                raise UserError(f"curriculum: data_weights names {unknown[0]!r}, not a data source ({', '.join(sorted(known))})")
            weights = [stage.data_weights.get(s.label, 0.0) for s in sources]
        total = sum(weights)
        if total <= 0:
            raise UserError("curriculum: a stage draws from no data source (all its weights are 0)")
        return [(s, w / total) for s, w in zip(sources, weights, strict=True)]

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.curriculum)

    def stage_at(self, step: int) -> tuple[int, CurriculumStage]:
        """The curriculum stage that trains step `step` (0-based); past the end, the last one."""
        start = 0
        for i, stage in enumerate(self.curriculum):
            if step < start + stage.steps:
                return i, stage
            start += stage.steps
        return len(self.curriculum) - 1, self.curriculum[-1]


def load_train_config(name_or_path: str, overrides: list[str] | None = None) -> TrainConfig:
    """A training config file (or a bundled name: train_sigma, train_tiny) with --set overrides."""
    path: Path = resolve_config_path(name_or_path)
    data = read_yaml(path)
    flags = apply_overrides(data, overrides or [])
    return validate_as(TrainConfig, data, str(path), flags)
