"""Every stage's settings: what a stage does (its backend, model, thresholds) and how it runs
(`exec`) and costs (`cost`). One pydantic model per stage, gathered in `StagesConfig`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from datagen.config.base import ModelBackend, StageConfig, Strict
from datagen.recipe import scene_lists as scenes

# A generating run writes its scenes and renders them; an ingest run (`datagen ingest`) reads
# them from a dataset (`source`) and names what the dataset leaves unnamed (`caption`). The
# rest of the recipe is the same.
GENERATE_STAGES = ("prompts", "t2i", "segment", "depth", "boxes", "repose", "idcheck", "filter")
INGEST_STAGES = ("source", "caption", "segment", "depth", "boxes", "repose", "idcheck", "filter")
STAGE_NAMES = ("prompts", "t2i", "source", "caption", "segment", "depth", "boxes", "repose", "idcheck", "filter")
DEFAULT_ORDER = list(GENERATE_STAGES)
INGEST_ORDER = list(INGEST_STAGES)


# The prompts' scene lists: datagen/recipe/scene_lists.py (these two are `scene_lists: small`).
DEFAULT_THEMES, DEFAULT_BACKGROUNDS = list(scenes.SMALL_THEMES), list(scenes.SMALL_BACKGROUNDS)
DEFAULT_REPOSE_TEMPLATES = [
    "Show the {name} from a different angle, on a plain light grey background, same identity.",
    "Rotate the {name} to face the camera from the side, soft studio lighting, plain background.",
    "Show the {name} from above at a three-quarter view, relit with warm light, plain background.",
    "Turn the {name} around to show it from behind at an angle, cool daylight, plain background.",
]


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
    scene_lists: Literal["large", "small"] = Field("large", description="where lists left out come from (scene_lists.fill)")
    themes: list[str] = Field(default_factory=lambda: list(scenes.THEMES), min_length=1)
    backgrounds: list[str] = Field(default_factory=lambda: list(scenes.BACKGROUNDS), min_length=1)
    conditions: list[str] = Field(default_factory=lambda: list(scenes.CONDITIONS), description="one follows each background")
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

    @model_validator(mode="before")
    @classmethod
    def _scene_lists(cls, data: object) -> object:
        return scenes.fill(data)

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
    dilate_px: int = Field(
        0, ge=0, description="procedural: grow each oracle mask by this many pixels, as a segmenter's masks bleed "
        "onto their neighbours (overlapping masks, for the overlap rules to resolve)",
    )
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


class BoxFitConfig(Strict):
    """How the boxes stage fits one subject's 3D box (datagen.recipe.box_fit)."""

    min_points: int = Field(50, ge=4)  # fewer valid points -> "too_few_points"
    edge_erode_px: int = Field(2, ge=0, le=64)  # mask edges mix fore- and background depth
    max_points: int = Field(4000, ge=4)  # stride subsample above this, for speed
    outlier_neighbors: int = Field(20, ge=0, le=1000)  # 0 disables outlier removal
    # 3 rather than the textbook 2: on clean depth, 2 strips real surface seen at grazing
    # angles (sparse in 3D); mixed edge pixels are erosion's job.
    outlier_std_ratio: float = Field(3.0, gt=0.0, le=100.0)
    # "gravity" (datagen.recipe.gravity_box): upright, amodal boxes standing on the ground plane
    # found in the depth; images with no ground fall back to "pca", per box. "pca" is the
    # paper's box of the visible surface (Open3D's get_oriented_bounding_box), "minimal" Open3D's
    # minimal box of it. Figures against the procedural truth: bench/box_truth.py.
    method: Literal["gravity", "minimal", "pca"] = "gravity"
    # gravity: RANSAC inlier distance to the ground plane, as a share of the median depth.
    ground_dist_frac: float = Field(0.02, gt=0.0, le=0.5)
    # gravity: the plane must hold this share of the non-subject points to count as the ground,
    ground_min_share: float = Field(0.3, gt=0.0, le=1.0)
    # ...and face the camera's up (-y) within this angle (a wall is not the ground).
    ground_max_tilt_deg: float = Field(70.0, gt=0.0, le=90.0)
    # gravity: a subject whose lowest point is within this share of its size of the ground
    # stands on it (edge erosion and depth noise lift the lowest visible point a little).
    ground_contact_frac: float = Field(0.2, ge=0.0, le=1.0)
    min_extent_ratio: float = Field(0.02, ge=0.0, lt=1.0)  # smallest/largest extent -> "flat"
    # Drop this percentage of points at each end of the depth range (flying pixels that
    # survive erosion); 0 keeps all.
    depth_clip_pct: float = Field(0.0, ge=0.0, lt=50.0)
    # Erosion shrinks the box by the eroded band; re-admit edge pixels lying within that
    # band's width of the first box (mixed fore/background depths lie far outside it) and
    # refit.
    edge_recover: bool = True


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
    retries: int = Field(
        2, ge=0, le=8,
        description="repair before drop (beyond the paper): a subject idcheck would drop is edited again, with "
        "a new seed and the next template, up to this many times; 0: one edit each (the paper)",
    )  # fmt: skip

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


