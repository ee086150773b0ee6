"""The sigma-set/1 data contract (FORMAT.md): keys, member names and the metadata object.

The final writer, the validators, the exporters and the trainer import it; no other module
defines keys or field names.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "sigma-set/1"

KEY_RE = re.compile(r"^\d{6}_\d{6}$")
# A member of a shard: `<key>.<field>`, field made of safe characters only. Checked on every
# read so a crafted tar cannot write outside, shadow another sample or smuggle odd types.
MEMBER_RE = re.compile(r"^(\d{6}_\d{6})\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)$")

IMAGE_FIELDS = ("png", "jpg")
JSON_FIELD = "json"
DEPTH_FIELD = "depth.npy"


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


class Generation(_Strict):
    seed: int
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

    schema_: Literal["sigma-set/1"] = Field(SCHEMA_VERSION, alias="schema")
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
