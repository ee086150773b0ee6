"""The `datagen` command: a thin typer layer over datagen.pipeline.run and datagen.views.status."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from datagen.errors import UserError
from datagen.eval.commands import eval_app
from datagen.export.commands import export_app
from datagen.train.defaults import INFERENCE_GUIDANCE, INFERENCE_STEPS

app = typer.Typer(
    name="datagen",
    help="Build SIGMA-SET27K-style multi-subject datasets on Ray.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def run(
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="YAML file, or a bundled config name (demo, sigma_set27k). Default: the run's own run.yaml when resuming, else demo.")] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Run directory. Default: ./<run.name>.")] = None,
    stages: Annotated[str, typer.Option("--stages", help="'all' or a comma list, e.g. prompts,t2i")] = "all",
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", help="Cap on workers over all stages.")] = None,
    num_samples: Annotated[Optional[int], typer.Option("--num-samples", "-n", help="Override run.num_samples.")] = None,
    target_kept: Annotated[Optional[int], typer.Option("--target-kept", help="Add shards until N samples are kept, then keep the first N (run.target_kept; per subject-count bucket: --set run.target_buckets=...).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Override run.seed.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override any key: --set stages.t2i.exec.concurrency=2")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Join a Ray cluster (e.g. 10.0.0.1:6379); RUN must be shared storage.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="ray (default), or local: one process, no Ray, for debugging.")] = "ray",
) -> None:
    """Build (or resume) a dataset: every (stage, shard) already committed is reused."""
    from datagen.pipeline.run import RunRequest, execute

    if executor not in ("ray", "local"):
        raise UserError(f"--executor: {executor!r} is not one of ray, local")
    report = execute(
        RunRequest(
            config=config,
            out=out,
            stages=stages,
            workers=workers,
            num_samples=num_samples,
            seed=seed,
            overrides=(*(set_ or ()), *([f"run.target_kept={target_kept}"] if target_kept is not None else [])),
            address=address,
            executor=executor,
        )
    )
    if report.failed or report.blocked:
        raise typer.Exit(1)


@app.command()
def ingest(
    kind: Annotated[str, typer.Argument(metavar="SOURCE", help="anyinsertion, musar, folder, hf or dreambooth.")],
    path: Annotated[str, typer.Argument(metavar="PATH_OR_ID", help="A local dataset (parquet dir or file, save_to_disk dir, image folder) or a hub id in the local cache.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Run directory (resumable, as for datagen run).")],
    config: Annotated[Optional[str], typer.Option("--config", "-c", help="YAML or bundled name (default: ingest_<SOURCE>; ingest_tiny on tiny models).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", help="Cap on workers over all stages.")] = None,
    num_samples: Annotated[Optional[int], typer.Option("--num-samples", "-n", help="Only the first N rows.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override any key: --set source.split=test")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Join a Ray cluster; RUN and PATH on shared storage.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="ray (default), or local: one process, no Ray.")] = "ray",
) -> None:
    """Turn an existing subject dataset into sigma-set samples: row i is sample i; what the row
    gives (masks, reference identities, names) is kept, the recipe's stages make the rest."""
    from datagen.ingest.command import IngestRequest
    from datagen.ingest.command import ingest as run_ingest

    if executor not in ("ray", "local"):
        raise UserError(f"--executor: {executor!r} is not one of ray, local")
    report = run_ingest(IngestRequest(kind=kind, path=path, out=out, config=config, workers=workers, num_samples=num_samples,
                                      overrides=tuple(set_ or ()), address=address, executor=executor))  # fmt: skip
    if report.failed or report.blocked:
        raise typer.Exit(1)