class SourceStageConfig(StageConfig):
    """An ingest run's first stage: row i of the run's `source:` becomes sample i."""

    backend: Literal["datasets"] = "datasets"


class CaptionConfig(StageConfig, ModelBackend):
    """Names, captions and the prompt of an ingested image whose source gives none.

    `source`: the source's own text only (a row without a name is rejected, `no_name`);
    `transformers`: Qwen2.5-VL writes what is missing, decoding constrained to the prompts
    stage's JSON schema with exactly the image's subject count, the answer validated the same way
    and redrafted with a new seed up to `validation_retries` times; `auto`: the source's text
    where it names every subject, Qwen2.5-VL for the rest (loaded only if a row needs it)."""

    backend: Literal["source", "transformers", "auto"] = "source"
    model: str = Field("Qwen/Qwen2.5-VL-7B-Instruct", description="transformers: a Qwen2.5-VL id or path")
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.8, gt=0, le=1)
    top_k: int = Field(20, ge=0)
    max_new_tokens: int = Field(512, ge=16)
    validation_retries: int = Field(2, ge=0)
    max_image_pixels: int = Field(1024 * 28 * 28, ge=56 * 56, description="the VLM's image size budget (its processor's max_pixels)")
    limits: PromptLimits = Field(default_factory=PromptLimits)

    def model_ids(self) -> list[str]:
        return [self.model] if self.backend in ("transformers", "auto") else []


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
    source: SourceStageConfig = Field(default_factory=SourceStageConfig)
    caption: CaptionConfig = Field(default_factory=CaptionConfig)

    @field_validator("order")
    @classmethod
    def _order(cls, v: list[str]) -> list[str]:
        unknown = [s for s in v if s not in STAGE_NAMES]
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r} (stages: {', '.join(STAGE_NAMES)})")
        kind = INGEST_STAGES if "source" in v else GENERATE_STAGES
        # idcheck is beyond the paper: its preset (sigma_set27k_paper) leaves it out.
        if len(set(v)) != len(v) or not set(kind) - {"idcheck"} <= set(v) <= set(kind):
            missing = [s for s in kind if s not in v]
            raise ValueError(f"must name every stage of {'an ingest' if kind is INGEST_STAGES else 'a generating'} run once "
                             f"({', '.join(kind)}; missing or repeated: {missing or 'repeats'})")  # fmt: skip
        return v

    def stage(self, name: str) -> StageConfig:
        return getattr(self, name)


__all__ = [
    "STAGE_NAMES", "GENERATE_STAGES", "INGEST_STAGES", "DEFAULT_ORDER", "INGEST_ORDER", "SourceStageConfig", "CaptionConfig", "DEFAULT_THEMES", "DEFAULT_BACKGROUNDS", "DEFAULT_REPOSE_TEMPLATES", "PromptLimits", "VLLMConfig", "PromptsConfig", "DiffusionConfig", "T2IConfig", "GSAMConfig", "SegmentConfig", "DEFAULT_DEPTH_MODELS", "DepthConfig", "BoxFitConfig", "BoxesConfig", "ReposeConfig", "DEFAULT_IDCHECK_BOUNDS", "IdcheckConfig", "FilterConfig", "StagesConfig",
]  # fmt: skip
