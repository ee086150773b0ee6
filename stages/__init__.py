"""The recipe's stages, one module each. Plain Python: the runner maps them onto Ray."""

from __future__ import annotations

from datagen.config import RunConfig
from datagen.errors import BackendUnavailable, UserError
from datagen.stage import Stage, backend_problem
from datagen.stages.boxes import BoxesStage
from datagen.stages.depth import DepthStage
from datagen.stages.filter import FilterStage
from datagen.stages.prompts import PromptsStage
from datagen.stages.repose import ReposeStage
from datagen.stages.segment import SegmentStage
from datagen.stages.t2i import T2IStage

STAGES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (PromptsStage, T2IStage, SegmentStage, DepthStage, BoxesStage, ReposeStage, FilterStage)
}


def validate_pipeline(cfg: RunConfig) -> None:
    """Check the stage order and backends before any worker starts."""
    order = cfg.stages.order
    for pos, name in enumerate(order):
        for needed in STAGES[name].requires:
            if order.index(needed) > pos:
                raise UserError(f"stages.order: {name} needs {needed} before it")
    if order[-1] != "filter":
        raise UserError("stages.order: filter must be the last stage (it writes the final shards)")
    missing = [e for e in (backend_problem(STAGES[name], cfg) for name in order if not simulated(name, cfg)) if e]
    if missing:
        from datagen import __version__

        raise BackendUnavailable(f"not available in datagen {__version__} yet: {'; '.join(missing)}")


def simulated(name: str, cfg: RunConfig) -> bool:
    """With `simulate.enabled`, GPU stages are simulated (datagen.simulate)."""
    return cfg.simulate.enabled and cfg.stages.stage(name).exec.gpus > 0


def build_stage(name: str, cfg: RunConfig) -> Stage:
    cls = STAGES[name]
    if simulated(name, cfg):
        from datagen.simulate import SimulatedStage, procedural_config

        return SimulatedStage(cls(procedural_config(cfg, name, cls.backends)), cfg)
    return cls(cfg)
