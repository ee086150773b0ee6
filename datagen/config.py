"""The run configuration: one pydantic model, loaded from YAML, with `--set a.b=c` overrides.

Bad input is caught here, before Ray or any model starts, and reported in one line that names
the file (or the --set flag) and the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datagen.box_fit import BoxFitConfig
from datagen.errors import UserError
from datagen.paths import bundled_config_dir
from datagen.world.scene import WorldConfig

STAGE_NAMES = ("prompts", "t2i", "segment", "depth", "boxes", "repose", "idcheck", "filter")
DEFAULT_ORDER = list(STAGE_NAMES)


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

DEFAULT_THEMES = [
    "a cluttered workshop", "a picnic", "a child's bedroom", "a kitchen counter", "a street market",
    "a camping trip", "an artist's desk", "a garden party", "a science classroom", "a beach day",
    "a music studio", "a cafe table", "a hiking trail", "a toy shop window", "a home office",
]
DEFAULT_BACKGROUNDS = [
    "a sunlit wooden floor", "a grassy park", "a marble countertop", "a sandy beach", "a city sidewalk",
    "a snowy field", "a cozy living room", "a plain studio backdrop", "a forest clearing", "a tiled kitchen",
    "a rooftop terrace", "a library", "a garage", "a lakeside dock", "a desert road",
]
DEFAULT_REPOSE_TEMPLATES = [
    "Show the {name} from a different angle, on a plain light grey background, same identity.",
    "Rotate the {name} to face the camera from the side, soft studio lighting, plain background.",
    "Show the {name} from above at a three-quarter view, relit with warm light, plain background.",
    "Turn the {name} around to show it from behind at an angle, cool daylight, plain background.",
]


class ModelBackend(Strict):
    """Where a real backend's weights come from and how they run. Recorded in each sample."""

    revision: str | None = Field(None, description="hub revision (branch, tag or commit) of the model")
    dtype: DType = "bfloat16"
    device: str = Field("auto", description="'auto': the GPU Ray gave the worker, else the CPU")
    trust_remote_code: bool = Field(False, description="run code shipped with the model: only for models you trust")


class PromptLimits(Strict):
    """What an LLM answer must look like; the JSON schema and the validator both use these."""

    prompt_max_chars: int = Field(600, ge=16)
    background_max_chars: int = Field(160, ge=4)
    name_max_chars: int = Field(32, ge=2)
    caption_min_chars: int = Field(3, ge=1)
    caption_max_chars: int = Field(120, ge=4)


class VLLMConfig(Strict):
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    max_model_len: int = Field(4096, ge=256)


