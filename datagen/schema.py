"""The sigma-set data contract (FORMAT.md), /1 and /2: keys, member names and the metadata object.

The final writer, the validators, the exporters and the trainer import it; no other module
defines keys or field names.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_V1 = "sigma-set/1"
SCHEMA_V2 = "sigma-set/2"
SCHEMA_VERSION = SCHEMA_V2  # what the writers write; readers read READABLE_SCHEMAS
READABLE_SCHEMAS = (SCHEMA_V1, SCHEMA_V2)

KEY_RE = re.compile(r"^\d{6}_\d{6}$")
# A member of a shard: `<key>.<field>`, field made of safe characters only. Checked on every
# read so a crafted tar cannot write outside, shadow another sample or smuggle odd types.
MEMBER_RE = re.compile(r"^(\d{6}_\d{6})\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)$")

IMAGE_FIELDS = ("png", "jpg")
JSON_FIELD = "json"
DEPTH_FIELD = "depth.npy"
# sigma-set/2: the same five members in every sample, whatever its subject count.
DEPTH_PNG_FIELD = "depth.png"
INSTANCES_FIELD = "instances.png"
IDENTITIES_FIELD = "identities.png"


def sample_key(shard: int, index: int) -> str:
    return f"{shard:06d}_{index:06d}"


def mask_field(i: int) -> str:
    return f"mask_{i:02d}.png"


def identity_field(i: int) -> str:
    return f"id_{i:02d}.png"


def crop_field(i: int) -> str:
    return f"crop_{i:02d}.png"


def routing_intensity(i: int) -> int:
    """Subject i (0-based, in identity order) is painted with 10 * (i + 1) in routing maps."""
    return 10 * (i + 1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Box3D(_Strict):
    center: list[float] = Field(min_length=3, max_length=3)
    extent: list[float] = Field(min_length=3, max_length=3)
    rotation: list[list[float]] = Field(min_length=3, max_length=3)
    corners: list[list[float]] = Field(min_length=8, max_length=8)


class IdentitySize(_Strict):
    width: int
    height: int
    source: Literal["repose", "reference"] | None = None  # sigma-set/2: how the identity was made


class Subject(BaseModel):
    # Stages may add fields under their own name (FORMAT.md), so extra keys are allowed here.
    model_config = ConfigDict(extra="allow")

    name: str
    caption: str
    intensity: int
    box_2d: list[int] = Field(min_length=4, max_length=4)
    box_area_frac: float
    mask_area_frac: float
    score: float
    box_3d: Box3D
    identity: IdentitySize


class Prompt(_Strict):
    full: str
    background: str


class Camera(_Strict):
    model: Literal["pinhole"] = "pinhole"
    fx: float
    fy: float
    cx: float
    cy: float


class DepthInfo(_Strict):
    units: Literal["m"] = "m"
    source: str
    # sigma-set/2's depth.png: z = exp(log_min + (v - 1) * (log_max - log_min) / 65534), v > 0
    encoding: Literal["log16"] | None = None
    log_min: float | None = None
    log_max: float | None = None


class Source(_Strict):
    """Where a sigma-set/2 sample came from."""

    kind: Literal["generated", "ingested"]
    dataset: str
    id: str
    # An ingested sample's dataset licence and citation, as its source states them (None: unstated).
    licence: str | None = None
    citation: str | None = None


class Generation(_Strict):
    seed: int
    # The seed namespace: an evaluation run's samples are never a training run's (datagen.seeds).
    split: Literal["train", "eval"] = "train"
    models: dict[str, str]
    # Per stage with a real model: model id, revision, dtype and the sampling settings.
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Provenance(_Strict):
    run_id: str
    config_sha256: str
    datagen_version: str


class TruthSubject(_Strict):
    name: str
    box_3d: Box3D


class Truth(_Strict):
    subjects: list[TruthSubject]


class SampleMeta(BaseModel):
    model_config = ConfigDict(extra="allow")  # stage-named sections are allowed (FORMAT.md)

    schema_: Literal["sigma-set/1", "sigma-set/2"] = Field(SCHEMA_VERSION, alias="schema")
    key: str = Field(pattern=KEY_RE.pattern)
    width: int
    height: int
    prompt: Prompt
    subjects: list[Subject]
    camera: Camera
    depth: DepthInfo
    generation: Generation
    provenance: Provenance
    truth: Truth | None = None
    source: Source | None = None

    @model_validator(mode="after")
    def _v2_says_more(self) -> SampleMeta:
        if self.schema_ != SCHEMA_V2:
            return self
        if self.source is None:
            raise ValueError("sigma-set/2 needs source")
        d = self.depth
        if d.encoding != "log16" or d.log_min is None or d.log_max is None or d.log_max < d.log_min:
            raise ValueError("sigma-set/2 needs depth.encoding log16 with log_min <= log_max")
        if any(subject.identity.source is None for subject in self.subjects):
            raise ValueError("sigma-set/2 needs subjects[i].identity.source")
        return self
