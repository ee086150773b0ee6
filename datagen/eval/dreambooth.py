"""`datagen eval dreambooth DIR`: the paper's DreamBooth protocol (appendix A.10, Table 4) in one
resumable command. The folder is ingested as an evaluation run (OUT/data: each subject's first
photograph the reference, every other one a target; Grounded-SAM masks on both, MoGe-2 depth,
Qwen2.5-VL captions), then `datagen eval model` judges the rows on it (OUT/results, set beside
Table 4). Both halves resume where they stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from datagen.errors import UserError
from datagen.eval.model_eval import EvalRequest, eval_model, load_configs

DATA, RESULTS = "data", "results"


def eval_dreambooth(folder: Path, request: EvalRequest, say: Callable[[str], None], executor: str = "ray") -> dict:
    from datagen.config import load_config, resolve_config_path
    from datagen.ingest.command import IngestRequest, ingest, source_path

    if not request.loras and not request.base:
        raise UserError("give at least one --lora, or --base to judge the base model")
    cfg, _ = load_configs(request)
    if request.out.exists() and not request.out.is_dir():
        raise UserError(f"--out {request.out}: exists and is not a directory")
    overrides = ([f"models_dir={cfg.models_dir}"] if cfg.models_dir else []) + list(cfg.ingest.overrides)
    run_cfg = load_config(resolve_config_path(cfg.ingest.config), ["source.kind=dreambooth", f"source.path={source_path(str(folder))}", *overrides])
    if run_cfg.run.split != "eval":
        raise UserError(f"ingest.config {cfg.ingest.config}: run.split is {run_cfg.run.split}; the DreamBooth set is held out (run.split: eval)")
    data = request.out / DATA
    say(f"DreamBooth protocol: ingesting {folder} into {data}")
    report = ingest(IngestRequest(kind="dreambooth", path=str(folder), out=str(data), config=cfg.ingest.config,
                                  workers=request.workers, overrides=tuple(overrides), address=request.address, executor=executor))  # fmt: skip
    if report.failed or report.blocked:
        raise UserError(f"{data}: the ingest did not finish ({len(report.failed)} failed, {len(report.blocked)} blocked); "
                        "run the same command to resume")  # fmt: skip
    if report.kept == 0:
        raise UserError(f"{data}: no DreamBooth target survived the ingest; see `datagen status {data}`")
    say(f"DreamBooth protocol: judging on {report.kept} targets into {request.out / RESULTS}")
    return {"data": str(data), **eval_model(replace(request, data=data, out=request.out / RESULTS), say)}