class PromptsConfig(StageConfig, ModelBackend):
    backend: Literal["procedural", "transformers", "vllm"] = "procedural"
    model: str = Field("Qwen/Qwen3-8B", description="LLM backends: hub id or local path")
    num_subjects: tuple[int, int] = (3, 10)
    subject_count_weights: dict[int, float] | None = Field(
        None, description="relative weight of each subject count N (default: uniform over num_subjects)"
    )
    themes: list[str] = Field(default_factory=lambda: list(DEFAULT_THEMES), min_length=1)
    backgrounds: list[str] = Field(default_factory=lambda: list(DEFAULT_BACKGROUNDS), min_length=1)
    dedup: bool = Field(True, description="reject a sample whose normalised prompt another sample of the run has")
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.8, gt=0, le=1)
    top_k: int = Field(20, ge=0)
    max_new_tokens: int = Field(1024, ge=16)
    validation_retries: int = Field(2, ge=0, description="new drafts for an answer that fails validation")
    limits: PromptLimits = Field(default_factory=PromptLimits)
    vllm: VLLMConfig = Field(default_factory=VLLMConfig)
    layout: Literal["none", "procedural"] = Field(
        "none",
        description="LLM backends: also lay the subjects out in the procedural world, so the procedural "
        "segment/depth oracles can follow a real t2i (a plumbing test: their masks describe the layout, "
        "not the generated image)",
    )

    def model_ids(self) -> list[str]:
        return [] if self.backend == "procedural" else [self.model]

    @field_validator("num_subjects")
    @classmethod
    def _range(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= v[0] <= v[1] <= 10:
            raise ValueError("must be [min, max] with 1 <= min <= max <= 10")
        return v

    @model_validator(mode="after")
    def _weights(self) -> PromptsConfig:
        w = self.subject_count_weights
        if w is not None:
            lo, hi = self.num_subjects
            outside = [n for n in w if not lo <= n <= hi]
            if outside:
                raise ValueError(f"subject_count_weights: count {outside[0]} is outside num_subjects [{lo}, {hi}]")
            if any(v < 0 for v in w.values()) or sum(w.values()) <= 0:
                raise ValueError("subject_count_weights: weights must be >= 0 with a positive sum")
        return self


class DiffusionConfig(ModelBackend):
    """Settings shared by the diffusers backends."""

    steps: int = Field(28, ge=1)
    max_sequence_length: int = Field(512, ge=16, le=512, description="T5 tokens of the prompt")
    cpu_offload: bool = Field(False, description="enable_model_cpu_offload: fits one GPU with less memory, slower")
    compile: bool = Field(False, description="torch.compile the transformer (slow first batch, faster after)")


class T2IConfig(StageConfig, DiffusionConfig):
    backend: Literal["procedural", "diffusers"] = "procedural"
    model: str = Field("black-forest-labs/FLUX.1-dev", description="diffusers: any text-to-image pipeline id or path")
    guidance: float = 3.5

    def model_ids(self) -> list[str]:
        return [self.model] if self.backend == "diffusers" else []


class GSAMConfig(Strict):
    """The paper's own stack (Grounded-Segment-Anything): checkpoint files, as its demo loads them.

    Relative paths are looked up under `models_dir` first.
    """

    config_file: str | None = Field(
        None,
        description="groundingdino-py's model config (a Python file it executes: only use files you trust); "
        "None: the packaged GroundingDINO_SwinT_OGC.py",
    )
    checkpoint: str = Field("groundingdino_swint_ogc.pth", description="Grounding DINO weights")
    text_encoder: str = Field("bert-base-uncased", description="its BERT: hub id or local directory")
    image_size: int = Field(
        800, ge=32, description="Grounding DINO sees images resized to this shorter side (its own inference "
        "preprocessing); smaller only to make tiny CPU test runs fast"
    )
    max_image_size: int = Field(1333, ge=32, description="and at most this longer side")
    sam_checkpoint: str = Field("sam_vit_h_4b8939.pth", description="segment-anything weights")
    sam_type: Literal["vit_h", "vit_l", "vit_b"] = "vit_h"

    class SamEncoder(Strict):
        """A ViT image encoder of another size than segment-anything's registry builds (vit_h/l/b)."""

        embed_dim: int = Field(gt=0)
        depth: int = Field(gt=0)
        num_heads: int = Field(gt=0)
        global_attn_indexes: list[int] = Field(description="blocks with global (not windowed) attention")

        @model_validator(mode="after")
        def _fits(self) -> GSAMConfig.SamEncoder:
            if self.embed_dim % self.num_heads:
                raise ValueError("embed_dim must be a multiple of num_heads")
            if any(not 0 <= i < self.depth for i in self.global_attn_indexes):
                raise ValueError(f"global_attn_indexes must lie in [0, depth={self.depth})")
            return self

    sam_encoder: SamEncoder | None = Field(
        None,
        description="build SAM with this encoder instead of sam_type's (same Sam class, prompt encoder and "
        "mask decoder): for checkpoints of other sizes, e.g. the tiny test models",
    )


class SegmentConfig(StageConfig, ModelBackend):
    backend: Literal["procedural", "transformers", "gsam"] = "procedural"
    detector_model: str = Field("IDEA-Research/grounding-dino-base", description="transformers: Grounding DINO id or path")
    sam_model: str = Field("facebook/sam-vit-huge", description="transformers: SAM (or SAM 2, see sam_version) id or path")
    sam_version: Literal["sam", "sam2"] = Field("sam", description="sam2: Sam2Model, where the installed transformers has it")
    box_threshold: float = Field(0.35, ge=0, le=1, description="keep a caption's best box only if its score reaches this")
    text_threshold: float = Field(0.25, ge=0, le=1, description="and its caption tokens' score reaches this")
    mask_threshold: float = Field(0.0, description="SAM mask logits above this are the subject")
    same_object_iou: float = Field(
        0.8, ge=0, le=1, description="two captions whose detector boxes overlap above this IoU ground one object: keep the higher score"
    )
    fill_holes_frac: float = Field(0.01, ge=0, le=1, description="fill holes smaller than this share of the mask's area")
    min_island_frac: float = Field(
        0.05, ge=0, le=1, description="drop mask pieces smaller than this share of its largest piece"
    )
    captions_per_pass: int = Field(16, ge=1, description="(image, caption) pairs per Grounding DINO forward")
    gsam: GSAMConfig = Field(default_factory=GSAMConfig)

    def model_ids(self) -> list[str]:
        return [self.detector_model, self.sam_model] if self.backend == "transformers" else []


DEFAULT_DEPTH_MODELS = {"moge": "Ruicheng/moge-2-vitl-normal", "transformers": "depth-anything/Depth-Anything-V2-Metric-Indoor-Large-hf"}


class DepthConfig(StageConfig, ModelBackend):
    backend: Literal["procedural", "moge", "transformers"] = "procedural"
    model: str | None = Field(None, description="default: the backend's (moge: MoGe-2 ViT-L; transformers: Depth Anything V2 metric)")
    fov_x_deg: float | None = Field(
        None, gt=0, lt=180, description="horizontal field of view: moge fixes its intrinsics with it (else estimates them); "
        "transformers needs it (default 60)"
    )
    resolution_level: int = Field(9, ge=0, le=9, description="moge: inference resolution, 0 fastest to 9 finest")
    noise_std: float = Field(0.0, ge=0, description="procedural: relative Gaussian noise on oracle depth")

    @model_validator(mode="after")
    def _default_model(self) -> DepthConfig:
        if self.model is None and self.backend in DEFAULT_DEPTH_MODELS:
            object.__setattr__(self, "model", DEFAULT_DEPTH_MODELS[self.backend])
        return self

    def model_ids(self) -> list[str]:
        return [self.model] if self.backend in ("moge", "transformers") and self.model else []


class BoxesConfig(StageConfig):
    backend: Literal["open3d"] = "open3d"
    fit: BoxFitConfig = Field(default_factory=BoxFitConfig)


class ReposeConfig(StageConfig, DiffusionConfig):
    backend: Literal["procedural", "diffusers"] = "procedural"
    model: str = Field("black-forest-labs/FLUX.1-Kontext-dev", description="diffusers: a FLUX.1 Kontext pipeline")
    identity_size: int = Field(256, ge=16, le=2048)
    guidance: float = 2.5
    templates: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REPOSE_TEMPLATES),
        min_length=1,
        description="edit instructions; {name} becomes the subject's name; one drawn per subject",
    )
    subject_fill: float = Field(0.85, gt=0, le=1, description="share of the square input the subject's longer side fills")
    background_grey: int = Field(200, ge=0, le=255, description="the neutral background of the edit input")
    subjects_per_call: int = Field(8, ge=1, description="subjects edited per pipeline call, across samples")

    def model_ids(self) -> list[str]:
        return [self.model] if self.backend == "diffusers" else []

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: list[str]) -> list[str]:
        for t in v:
            try:
                t.format(name="x")
            except (KeyError, IndexError, ValueError):
                raise ValueError(f"template {t!r}: only the field {{name}} may appear") from None
        return v


