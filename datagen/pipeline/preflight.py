"""Before any worker starts: the stage order, the backends and their models are checked, and a
stage is built as the run will run it (real, or simulated where `simulate.enabled`)."""

from __future__ import annotations

from datagen.config import RunConfig
from datagen.errors import UserError
from datagen.stages import STAGES, Stage


def validate_pipeline(cfg: RunConfig) -> None:
    """Check the stage order and backends before any worker starts."""
    order = cfg.stages.order
    for pos, name in enumerate(order):
        # What earlier stages made: their own output, and what they stand in for (an ingest
        # run's source gives what prompts and t2i make).
        made = {m for earlier in order[:pos] for m in (earlier, *STAGES[earlier].provides)}
        for needed in STAGES[name].requires:
            if needed not in made:
                raise UserError(f"stages.order: {name} needs {needed} before it")
    if order[-1] != "filter":
        raise UserError("stages.order: filter must be the last stage (it writes the final shards)")
    oracle_problem(cfg)
    if cfg.stages.t2i.backend == "diffusers" and not simulated("t2i", cfg) and (cfg.run.width % 16 or cfg.run.height % 16):
        raise UserError(f"run.width/height ({cfg.run.width}x{cfg.run.height}): the diffusers t2i needs multiples of 16")
    models = [e for e in (stage_model_problem(name, cfg) for name in order if not simulated(name, cfg)) if e]
    if models:
        raise UserError(models[0])


def stage_model_problem(name: str, cfg: RunConfig) -> str | None:
    """Why a stage's models cannot load (missing extra, path or offline cache entry), or None."""
    from datagen.models.hub import model_problem

    c = cfg.stages.stage(name)
    backend = getattr(c, "backend", None)
    if name == "segment" and backend == "gsam":
        from datagen.models.gsam import gsam_problem

        return gsam_problem(c, cfg.models_dir)
    # Perception models load through transformers too, but come with the [perception] extra.
    # caption's `auto` may load its VLM (through transformers) too.
    kind = "perception" if backend in ("transformers", "auto") and name != "prompts" else backend
    for model in c.model_ids():
        problem = model_problem(name, kind, model, c.revision, cfg.models_dir)
        if problem:
            return problem
    return None


ORACLE_STAGES = ("t2i", "segment", "depth", "repose")


def oracle_problem(cfg: RunConfig) -> None:
    """Procedural t2i/segment/depth/repose read the procedural scene; something must lay one out."""
    prompts = cfg.stages.prompts
    if "source" in cfg.stages.order:
        for name in ORACLE_STAGES:
            if name in cfg.stages.order and getattr(cfg.stages.stage(name), "backend", None) == "procedural" and not simulated(name, cfg):
                raise UserError(f"stages.{name}.backend procedural reads the procedural world's scene, which an ingested "
                                "image does not have: give it a real backend (configs/ingest_tiny.yaml)")  # fmt: skip
        return
    if simulated("prompts", cfg) or prompts.backend == "procedural" or prompts.layout == "procedural":
        return
    for name in ORACLE_STAGES:
        if getattr(cfg.stages.stage(name), "backend", None) == "procedural" and not simulated(name, cfg):
            raise UserError(
                f"stages.{name}.backend procedural reads the procedural world's scene, which the "
                f"{prompts.backend} prompts backend does not make: set stages.prompts.layout: procedural "
                f"(a plumbing test) or give {name} a real backend"
            )


def simulated(name: str, cfg: RunConfig) -> bool:
    """With `simulate.enabled`, GPU stages are simulated (datagen.pipeline.simulate)."""
    return cfg.simulate.enabled and cfg.stages.stage(name).exec.gpus > 0


def build_stage(name: str, cfg: RunConfig) -> Stage:
    cls = STAGES[name]
    if simulated(name, cfg):
        from datagen.pipeline.simulate import SimulatedStage, procedural_config

        return SimulatedStage(cls(procedural_config(cfg, name, cls.backends)), cfg)
    return cls(cfg)
