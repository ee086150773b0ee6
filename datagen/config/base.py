"""What every stage's settings share: strict models, how a stage runs (exec), what it costs
(cost), and where a real backend's weights come from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ExecConfig(Strict):
    """How a stage runs. Never changes what it produces, so it is left out of fingerprints."""

    cpus: float = Field(1.0, gt=0, description="CPUs each worker of this stage reserves")
    gpus: float = Field(0.0, ge=0, description="GPUs each worker reserves (fractions share a GPU)")
    concurrency: int = Field(1, ge=1, description="workers in this stage's pool")
    batch_size: int = Field(8, ge=1, description="samples per model call")
    retries: int = Field(2, ge=0, description="extra attempts of a (stage, shard) before it is marked failed")
    max_error_share: float = Field(
        0.5, ge=0, le=1, description="share of a shard's samples that may raise before the shard fails"
    )


class CostConfig(Strict):
    """A stage's cost model, for `datagen plan`, pool balancing and simulated runs.

    Never changes what a stage produces, so it is left out of fingerprints. Costs are seconds
    on one whole GPU for a GPU stage (a worker with a fraction of one takes proportionally
    longer), CPU seconds of one worker otherwise. Reject rates are what this stage is expected
    to throw away where the recipe's filters apply early (`filters.apply: early`).
    """

    s_per_sample: float = Field(0.0, ge=0, description="seconds per sample entering the stage")
    s_per_subject: float = Field(0.0, ge=0, description="plus seconds per subject entering the stage")
    sample_reject: float = Field(0.0, ge=0, le=1, description="expected share of entering samples rejected here")
    subject_drop: float = Field(
        0.0, ge=0, le=1, description="expected share of subjects dropped here from the samples it keeps"
    )
    source: str = Field("estimate", description="where the figures come from: 'estimate', or what measured them")

    def seconds(self, samples: float, subjects: float) -> float:
        """Worker-seconds (whole-GPU seconds for a GPU stage) for this much input."""
        return samples * self.s_per_sample + subjects * self.s_per_subject


class StageConfig(Strict):
    exec: ExecConfig = Field(default_factory=ExecConfig)
    cost: CostConfig = Field(default_factory=CostConfig)

    def model_ids(self) -> list[str]:
        """The models (hub ids or paths) the configured backend loads: checked before a run starts."""
        return []

    def with_backend(self, backend: str) -> StageConfig:
        """A copy running another backend (settings that only make sense per backend reset)."""
        return self.model_copy(update={"backend": backend}, deep=True)


DType = Literal["bfloat16", "float16", "float32", "auto"]


class ModelBackend(Strict):
    """Where a real backend's weights come from and how they run. Recorded in each sample."""

    revision: str | None = Field(None, description="hub revision (branch, tag or commit) of the model")
    dtype: DType = "bfloat16"
    device: str = Field("auto", description="'auto': the GPU Ray gave the worker, else the CPU")
    trust_remote_code: bool = Field(False, description="run code shipped with the model: only for models you trust")


__all__ = ["CostConfig", "DType", "ExecConfig", "ModelBackend", "StageConfig", "Strict"]
