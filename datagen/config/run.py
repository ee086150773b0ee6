"""The run configuration: the stages' settings plus the run, world, filters, output, simulate
and Ray sections; its recipe hash; and loading one from YAML or from a run directory."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from datagen.config.load import apply_overrides, read_yaml, validate_as
from datagen.config.base import Strict
from datagen.config.ingest import SourceConfig
from datagen.config.stages import STAGE_NAMES, StagesConfig
from datagen.errors import UserError
from datagen.world.scene import WorldConfig

class FilterRules(Strict):
    """RECIPE.md's subject filters, shared by segment (early) and filter (final check)."""

    min_subjects: int = Field(3, ge=1, description="keep samples with at least this many subjects (paper: > 2)")
    max_subjects: int = Field(10, ge=1)
    min_box_area_frac: float = Field(0.01, ge=0, le=1)
    max_box_area_frac: float = Field(0.40, ge=0, le=1)
    max_mask_overlap: float = Field(
        0.5, ge=0, le=1, description="overlap: score only: two masks whose intersection over the smaller mask "
        "exceeds this keep the higher-scored one (the paper: 0, any overlap)",
    )
    overlap: Literal["depth", "score"] = Field(
        "depth",
        description="depth: once depth is known, a pixel two subjects claim goes to the nearer one "
        "(sigma-set/2's exclusive masks) and a subject left with less than min_exclusive_share of its "
        "mask is dropped ('occluded'); score: the paper's rule first, overlapping masks keep one "
        "(max_mask_overlap), what overlap remains is then resolved by depth as sigma-set/2 requires",
    )
    min_exclusive_share: float = Field(
        0.5, ge=0, le=1, description="a subject keeping less of its mask than this, once masks are exclusive, is dropped"
    )
    box3d_margin_frac: float = Field(
        0.02, ge=0, le=1, description="projected 3D box corners may leave the image by this share of its size"
    )
    min_box3d_iou_2d: float = Field(
        0.3, ge=0, le=1, description="IoU of the projected 3D box's 2D extent with box_2d, at least"
    )
    apply: Literal["early", "last"] = Field(
        "early",
        description="early: each rule runs in the stage that measures it (segment: masks, boxes: 3D "
        "boxes), so later stages never work on what will be dropped; last: only the filter stage "
        "drops anything (the paper's order). The kept samples are the same.",
    )

    @model_validator(mode="after")
    def _ranges(self) -> FilterRules:
        if self.min_subjects > self.max_subjects:
            raise ValueError("min_subjects must not exceed max_subjects")
        if self.min_box_area_frac > self.max_box_area_frac:
            raise ValueError("min_box_area_frac must not exceed max_box_area_frac")
        return self


def parse_buckets(buckets: dict[str, int]) -> list[tuple[int, int, int]]:
    """{"3-4": 9000, "5": 100} -> [(3, 4, 9000), (5, 5, 100)], sorted; ValueError naming a bad one."""
    out = []
    for key, count in buckets.items():
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(key))
        if m is None or int(m.group(1)) < 1 or int(m.group(2) or m.group(1)) < int(m.group(1)):
            raise ValueError(f"target_buckets: {key!r} is not a subject count or range like '3-4'")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"target_buckets.{key}: must be a positive number of samples (got {count!r})")
        out.append((int(m.group(1)), int(m.group(2) or m.group(1)), count))
    out.sort()
    for (_, hi, _), (lo, _, _) in zip(out, out[1:]):
        if lo <= hi:
            raise ValueError(f"target_buckets: ranges overlap at {lo} subjects")
    return out


class RunSection(Strict):
    name: str = "run"
    seed: int = Field(0, ge=0)
    split: Literal["train", "eval"] = Field(
        "train", description="eval: a held-out evaluation run, its sample seeds in their own namespace "
        "(never a training scene) and `generation.split: eval` in every sample; `datagen train` refuses it",
    )
    num_samples: int = Field(64, gt=0)
    shard_size: int = Field(16, gt=0)
    width: int = Field(512, ge=32, le=4096)
    height: int = Field(512, ge=32, le=4096)
    target_kept: int | None = Field(
        None, gt=0, description="run until this many samples are kept, then keep exactly the first ones in "
        "index order (datagen.pipeline.target); num_samples is then the first estimate",
    )
    target_first_share: float = Field(
        0.5, gt=0, le=1, description="with a target: the share of num_samples (the first estimate) the first "
        "round runs; later rounds are sized by the survival measured, so a high estimate is not all spent",
    )
    target_buckets: dict[str, int] = Field(
        default_factory=dict, description="kept samples per subject-count bucket, e.g. {'3-4': 9000, '5-10': "
        "18000}: the first ones of each bucket in index order; target_kept is their sum",
    )

    @field_validator("target_buckets")
    @classmethod
    def _buckets(cls, v: dict[str, int]) -> dict[str, int]:
        parse_buckets(v)  # raises ValueError naming the bad bucket
        return v

    @model_validator(mode="after")
    def _target(self) -> "RunSection":
        total = sum(self.target_buckets.values())
        if self.target_buckets and self.target_kept is not None and self.target_kept != total:
            raise ValueError(f"target_kept ({self.target_kept}) must equal the sum of target_buckets ({total})")
        return self

    @property
    def kept_target(self) -> int | None:
        """The kept samples a `--target-kept` run stops at (the buckets' sum when they are given)."""
        return sum(self.target_buckets.values()) if self.target_buckets else self.target_kept

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
            raise ValueError("must be letters, digits, '_', '-' or '.', starting with a letter or digit")
        return v