# Similarity bounds per backend: a colour histogram cannot tell a copy from a re-pose (so no
# upper bound), DINOv2 features can.
DEFAULT_IDCHECK_BOUNDS = {"histogram": (0.3, 1.0), "transformers": (0.4, 0.97)}


class IdcheckConfig(StageConfig, ModelBackend):
    """Identity re-check after repose: the identity image against the subject's crop."""

    backend: Literal["histogram", "transformers"] = "histogram"
    model: str = Field("facebook/dinov2-base", description="transformers: a DINOv2 (Dinov2Model) id or path")
    min_similarity: float | None = Field(None, ge=-1, le=1, description="below: the edit lost the subject (default per backend)")
    max_similarity: float | None = Field(None, ge=-1, le=1, description="above: a copy, not a re-pose (default per backend)")

    @model_validator(mode="after")
    def _bounds(self) -> IdcheckConfig:
        lo, hi = DEFAULT_IDCHECK_BOUNDS[self.backend]
        if self.min_similarity is None:
            object.__setattr__(self, "min_similarity", lo)
        if self.max_similarity is None:
            object.__setattr__(self, "max_similarity", hi)
        if self.min_similarity > self.max_similarity:
            raise ValueError("min_similarity must not exceed max_similarity")
        return self

    def model_ids(self) -> list[str]:
        return [self.model] if self.backend == "transformers" else []

    def with_backend(self, backend: str) -> IdcheckConfig:
        # Similarities of different backends are on different scales: take the new one's bounds.
        data = self.model_dump(exclude={"min_similarity", "max_similarity"})
        return IdcheckConfig(**{**data, "backend": backend})


class FilterConfig(StageConfig):
    backend: Literal["rules"] = "rules"


class StagesConfig(Strict):
    order: list[str] = Field(default_factory=lambda: list(DEFAULT_ORDER))
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    t2i: T2IConfig = Field(default_factory=T2IConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    depth: DepthConfig = Field(default_factory=DepthConfig)
    boxes: BoxesConfig = Field(default_factory=BoxesConfig)
    repose: ReposeConfig = Field(default_factory=ReposeConfig)
    idcheck: IdcheckConfig = Field(default_factory=IdcheckConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)

    @field_validator("order")
    @classmethod
    def _order(cls, v: list[str]) -> list[str]:
        unknown = [s for s in v if s not in STAGE_NAMES]
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r} (stages: {', '.join(STAGE_NAMES)})")
        if sorted(v) != sorted(STAGE_NAMES):
            missing = [s for s in STAGE_NAMES if s not in v]
            raise ValueError(f"must name every stage once (missing or repeated: {missing or 'repeats'})")
        return v

    def stage(self, name: str) -> StageConfig:
        return getattr(self, name)


