"""`datagen eval model` and `datagen eval data`: a typer sub-app over datagen.eval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from datagen.errors import UserError

eval_app = typer.Typer(help="Judge a trained LoRA (the paper's metrics and protocol) or a dataset.", no_args_is_help=True)


def _modes(modes: str | None) -> list[str] | None:
    if modes is None:
        return None
    listed = [m.strip() for m in modes.split(",") if m.strip()]
    if not listed:
        raise UserError("--modes: name at least one mode")
    return listed


@eval_app.command("model")
def eval_model_command(
    data: Annotated[Path, typer.Option("--data", help="An evaluation run (built with run.split: eval, e.g. --config sigma_eval).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results dir: results.json/.md, scores.parquet, grid_<mode>.png; resumable.")],
    lora: Annotated[Optional[list[Path]], typer.Option("--lora", help="A LoRA from datagen train (its lora/ dir or file); repeatable.")] = None,
    base: Annotated[bool, typer.Option("--base", help="Also judge the base model without a LoRA, as a row.")] = False,
    config: Annotated[str, typer.Option("--config", "-c", help="Eval YAML or bundled name (eval_model_paper, eval_model_tiny).")] = "eval_model_paper",
    modes: Annotated[Optional[str], typer.Option("--modes", help="Comma list of masks_depth, boxes2d, boxes3d, full_depth, mixed.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override an eval config key: --set models_dir=DIR")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", help="Ray actors per pass (default: one per GPU, else 1).")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Join a Ray cluster; --out and --data on shared storage.")] = None,
) -> None:
    """Generate every held-out sample in every mode for each row, score it with the paper's six
    metrics, and write the results beside the paper's Table 1. Run it again to resume."""
    from datagen.eval.model_eval import EvalRequest, eval_model

    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")
    request = EvalRequest(config=config, data=data, out=out, loras=list(lora or []), base=base, modes=_modes(modes),
                          overrides=list(set_ or []), workers=workers, address=address)  # fmt: skip
    typer.echo(json.dumps(eval_model(request, say=lambda m: typer.echo(m, err=True))))


@eval_app.command("data")
def eval_data_command(
    run_dir: Annotated[Path, typer.Argument(help="A finished run (any split).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report dir: report.json/.md, subjects/images.parquet, bottom.png.")],
    config: Annotated[str, typer.Option("--config", "-c", help="Eval YAML or bundled name: its metric models judge.")] = "eval_model_paper",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override an eval config key.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="At most this many samples.")] = None,
) -> None:
    """The dataset's own quality: identity agreement of each subject with its crop, and image
    quality of the targets, as distributions per subject count."""
    from datagen.eval.config import load_eval_config
    from datagen.eval.data_quality import eval_data

    cfg = load_eval_config(config, list(set_ or []))
    report = eval_data(run_dir, out, cfg, limit, say=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps({"images": report["images"], "subjects": report["subjects"], "report": str(out / "report.json")}))


@eval_app.command("dreambooth")
def eval_dreambooth_command(
    folder: Annotated[Path, typer.Argument(help="A DreamBooth-layout folder: SUBJECT/IMAGE, and prompts_and_classes.txt.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="OUT/data: the ingested eval run; OUT/results: as for eval model. Resumable.")],
    lora: Annotated[Optional[list[Path]], typer.Option("--lora", help="A LoRA from datagen train; repeatable.")] = None,
    base: Annotated[bool, typer.Option("--base", help="Also judge the base model without a LoRA, as a row.")] = False,
    config: Annotated[str, typer.Option("--config", "-c", help="Eval YAML or bundled name (eval_dreambooth, eval_dreambooth_tiny).")] = "eval_dreambooth",
    modes: Annotated[Optional[str], typer.Option("--modes", help="Comma list of masks_depth, boxes2d, boxes3d, full_depth, mixed.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override an eval config key: --set models_dir=DIR")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", help="Workers for the ingest and Ray actors per eval pass.")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Join a Ray cluster; FOLDER and --out on shared storage.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="The ingest's executor: ray (default), or local (one process).")] = "ray",
) -> None:
    """The paper's DreamBooth protocol (Table 4): each subject's first image is the reference,
    the others are targets with Grounded-SAM masks, MoGe-2 depth and VLM captions; then eval model."""
    from datagen.eval.dreambooth import eval_dreambooth
    from datagen.eval.model_eval import EvalRequest

    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: must be at least 1")
    if executor not in ("ray", "local"):
        raise UserError(f"--executor: {executor!r} is not one of ray, local")
    request = EvalRequest(config=config, data=out, out=out, loras=list(lora or []), base=base, modes=_modes(modes),
                          overrides=list(set_ or []), workers=workers, address=address)  # fmt: skip
    typer.echo(json.dumps(eval_dreambooth(folder, request, say=lambda m: typer.echo(m, err=True), executor=executor)))
