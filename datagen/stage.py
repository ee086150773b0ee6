"""The stage interface. Stages are plain Python: no Ray here or in stages/."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from datagen.sample import Rejected, Sample

if TYPE_CHECKING:
    from datagen.config import RunConfig, StageConfig


class Stage:
    """One step of the recipe.

    `__init__` is cheap and picklable; `setup()` loads models once per worker;
    `process_batch` maps samples to samples or rejections. Subclasses declare:
    - name: the stage's name (a key of `stages:` in the config),
    - requires: stages whose output this one reads (they must come earlier in the order),
    - reads: shared config sections (besides its own) that change its output,
    - version: bumped when the algorithm changes, so committed shards are redone,
    - backends: the backend names this version provides.
    """

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    reads: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[int] = 1
    backends: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: RunConfig) -> None:
        self.run_cfg = cfg
        self.cfg = cfg.stages.stage(self.name)

    def setup(self) -> None:
        """Load models. Called once per worker, before the first batch."""

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        raise NotImplementedError

    def model_name(self) -> str:
        """What made this stage's output, for `generation.models` in the metadata."""
        cfg: StageConfig = self.cfg
        model = getattr(cfg, "model", None)
        backend = getattr(cfg, "backend", "")
        return f"{backend}:{model}" if model else backend

    def reject(self, sample: Sample, reason: str) -> Rejected:
        return Rejected(sample.key, self.name, reason)


def backend_problem(stage_cls: type[Stage], cfg: RunConfig) -> str | None:
    """Why the configured backend of a stage cannot run in this version, or None."""
    backend = getattr(cfg.stages.stage(stage_cls.name), "backend", None)
    if backend is None or backend in stage_cls.backends:
        return None
    return f"stages.{stage_cls.name}.backend {backend!r} (available: {', '.join(sorted(stage_cls.backends))})"
