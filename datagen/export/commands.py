"""`datagen export hf|sigma|omnigen2|uno`: a typer sub-app over datagen.export.

Every export reads a finished run and writes one directory, staged (nothing half-written, never
the run itself), with a dataset card; `--limit` exports only the first samples, for a quick look.
The exporters are imported inside the commands, so `datagen --help` loads none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

export_app = typer.Typer(help="Export a finished run to other formats.", no_args_is_help=True)

RunArg = Annotated[Path, typer.Argument(help="A finished run directory.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists.")]
Limit = Annotated[Optional[int], typer.Option("--limit", help="Only the first N samples (key order), for a quick look.")]
Quality = Annotated[Optional[Path], typer.Option("--quality", help="A `datagen eval data` report dir: the card states its figures.")]


def _say(message: str) -> None:
    typer.echo(message, err=True)


@export_app.command("hf")
def export_hf(
    run_dir: RunArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the dataset (save_to_disk) and its README.md card.")],
    push_to_hub: Annotated[Optional[str], typer.Option("--push-to-hub", help="Also upload to this hub repo (user/name).")] = None,
    private: Annotated[bool, typer.Option("--private", help="With --push-to-hub: create the repo private.")] = False,
    overwrite: Overwrite = False,
    quality: Quality = None,
    limit: Limit = None,
) -> None:
    """A Hugging Face dataset, one row per final sample, with a dataset card."""
    from datagen.export.hf import export_hf as run_export

    typer.echo(run_export(run_dir, out, overwrite=overwrite, push_to_hub=push_to_hub, private=private, say=_say,
                          quality=quality, limit=limit))  # fmt: skip


def _export(exporter_name: str, run_dir: Path, out: Path, overwrite: bool, limit: int | None, quality: Path | None, **kw) -> None:
    from datagen.export.common import ExportRequest, export_format

    if exporter_name == "sigma":
        from datagen.export.sigma import SigmaExporter as Exporter
    elif exporter_name == "omnigen2":
        from datagen.export.omnigen2 import OmniGen2Exporter as Exporter
    else:
        from datagen.export.uno import UnoExporter as Exporter
    request = ExportRequest(run_dir=run_dir, out=out, overwrite=overwrite, limit=limit, quality=quality, say=_say)
    typer.echo(export_format(Exporter(**kw), request))


@export_app.command("sigma")
def export_sigma(
    run_dir: RunArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the parquet chunks, parquet_info.json, configs and card.")],
    overwrite: Overwrite = False,
    limit: Limit = None,
    quality: Quality = None,
) -> None:
    """SIGMA's interleaved training data (Bagel-style parquet): compositional, extraction and layout rows."""
    _export("sigma", run_dir, out, overwrite, limit, quality)


@export_app.command("omnigen2")
def export_omnigen2(
    run_dir: RunArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the ic jsonl, its images, the data config YAML and card.")],
    overwrite: Overwrite = False,
    limit: Limit = None,
    quality: Quality = None,
) -> None:
    """OmniGen2's in-context ("ic") training jsonl: identity images in, the target out."""
    _export("omnigen2", run_dir, out, overwrite, limit, quality)


@export_app.command("uno")
def export_uno(
    run_dir: RunArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for images/, the labels json and card.")],
    entries: Annotated[str, typer.Option("--entries", help="pairs: one per (target, subject); samples: one per sample.")] = "pairs",
    overwrite: Overwrite = False,
    limit: Limit = None,
    quality: Quality = None,
) -> None:
    """UNO's layout, as UNO-1M: images/ and one labels json that FluxPairedDatasetV2 reads."""
    _export("uno", run_dir, out, overwrite, limit, quality, entries=entries)
