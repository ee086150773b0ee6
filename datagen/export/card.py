"""The dataset card (README.md) of every `datagen export`, rendered from data_cards/sigma_set.md.

`huggingface_hub.DatasetCard.from_template` writes the YAML front matter (licence, task,
tags, size, the `configs` that let `load_dataset(REPO)` read the Arrow files, and the
features); the body shows the run's own figures, read from the markers the run committed
(datagen.views.status) and from the rows as they were exported (ExportTally, and the saved
`schema` column: which format the samples were stored in, and how many were converted from
sigma-set/1).

The other formats (sigma, omnigen2, uno) get the same card (`card_fields`), named after the
format, with a section on the format in place of the ones about the Arrow rows
(`render_format_card`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datagen import __version__
from datagen.recipe.paper_rules import beyond_paper
from datagen.config import RunConfig
from datagen.export.tally import ExportTally
from datagen.final.read import shard_stats
from datagen.store.paths import RunPaths
from datagen.resources import data_cards_dir
from datagen.schema import SCHEMA_V1, SCHEMA_V2
from datagen.views.status import StageStatus, collect_status, requested_subjects, subjects_histogram

TEMPLATE = "sigma_set.md"
PROMPTS_STAGE = "prompts"  # a run with it generates its samples; an ingest run reads them from a source
MAX_SIZE_ROWS = 20  # the "Image sizes" table lists at most this many sizes, the commonest first
TAGS = ["sigma-set", "synthetic", "multi-subject", "subject-driven-generation", "depth", "segmentation", "3d-bounding-boxes"]
SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
# Licences the user must read before sharing; a hint, not legal advice (the card says so).
MODEL_LICENCES = {
    "black-forest-labs/FLUX.1-dev": "FLUX.1 [dev] Non-Commercial License",
    "black-forest-labs/FLUX.1-Kontext-dev": "FLUX.1 [dev] Non-Commercial License",
}


def size_category(n: int) -> str:
    return next((name for bound, name in SIZE_CATEGORIES if n < bound), "1M<n<10M")


def _stage_rows(cfg: RunConfig, statuses: list[StageStatus], tally: ExportTally) -> list[dict[str, Any]]:
    rows = []
    for status in statuses:
        stage_cfg = cfg.stages.stage(status.stage)
        recorded = tally.models.get(status.stage, {})
        rows.append(
            {
                "stage": status.stage,
                "backend": stage_cfg.backend,
                "configured": ", ".join(stage_cfg.model_ids()) or "-",
                "revision": getattr(stage_cfg, "revision", None) or "-",
                "recorded": ", ".join(f"{m} ({n})" for m, n in sorted(recorded.items())) or "-",
                "done": status.done,
                "samples_in": status.samples_in,
                "samples_out": status.samples_out,
                "rejected": sum(status.rejected.values()),
                "subjects_dropped": sum(status.rejected_subjects.values()),
                "wall_s": f"{status.wall_s:.1f}",
            }
        )
    return rows


def _reject_rows(statuses: list[StageStatus]) -> list[dict[str, Any]]:
    """One row per (stage, reason): samples rejected and subjects dropped for it."""
    out = []
    for status in statuses:
        for reason in sorted(set(status.rejected) | set(status.rejected_subjects)):
            out.append(
                {
                    "stage": status.stage,
                    "reason": reason,
                    "samples": status.rejected.get(reason, 0),
                    "subjects": status.rejected_subjects.get(reason, 0),
                }
            )
    return out


def _licence_notes(cfg: RunConfig, tally: ExportTally) -> list[str]:
    used = {m for c in tally.models.values() for m in c} | {m for s in cfg.stages.order for m in cfg.stages.stage(s).model_ids()}
    return [f"`{m}`: {MODEL_LICENCES[m]}" for m in sorted(used) if m in MODEL_LICENCES]


def _histogram(cfg: RunConfig, paths: RunPaths) -> list[dict[str, int | str | None]]:
    """Subjects per sample: requested by the prompts stage vs kept in the final shards. A run
    without a prompts stage (an ingest run: each row's subjects come from its source) has no
    "requested" to state: its rows carry None there, and the card leaves the column out."""
    kept = subjects_histogram(cfg, paths)
    if PROMPTS_STAGE not in cfg.stages.order:
        return [{"subjects": k, "requested": None, "kept": n} for k, n in sorted(kept.items(), key=lambda kv: int(kv[0]))]
    requested = requested_subjects(cfg)
    counts = sorted(set(requested) | set(kept), key=int)
    return [{"subjects": k, "requested": requested.get(k, 0), "kept": kept.get(k, 0)} for k in counts]


def _size(w: int, h: int) -> str:
    return f"{w}x{h}"


def _span(values: set[int]) -> str:
    return f"{min(values)}" if len(values) == 1 else f"{min(values)} to {max(values)}"


def _sizes(cfg: RunConfig, tally: ExportTally) -> dict[str, Any]:
    """The rows' image sizes, as counted while they were written: `summary` for the Samples line,
    and when they differ, `rows` (the commonest MAX_SIZE_ROWS sizes with their sample counts) and
    `more` (what those rows leave out). Never the config's run.width x run.height: an ingested
    sample keeps its source image's size."""
    sizes = tally.sizes
    configured = _size(cfg.run.width, cfg.run.height)
    ingested = tally.kinds.get("ingested", 0)
    out: dict[str, Any] = {"varied": len(sizes) > 1, "rows": [], "more": None, "configured": configured, "ingested": ingested}
    if not sizes:
        out["summary"] = "no rows"
        return out
    if len(sizes) == 1:
        out["summary"] = _size(*next(iter(sizes)))
        return out
    widths, heights = _span({w for w, _ in sizes}), _span({h for _, h in sizes})
    out["summary"] = f"{len(sizes)} image sizes, {widths} px wide and {heights} px high; each row's `width` and `height` give its own"
    ranked = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    out["rows"] = [{"size": _size(w, h), "samples": n} for (w, h), n in ranked[:MAX_SIZE_ROWS]]
    rest = ranked[MAX_SIZE_ROWS:]
    if rest:
        out["more"] = {"sizes": len(rest), "samples": sum(n for _, n in rest)}
    return out


def _origin(tally: ExportTally) -> str:
    """What one row is, by where the rows came from and how many subjects they hold."""
    counts = sorted(tally.subjects)
    if not counts:
        subjects = "one or more subjects"
    elif len(counts) == 1:
        subjects = f"{counts[0]} subject{'s' if counts[0] != 1 else ''}"
    else:
        subjects = f"{counts[0]} to {counts[-1]} subjects"
    generated, ingested = tally.kinds.get("generated", 0), tally.kinds.get("ingested", 0)
    if ingested and generated:
        return f"one image of {subjects}, generated ({generated} rows) or ingested from an existing dataset ({ingested} rows)"
    if ingested:
        return f"one image of {subjects} ingested from an existing dataset (`datagen ingest`; the datasets are listed under \"Licence\")"
    return f"one generated image of {subjects}"


def _tags(tally: ExportTally) -> list[str]:
    """TAGS, less `synthetic` when every row was ingested from an existing dataset."""
    ingested_only = tally.kinds.get("ingested", 0) and not tally.kinds.get("generated", 0)
    return [t for t in TAGS if not (ingested_only and t == "synthetic")]


def _provenance(tally: ExportTally) -> list[dict[str, Any]]:
    keys = ("run_id", "config_sha256", "datagen_version")
    return [{**dict(zip(keys, values, strict=True)), "samples": n} for values, n in sorted(tally.provenance.items())]


def _sources(tally: ExportTally) -> list[dict[str, Any]]:
    """The ingested datasets, each with the licence and citation its samples carry."""
    return [{"dataset": d, "licence": lic or "not stated by the source", "citation": cit or "none given", "samples": n}
            for (d, lic, cit), n in sorted(tally.sources.items(), key=lambda kv: str(kv[0]))]  # fmt: skip


def _quality(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """`datagen eval data`'s distributions as card rows (metric, subject count, figures)."""
    if report is None:
        return None
    rows = [{"metric": metric, "subjects": count, **{k: d[k] if k == "n" else f"{d[k]:.2f}" for k in ("n", "mean", "p10", "p50", "p90")}}
            for metric, per in report["distributions"].items() for count, d in per.items()]  # fmt: skip
    models = ", ".join(f"{k} `{v}`" for k, v in report["models"].items())
    return {"models": models, "images": report.get("images"), "subjects": report.get("subjects"), "rows": rows}


def card_data(n: int, pretty_name: str, dataset_info: Any, tags: list[str] = TAGS) -> Any:
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(
        license="other",  # a placeholder the user replaces: the card's licence section says why
        task_categories=["text-to-image", "image-to-image"],
        tags=list(tags),
        size_categories=[size_category(n)],
        pretty_name=pretty_name,
        # save_to_disk's Arrow files, so `load_dataset(REPO)` reads the upload as it is.
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data-*.arrow"}]}],
    )
    DatasetInfosDict({"default": dataset_info}).to_dataset_card_data(data)
    return data


def card_fields(
    run_dir: Path, cfg: RunConfig, tally: ExportTally, shards: list[Path], schemas: Counter, quality: dict | None = None
) -> dict[str, Any]:
    """The template's figures of the run and of the exported samples (`schemas`: the version each
    sample was stored in -> samples), whatever format they were exported to."""
    paths = RunPaths(run_dir)
    statuses = collect_status(cfg, paths)
    stats = [shard_stats(s) for s in shards]
    return dict(
        run=cfg.run,
        run_dir=str(run_dir),
        layout=SCHEMA_V2,
        schemas=", ".join(f"{name} ({n} samples)" for name, n in sorted(schemas.items())),
        converted=schemas.get(SCHEMA_V1, 0),
        num_samples=tally.rows,
        final_shards=len(shards),
        num_shards=cfg.num_shards,
        samples_rejected=sum(int(s.get("samples_rejected", 0)) for s in stats),
        provenance=_provenance(tally),
        config_sha256=cfg.config_sha256(),
        exporter_version=__version__,
        histogram=_histogram(cfg, paths),
        generated_run=PROMPTS_STAGE in cfg.stages.order,
        sizes=_sizes(cfg, tally),
        origin=_origin(tally),
        stages=_stage_rows(cfg, statuses, tally),
        rejects=_reject_rows(statuses),
        licence_notes=_licence_notes(cfg, tally),
        truth=tally.truth,
        quality=_quality(quality),
        sources=_sources(tally),
        beyond_paper=beyond_paper(cfg) if PROMPTS_STAGE in cfg.stages.order else None,
    )


def _pretty_name(cfg: RunConfig, schemas: Counter) -> str:
    return f"{cfg.run.name} ({', '.join(sorted(schemas)) or SCHEMA_V2})"


def render_card(
    dest: Path, run_dir: Path, cfg: RunConfig, tally: ExportTally, shards: list[Path], repo_id: str | None, quality: dict | None = None
) -> str:
    """The README.md text for the dataset saved in `dest` from `run_dir`."""
    from datasets import load_from_disk
    from huggingface_hub import DatasetCard

    ds = load_from_disk(str(dest))
    schemas = Counter(ds["schema"])  # the version each sample was stored in
    info = ds.info
    info.splits = None  # the split sizes are stated in the body; the Arrow builder recounts them
    pretty_name = _pretty_name(cfg, schemas)
    card = DatasetCard.from_template(
        card_data(tally.rows, pretty_name, info, _tags(tally)),
        template_path=str(data_cards_dir() / TEMPLATE),
        pretty_name=pretty_name,
        repo_id=repo_id,
        **card_fields(run_dir, cfg, tally, shards, schemas, quality),
    )
    return str(card).rstrip("\n") + "\n"


def write_card(
    dest: Path, run_dir: Path, cfg: RunConfig, tally: ExportTally, shards: list[Path], repo_id: str | None, quality: dict | None = None
) -> Path:
    path = dest / "README.md"
    path.write_text(render_card(dest, run_dir, cfg, tally, shards, repo_id, quality), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the card of another format

# Sections of the template that describe the Arrow rows of `export hf`; another format's card
# states its own layout instead (FormatCard.body).
HF_ONLY_SECTIONS = ("Loading", "Columns")


@dataclass
class FormatCard:
    """What a format's card says about the format itself; the rest is the run's card."""

    title: str  # e.g. "SIGMA (Bagel interleaved parquet)"
    trainer: str  # which trainer reads it, in one line
    body: str  # markdown: the layout and how to point the trainer at it
    tags: list[str] = field(default_factory=list)


def _without_sections(text: str, titles: tuple[str, ...]) -> str:
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            skipping = line[3:].strip() in titles
        if not skipping:
            kept.append(line)
    return "".join(kept)


def _format_section(fmt: FormatCard) -> str:
    return (
        f"## Format: {fmt.title}\n\n"
        f"**Read by:** {fmt.trainer}\n\n"
        "This directory holds the run's samples laid out for that trainer; the rest of this card\n"
        "describes the samples they came from (the run's own figures). Only what the format carries\n"
        "is here: `datagen export hf` keeps every field (masks, depth, 3D boxes).\n\n"
        f"{fmt.body.strip()}\n\n"
    )


def render_format_card(
    run_dir: Path, cfg: RunConfig, tally: ExportTally, shards: list[Path], schemas: Counter, fmt: FormatCard,
    quality: dict | None = None,
) -> str:  # fmt: skip
    """The README.md of an export to another trainer's format: the run's card, named after the
    format, with the format's own section in place of the Arrow rows' (HF_ONLY_SECTIONS)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    pretty_name = f"{_pretty_name(cfg, schemas)} as {fmt.title}"
    data = DatasetCardData(
        license="other",  # a placeholder the user replaces: the card's licence section says why
        task_categories=["text-to-image", "image-to-image"],
        tags=[*_tags(tally), *fmt.tags],
        size_categories=[size_category(tally.rows)],
        pretty_name=pretty_name,
    )
    fields = {**card_fields(run_dir, cfg, tally, shards, schemas, quality), "converted": 0}  # no /2 member is rebuilt here
    text = str(DatasetCard.from_template(data, template_path=str(data_cards_dir() / TEMPLATE), pretty_name=pretty_name,
                                         repo_id=None, **fields))  # fmt: skip
    text = _without_sections(text, HF_ONLY_SECTIONS)
    at = text.find("\n## ") + 1 or len(text)
    return (text[:at] + _format_section(fmt) + text[at:]).rstrip("\n") + "\n"


def write_format_card(
    dest: Path, run_dir: Path, cfg: RunConfig, tally: ExportTally, shards: list[Path], schemas: Counter, fmt: FormatCard,
    quality: dict | None = None,
) -> Path:  # fmt: skip
    path = dest / "README.md"
    path.write_text(render_format_card(run_dir, cfg, tally, shards, schemas, fmt, quality), encoding="utf-8")
    return path