class FilterRules(Strict):
    """RECIPE.md's subject filters, shared by segment (early) and filter (final check)."""

    min_subjects: int = Field(3, ge=1, description="keep samples with at least this many subjects (paper: > 2)")
    max_subjects: int = Field(10, ge=1)
    min_box_area_frac: float = Field(0.01, ge=0, le=1)
    max_box_area_frac: float = Field(0.40, ge=0, le=1)
    max_mask_overlap: float = Field(
        0.5, ge=0, le=1, description="two masks whose intersection over the smaller mask exceeds this: keep one"
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


class RunSection(Strict):
    name: str = "run"
    seed: int = Field(0, ge=0)
    num_samples: int = Field(64, gt=0)
    shard_size: int = Field(16, gt=0)
    width: int = Field(512, ge=32, le=4096)
    height: int = Field(512, ge=32, le=4096)

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
    write_crops: bool = True
    verify: Literal["sha256", "size"] = Field(
        "sha256", description="how a resumed run checks committed shards before reusing them"
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

    @property
    def num_shards(self) -> int:
        return -(-self.run.num_samples // self.run.shard_size)

    def shard_indices(self, shard: int) -> range:
        start = shard * self.run.shard_size
        return range(start, min(start + self.run.shard_size, self.run.num_samples))

    def recipe_dict(self) -> dict[str, Any]:
        """What determines the samples: everything but execution settings, costs and the run size."""
        d = self.model_dump(mode="json")
        d.pop("ray")
        d.pop("models_dir")  # where weights are found, not which: ids and revisions stay in
        d["run"].pop("num_samples")  # the size of a run, not what one sample looks like
        d["run"].pop("name")  # a label
        for name in STAGE_NAMES:
            d["stages"][name].pop("exec")
            d["stages"][name].pop("cost")
        d["simulate"].pop("time_scale")  # how long, not what
        if self.simulate.enabled:  # the drawn rejects change the samples
            rates = {"sample_reject", "subject_drop"}
            d["simulate"]["rates"] = {n: self.stages.stage(n).cost.model_dump(include=rates) for n in STAGE_NAMES}
        return d

    def config_sha256(self) -> str:
        return sha256_json(self.recipe_dict())


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- loading ------------------------------------------------------------------------------


def resolve_config_path(name_or_path: str) -> Path:
    """A path to a YAML file, or the name of a bundled config (`demo`, `sigma_set27k`)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    bundled = bundled_config_dir() / f"{p.stem if p.suffix in ('.yaml', '.yml') else p.name}.yaml"
    if p.parent == Path(".") and bundled.is_file():
        return bundled
    if p.exists():
        raise UserError(f"{name_or_path}: not a file")
    raise UserError(f"{name_or_path}: config file not found")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e.__class__.__name__}: {e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}: YAML syntax error{where}: {problem}") from None
    if data is None:  # an empty file, or comments only: never run silently on every default
        raise UserError(f"{path}: the config is empty; name at least one section (e.g. run:), or write {{}} for every default")
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, str]:
    """Apply `a.b=c` overrides in place; values parse as YAML scalars. Returns key -> flag text."""
    sources: dict[str, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(f"--set {item}: expected KEY=VALUE with a dotted key, e.g. run.seed=3")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"--set {item}: {part} is not a section")
            node = child
        node[parts[-1]] = value
        sources[key] = f"--set {item}"
    return sources


def _format_error(err: dict[str, Any], source: str, flag_sources: dict[str, str]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    for key, flag in flag_sources.items():
        if loc == key or loc.startswith(key + "."):
            source = flag
    if err["type"] == "extra_forbidden":
        return f"{source}: {loc}: unknown key"
    if err["type"] == "missing":
        return f"{source}: {loc}: required key missing"
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    return f"{source}: {loc or '(top level)'}: {msg}{shown}"


M = TypeVar("M", bound=BaseModel)


def validate_as(model: type[M], data: dict[str, Any], source: str, flag_sources: dict[str, str] | None = None) -> M:
    """`data` as a `model`, or one line naming the file (or --set flag) and the key."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise UserError(_format_error(e.errors()[0], source, flag_sources or {})) from None


def build_config(data: dict[str, Any], source: str, flag_sources: dict[str, str] | None = None) -> RunConfig:
    return validate_as(RunConfig, data, source, flag_sources)


def load_config(path: Path, overrides: list[str] | None = None) -> RunConfig:
    data = read_yaml(path)
    flags = apply_overrides(data, overrides or [])
    return build_config(data, str(path), flags)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