class OutputConfig(Strict):
    keep_truth: bool = False
    image_format: Literal["png", "jpg"] = "png"
    jpeg_quality: int = Field(95, ge=1, le=100)
    png_compress_level: int = Field(6, ge=0, le=9)
    write_crops: bool | None = Field(
        None, description="sigma-set/1 runs only, ignored now: sigma-set/2 stores no crops (readers derive them)"
    )
    verify: Literal["index", "size", "sha256"] = Field(
        "index",
        description="how a resumed run checks committed shards before reusing them: index (size and a "
        "checksum of the tar's member headers, cheap), size, or sha256 (re-reads the whole run; "
        "`datagen verify RUN` does the same on demand)",
    )


class SimulateConfig(Strict):
    """Simulated GPU stages: a smoke test of a cluster and the orchestration benchmark.

    Each stage with `exec.gpus > 0` runs its procedural backend instead of its model, holds
    its GPU share until `stages.<name>.cost` says the model would have finished (times
    `time_scale`), and rejects samples and drops subjects at that cost model's rates, drawn
    per sample. CPU stages run for real.
    """

    enabled: bool = False
    time_scale: float = Field(1.0, gt=0, description="multiplies every cost: 0.01 turns a GPU-hour into 36 s")


class RayConfig(Strict):
    address: str | None = None
    num_cpus: int | None = Field(None, ge=1, description="local Ray only: CPUs to declare (default: this machine's)")
    num_gpus: int | None = Field(
        None, ge=0, description="local Ray only: GPUs to declare (default: detected); more than exist only with simulate"
    )
    fuse_cpu_stages: bool = Field(
        True,
        description="consecutive CPU-only stages share one pool whose workers run them back to back "
        "on a shard (one worker per free CPU); false gives every stage its own pool. GPU stages "
        "always have their own pool.",
    )
    balance_pools: bool = Field(
        True,
        description="size GPU pools by the stages' cost models (when every GPU stage has one), so each "
        "gets GPUs in proportion to its work; false: exec.concurrency",
    )
    no_progress_timeout_s: float = Field(-1, description="Ray Data's stall timeout; -1 off (model loads are slow)")


class RunConfig(Strict):
    models_dir: str | None = Field(
        None, description="a directory of models by id (models_dir/Qwen/Qwen3-8B): used before the hub cache"
    )
    run: RunSection = Field(default_factory=RunSection)
    world: WorldConfig = Field(default_factory=WorldConfig)
    filters: FilterRules = Field(default_factory=FilterRules)
    stages: StagesConfig = Field(default_factory=StagesConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    # An ingest run's dataset (`datagen ingest`): row i is sample i. None: a generating run.
    source: SourceConfig | None = None

    @model_validator(mode="after")
    def _source_and_order(self) -> RunConfig:
        ingest = "source" in self.stages.order
        if ingest and self.source is None:
            raise ValueError("stages.order: the source stage needs a `source:` section (datagen ingest writes it)")
        if self.source is not None and not ingest:
            raise ValueError("source: only an ingest run reads a dataset (stages.order must start with source, caption)")
        return self

    @property
    def num_shards(self) -> int:
        return -(-self.run.num_samples // self.run.shard_size)

    def shard_indices(self, shard: int) -> range:
        start = shard * self.run.shard_size
        return range(start, min(start + self.run.shard_size, self.run.num_samples))

    def sample_seed(self, index: int) -> int:
        """Sample `index`'s seed, in the run's split's namespace (datagen.seeds)."""
        from datagen.seeds import sample_seed

        return sample_seed(self.run.seed, index, self.run.split)

    def recipe_dict(self) -> dict[str, Any]:
        """What determines the samples: everything but execution settings, costs and the run size."""
        d = self.model_dump(mode="json")
        d.pop("ray")
        d.pop("models_dir")  # where weights are found, not which: ids and revisions stay in
        for size_key in ("num_samples", "target_kept", "target_first_share", "target_buckets"):
            d["run"].pop(size_key)  # the size of a run, not what one sample looks like
        d["run"].pop("name")  # a label
        for name in STAGE_NAMES:
            if name not in self.stages.order:  # a generating run's recipe is what it was before ingest existed
                d["stages"].pop(name)
                continue
            d["stages"][name].pop("exec")
            d["stages"][name].pop("cost")
        if d["source"] is None:
            d.pop("source")
        d["simulate"].pop("time_scale")  # how long, not what
        # How a resume checks shards, not what they hold: pinned to the old default, so changing
        # it (or the default's move to index) keeps every fingerprint and earlier runs' hashes.
        d["output"]["verify"] = "sha256"
        if self.simulate.enabled:  # the drawn rejects change the samples
            rates = {"sample_reject", "subject_drop"}
            d["simulate"]["rates"] = {n: self.stages.stage(n).cost.model_dump(include=rates) for n in self.stages.order}
        return d

    def config_sha256(self) -> str:
        return sha256_json(self.recipe_dict())


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_config(data: dict[str, Any], source: str, flag_sources: dict[str, str] | None = None) -> RunConfig:
    return validate_as(RunConfig, data, source, flag_sources)


def load_config(path: Path, overrides: list[str] | None = None) -> RunConfig:
    data = read_yaml(path)
    flags = apply_overrides(data, overrides or [])
    return build_config(data, str(path), flags)


def load_run_config(run_dir: Path) -> RunConfig:
    """The config a run directory was made with (its run.yaml)."""
    path = Path(run_dir) / "run.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir}: not a datagen run (no run.yaml)")
    return build_config(read_yaml(path), str(path))


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
