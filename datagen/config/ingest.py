"""What `datagen ingest` reads: a dataset (`source:` in an ingest run's config), row i as
sample i. The readers are datagen.ingest.sources; the stages' settings are in config.stages
(`stages.source`, `stages.caption`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from datagen.config.base import Strict

Kind = Literal["anyinsertion", "musar", "folder", "hf", "dreambooth"]


class SubjectColumns(Strict):
    """Which column holds what of one subject (hf); each optional."""

    name: str | None = None
    caption: str | None = None
    mask: str | None = Field(None, description="the subject's mask at the target's size (white = subject)")
    reference: str | None = Field(None, description="an image of the subject alone")
    reference_mask: str | None = Field(None, description="the reference's mask: the identity is cut out with it")

    @model_validator(mode="after")
    def _mask_needs_reference(self) -> SubjectColumns:
        if self.reference_mask is not None and self.reference is None:
            raise ValueError("reference_mask needs a reference column")
        return self


class HFColumns(Strict):
    image: str = Field(description="the target image")
    prompt: str | None = None
    subjects: list[SubjectColumns] = Field(min_length=1, description="one entry per subject of every row")


class SourceConfig(Strict):
    kind: Kind
    path: str = Field(description="a local directory or .parquet file, or a hub id (read from the local cache offline)")
    split: str = "train"
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    licence: str | None = Field(None, description="overrides the kind's default")
    citation: str | None = Field(None, description="overrides the kind's default")
    columns: HFColumns | None = Field(None, description="hf only: which column is what")

    @model_validator(mode="after")
    def _columns_for_hf_only(self) -> SourceConfig:
        if (self.kind == "hf") != (self.columns is not None):
            raise ValueError("`columns` is required for kind hf and only for it")
        return self



__all__ = ["HFColumns", "Kind", "SourceConfig", "SubjectColumns"]
