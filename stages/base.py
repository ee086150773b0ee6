"""The stage interface, and its backend objects. Stages are plain Python: no Ray here or in stages/."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from datagen.recipe.filters import subject_count_reason
from datagen.store.inflight import Rejected, Sample

# Key of a deferred verdict: on a subject (drop it) or in a sample's meta (reject it).
PENDING = "pending_rejection"
# Backends that load no model: `model` in their config is not what made the output.
NO_MODEL_BACKENDS = ("procedural", "open3d", "rules", "histogram")

if TYPE_CHECKING:
    from datagen.config import RunConfig, StageConfig


class Stage:
    """One step of the recipe.

    `__init__` is cheap and picklable; `setup()` loads models once per worker;
    `process_batch` maps samples to samples or rejections. Subclasses declare:
    - name: the stage's name (a key of `stages:` in the config),
    - requires: stages whose output this one reads (they must come earlier in the order),
    - provides: stages whose output this one gives instead (an ingest run's source: prompts, t2i),
    - reads: shared config sections (besides its own) that change its output,
    - version: bumped when the algorithm changes, so committed shards are redone,
    - backends: the backend names this version provides.
    """

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()  # stages whose output this one stands in for
    reads: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[int] = 1
    backends: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: RunConfig) -> None:
        self.run_cfg = cfg
        self.cfg = cfg.stages.stage(self.name)
        self.run_dir: Path | None = None

    def bind_run(self, run_dir: Path) -> None:
        """The run directory, for stages that keep run-wide state (prompt dedup claims)."""
        self.run_dir = run_dir

    def setup(self) -> None:
        """Load models. Called once per worker, before the first batch."""

    def generation_settings(self) -> dict | None:
        """Model id, revision, dtype and sampling settings, for `generation.settings` (real backends)."""
        return None

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        raise NotImplementedError

    def model_name(self) -> str:
        """What made this stage's output, for `generation.models` in the metadata."""
        cfg: StageConfig = self.cfg
        model = getattr(cfg, "model", None)
        backend = getattr(cfg, "backend", "")
        return f"{backend}:{model}" if model and backend not in NO_MODEL_BACKENDS else backend

    @classmethod
    def reads_stages(cls, cfg: RunConfig) -> tuple[str, ...]:
        """Other stages whose settings change this one's output (beyond its input), for its
        fingerprint: repose repairing with idcheck's check reads idcheck's."""
        return ()

    def shard_figures(self, samples: list[Sample]) -> dict[str, Any]:
        """Extra figures for this stage's shard marker, from the samples it processed (kept or not)."""
        return {}

    def passes_over(self, sample: Sample) -> bool:
        """Whether this stage leaves `sample` as it is (an ingested row already has what it makes),
        so `generation` records none of its models for it."""
        return False

    def reject(self, sample: Sample, reason: str) -> Rejected:
        return Rejected(sample.key, self.name, reason)

    # --- the recipe's filters, applied here or deferred to the last stage ---------------

    @property
    def defers_filters(self) -> bool:
        """With `filters.apply: last` only the final stage drops anything (the paper's order)."""
        return self.run_cfg.filters.apply == "last" and self.name != self.run_cfg.stages.order[-1]

    def drop_subjects(self, s: Sample, reasons: dict[int, str]) -> None:
        """Drop subjects now, or mark them for the final stage to drop."""
        if not self.defers_filters:
            s.drop_subjects(reasons, self.name)
            return
        for i, reason in reasons.items():
            s.subjects[i].setdefault(PENDING, reason)

    def verdict(self, s: Sample, reason: str | None) -> Sample | Rejected:
        """Reject a sample for `reason` now, or mark it for the final stage; keep it if None."""
        if reason is None:
            return s
        if self.defers_filters:
            s.meta.setdefault(PENDING, reason)
            return s
        return self.reject(s, reason)

    def check_subject_count(self, s: Sample) -> Sample | Rejected:
        """The recipe's subject count rule, where filters apply (the last stage always checks)."""
        if self.defers_filters:
            return s
        return self.verdict(s, subject_count_reason(len(s.subjects), self.run_cfg.filters))


# --- backends: what differs between a stage's backends, picked once ------------------------


class Backend:
    """One backend of a stage: its models and the work that uses them.

    A `BackendStage` makes its backend object once, from `cfg.backend`, and calls it without
    testing the name again. `load()` runs in the stage's `setup()`; model-free backends load
    nothing, so their stages also run without `setup()` (tests, bench scripts).
    """

    def __init__(self, stage: Stage) -> None:
        self.stage = stage  # for its config, name and shared helpers

    @property
    def cfg(self) -> Any:
        return self.stage.cfg

    def load(self) -> None:
        """Load this backend's models: once per worker."""

    def generation_settings(self) -> dict | None:
        """What the stage's `generation_settings()` reports; None for model-free backends."""
        return None


class BackendStage(Stage):
    """A stage whose backend-specific work is a `Backend` object, by name from `backend_types`.

    Subclasses declare `backend_types` (name -> class) and `backends = tuple(backend_types)`.
    """

    backend_types: ClassVar[dict[str, type[Backend]]] = {}

    @cached_property
    def backend(self) -> Any:
        """The configured backend, made on first use, then kept: in a worker that is `setup()`;
        a model-free stage used without `setup()` (tests, bench scripts) makes it on its first batch."""
        return self.backend_types[self.cfg.backend](self)

    # True: in an ingest run the models load on the first sample that needs them (repose and
    # idcheck: a source that gives every identity needs neither, so neither loads).
    loads_when_needed: ClassVar[bool] = False
    _load_pending: bool = False

    def setup(self) -> None:
        if self.loads_when_needed and self.run_cfg.source is not None:
            self._load_pending = True
            return
        self.backend.load()

    def load_if_pending(self) -> None:
        if self._load_pending:
            self._load_pending = False
            self.backend.load()

    def generation_settings(self) -> dict | None:
        return self.backend.generation_settings()


class BackendAttribute:
    """A stage attribute that lives on its backend object (a model the stage used to hold), so
    code reading `stage.pipe` or setting a stand-in `stage.engine` keeps working; None where
    the backend has no such attribute (a model-free one)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, stage: BackendStage | None, owner: type | None = None) -> Any:
        if stage is None:
            return self
        return getattr(stage.backend, self.name, None)

    def __set__(self, stage: BackendStage, value: Any) -> None:
        setattr(stage.backend, self.name, value)