@app.command()
def plan(
    config: Annotated[str, typer.Option("--config", "-c", help="YAML file, or a bundled config name (demo, sigma_set27k).")] = "demo",
    num_samples: Annotated[Optional[int], typer.Option("--num-samples", "-n", help="Samples to generate (default: run.num_samples).")] = None,
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs to balance the GPU stages over.")] = 8,
    cpus: Annotated[int, typer.Option("--cpus", help="CPUs in the cluster.")] = 64,
    from_run: Annotated[Optional[Path], typer.Option("--from", help="A finished run whose measured costs and reject rates replace the config's estimates.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override any key, as for run.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Forecast a run: per stage GPU-hours, samples in and out, storage, the balanced worker
    split for --gpus, and the bottleneck."""
    from datagen.config import load_config, resolve_config_path
    from datagen.pipeline.forecast import forecast, render

    cfg = load_config(resolve_config_path(config), list(set_ or ()))
    if cpus < 1:
        raise UserError(f"--cpus: must be at least 1 (got {cpus})")
    if gpus < 0:
        raise UserError(f"--gpus: must not be negative (got {gpus})")
    if num_samples is not None and num_samples < 1:
        raise UserError(f"--num-samples: must be at least 1 (got {num_samples})")
    if from_run is not None and not from_run.is_dir():
        raise UserError(f"--from {from_run}: not a run directory")
    report = forecast(cfg, num_samples or cfg.run.num_samples, gpus, cpus, from_run)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
    else:
        typer.echo("\n".join(render(report)))


@app.command()
def status(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    report: Annotated[bool, typer.Option("--report", help="Also write plots and report.json (default RUN/report).")] = False,
    report_dir: Annotated[Optional[Path], typer.Option("--report-dir", help="Where --report writes.")] = None,
) -> None:
    """Per stage: shards done / failed / pending, samples in and out, rejections by reason."""
    from datagen.store.paths import RunPaths
    from datagen.config import load_run_config
    from datagen.views.status import collect_status, render_status, requested_subjects, subjects_histogram
    from datagen.pipeline.markers import final_kept

    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a datagen run (no such directory)")
    cfg = load_run_config(run_dir)
    paths = RunPaths(run_dir)
    rows = collect_status(cfg, paths)
    if as_json:
        kept, done = final_kept(cfg, paths)
        payload = {
            "run": str(run_dir),
            "num_shards": cfg.num_shards,
            "final_shards": done,
            "kept": kept,
            "subjects_histogram": subjects_histogram(cfg, paths),
            "requested_subjects_histogram": requested_subjects(cfg),
            "stages": [r.to_dict() for r in rows],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        typer.echo(render_status(cfg, paths, rows))
    if report or report_dir is not None:
        from datagen.views.report import write_report

        typer.echo(f"report: {write_report(run_dir, report_dir or run_dir / 'report')}", err=True)


@app.command()
def validate(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Check RUN/final against the sigma-set/1 or /2 format's invariants; non-zero exit if broken."""
    from datagen.config import load_run_config
    from datagen.final.validate import validate_run

    cfg = load_run_config(run_dir)
    count, errors = validate_run(run_dir, cfg)
    for line in errors[:50]:
        typer.echo(line, err=True)
    typer.echo(f"{count} samples checked, {len(errors)} problems")
    if errors:
        raise typer.Exit(1)


@app.command()
def verify(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    stage: Annotated[Optional[str], typer.Option("--stage", help="Only this stage's shards ('final' or the last stage: final/; 'surplus': shards past a --target-kept cut).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Shards hashed at once.")] = 4,
) -> None:
    """Re-hash every committed shard (each stage's, final/ and surplus/) against its marker; non-zero exit on a mismatch.

    A resume checks shards cheaply (output.verify: index, sizes and tar headers); this reads the whole run."""
    from datagen.config import load_run_config
    from datagen.pipeline.verify import verify_run
    from datagen.store.paths import RunPaths

    report = verify_run(load_run_config(run_dir), RunPaths(run_dir), stage, jobs)
    for line in report.problems:
        typer.echo(line, err=True)
    typer.echo(f"{report.checked} shards checked ({report.bytes / 1e9:.2f} GB), {len(report.problems)} problems")
    if report.problems:
        typer.echo("a resume with --set output.verify=sha256 redoes them", err=True)
        raise typer.Exit(1)


@app.command()
def train(
    config: Annotated[str, typer.Option("--config", "-c", help="Training YAML, or a bundled name (train_sigma, train_tiny).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output dir: checkpoints/, lora/, logs.")],
    data: Annotated[Optional[list[str]], typer.Option("--data", help="A run dir, a dir of shards, a glob, a brace URL; repeatable (several: mixed by weight), NAME=PATH names one. Default: the config's data:.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override any key: --set lora.rank=64")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Go on from the newest checkpoint in --out.")] = False,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many steps (a partial run).")] = None,
    ray_workers: Annotated[Optional[int], typer.Option("--ray-workers", help="Run on Ray Train's TorchTrainer with N workers.")] = None,
    gpu: Annotated[bool, typer.Option("--gpu/--cpu", help="With --ray-workers: one GPU per worker (default when CUDA is here).")] = None,  # type: ignore[assignment]
    address: Annotated[Optional[str], typer.Option("--address", help="With --ray-workers: join this Ray cluster.")] = None,
) -> None:
    """LoRA fine-tuning of FLUX.1 Kontext on final shards with SIGMA-GEN's conditioning.
    Multi-GPU: accelerate launch --multi_gpu --num_processes N -m datagen.cli train ...,
    or on a Ray cluster: datagen train --ray-workers N --address HOST:PORT ..."""
    from datagen.train.config import load_train_config
    from datagen.train.data import data_sources, validate_data
    from datagen.train.loop import train as run_training
    from datagen.train.source import ShardSource

    cfg = load_train_config(config, list(set_ or ()))
    sources = [(source, validate_data(source.path)) for source in data_sources(cfg, data)]
    if address is not None and ray_workers is None:
        raise UserError("--address: only with --ray-workers (accelerate launch has its own flags)")
    if ray_workers is not None:
        from datagen.train.checkpoint import latest
        from datagen.train.ray_launch import train_on_ray

        if latest(out) is not None and not resume:
            raise UserError(f"{out}: holds checkpoints ({latest(out).name}); add --resume to go on, or choose another --out")
        if gpu is None:
            import torch

            gpu = torch.cuda.is_available()
        report = train_on_ray(config, list(set_ or ()), sources, out, total_steps=cfg.total_steps, workers=ray_workers, use_gpu=gpu, address=address,
                              resume=resume, max_steps=max_steps, say=lambda m: typer.echo(m, err=True))  # fmt: skip
        typer.echo(json.dumps(report))
        return
    source = ShardSource(sources, cfg)
    result = run_training(cfg, source, out, resume=resume, say=lambda m: typer.echo(m, err=True), max_steps=max_steps)
    if not result.main:
        return
    skipped = {k: v for k, v in source.stats.as_dict().items() if k.startswith("rejected") or k == "shard_errors"}
    if skipped:
        typer.echo(f"data: skipped {skipped}", err=True)
    typer.echo(json.dumps({"steps": result.steps, "last_loss": result.losses[-1] if result.losses else None,
                           "lora": str(result.lora) if result.lora else None, "mix": result.mix}))  # fmt: skip


@app.command()
def sample(
    lora: Annotated[Optional[Path], typer.Option("--lora", help="A LoRA dir or file from datagen train (none: the base model).")] = None,
    shard: Annotated[Optional[str], typer.Option("--from", help="A final shard (.tar) to take the layout and identities from.")] = None,
    key: Annotated[Optional[str], typer.Option("--key", help="The sample key in --from (default: its first).")] = None,
    layout: Annotated[Optional[Path], typer.Option("--layout", help="A JSON layout: boxes / masks + depth + identity image paths.")] = None,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Default: 'Place these subjects to compose: <full prompt>'.")] = None,
    prompt_template: Annotated[Optional[str], typer.Option("--prompt-template", help="Instead of --prompt: background ('Place these subjects in <background>', the paper's for masks + depth) or full (the default).")] = None,
    mode: Annotated[str, typer.Option("--mode", help="Structure: masks, boxes3d, boxes2d, full_depth (the whole scene's depth) or mixed (per-subject granularity).")] = "masks",
    granularity: Annotated[Optional[str], typer.Option("--granularity", help="With --mode mixed: mask, box2d or box3d per subject in identity order, comma-separated. Default: mask,box2d,box3d,mask,...")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="The PNG to write.")] = Path("sample.png"),
    config: Annotated[str, typer.Option("--config", "-c", help="Training YAML for model, sizes and dtype.")] = "train_sigma",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a training config key.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    steps: Annotated[int, typer.Option("--steps", help="Denoising steps (shared default: datagen.train.defaults).")] = INFERENCE_STEPS,
    guidance: Annotated[float, typer.Option("--guidance", help="Kontext's embedded guidance (shared default).")] = INFERENCE_GUIDANCE,
) -> None:
    """Generate one image SIGMA-GEN style: identities + layout + prompt, one forward per step."""
    from datagen.train.sampling import run_sample

    path = run_sample(
        lora=lora, shard=shard, key=key, layout=layout, prompt=prompt, mode=mode, out=out, config=config,
        overrides=list(set_ or ()), seed=seed, steps=steps, guidance=guidance, granularity=granularity,
        prompt_template=prompt_template,
    )  # fmt: skip
    typer.echo(str(path))


app.add_typer(eval_app, name="eval")

app.add_typer(export_app, name="export")


@app.command()
def show(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The PNG to write.")] = Path("sheet.png"),
    n: Annotated[int, typer.Option("--n", help="Samples on the sheet.")] = 8,
    sample_key: Annotated[Optional[str], typer.Option("--sample", help="One sample, large, by key (e.g. 000000_000003).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists.")] = False,
) -> None:
    """A contact sheet: image, labelled masks, depth, projected 3D boxes and the identity strip."""
    from datagen.views.contact_sheet import write_contact_sheet

    typer.echo(str(write_contact_sheet(run_dir, out, n=n, key=sample_key, overwrite=overwrite)))


@app.command()
def browse(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the static viewer (open index.html).")],
    limit: Annotated[Optional[int], typer.Option("--limit", help="At most this many samples.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists.")] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Render on N local Ray workers (default: the machine's cores, or 1 below 1,000 samples; 1: in this process, no Ray).")] = None,
) -> None:
    """A static HTML viewer: paged thumbnails with filters, a page per sample with overlay toggles."""
    import os
    from functools import partial

    from datagen.pipeline.ray_map import ray_map
    from datagen.views.browse import default_workers, write_browser

    map_items = partial(ray_map, workers=workers or default_workers(run_dir, limit, os.cpu_count() or 1))
    typer.echo(str(write_browser(run_dir, out, limit=limit, overwrite=overwrite, map_items=map_items)))


@app.command("tiny-models")
def tiny_models(
    out_dir: Annotated[Path, typer.Argument(help="Where to build them: DIR/<model id> for each model.")],
    only: Annotated[list[str] | None, typer.Option("--only", help="Build only this model id (repeatable).")] = None,
) -> None:
    """Build tiny random-weight copies of the real models offline, for tests and configs/tiny.yaml."""
    from datagen.models.tiny.build import BUILDERS, build_tiny_models

    unknown = [m for m in only or [] if m not in BUILDERS]
    if unknown:
        raise UserError(f"--only {unknown[0]}: not a model datagen builds (known: {', '.join(BUILDERS)})")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a directory")
    build_tiny_models(out_dir, only, say=typer.echo)
    typer.echo(f"use them with: --set models_dir={out_dir}")


@app.command()
def version() -> None:
    """Print datagen's version."""
    from datagen import __version__

    typer.echo(__version__)


def main() -> None:
    try:
        app(standalone_mode=True)
    except UserError as e:
        print(f"datagen: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        # The machine, not datagen, said no (full disk, read-only or unwritable storage).
        if e.errno not in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT, errno.EPERM):
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"datagen: error: {where}cannot write ({os.strerror(e.errno)})", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("datagen: interrupted; run the same command again to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
