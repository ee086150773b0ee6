"""The dataset card (README.md) of `datagen export hf`, rendered from data_cards/sigma_set.md.

`huggingface_hub.DatasetCard.from_template` writes the YAML front matter (licence, task,
tags, size, the `configs` that let `load_dataset(REPO)` read the Arrow files, and the
features); the body shows the run's own figures, read from the markers the run committed
(datagen.views.status) and from the rows as they were exported (ExportTally, and the saved
`schema` column: which format the samples were stored in, and how many were converted from
sigma-set/1).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from datagen import __version__
from datagen.config import RunConfig
from datagen.export.tally import ExportTally
from datagen.final.read import shard_stats
from datagen.store.paths import RunPaths
from datagen.resources import data_cards_dir
from datagen.schema import SCHEMA_V1, SCHEMA_V2
from datagen.views.status import StageStatus, collect_status, requested_subjects, subjects_histogram

TEMPLATE = "sigma_set.md"
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


def _histogram(cfg: RunConfig, paths: RunPaths) -> list[dict[str, int | str]]:
    """Subjects per sample: requested by the prompts stage vs kept in the final shards."""
    kept, requested = subjects_histogram(cfg, paths), requested_subjects(cfg)
    counts = sorted(set(requested) | set(kept), key=int)
    return [{"subjects": k, "requested": requested.get(k, 0), "kept": kept.get(k, 0)} for k in counts]


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


def card_data(n: int, pretty_name: str, dataset_info: Any) -> Any:
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(
        license="other",  # a placeholder the user replaces: the card's licence section says why
        task_categories=["text-to-image", "image-to-image"],
        tags=TAGS,
        size_categories=[size_category(n)],
        pretty_name=pretty_name,
        # save_to_disk's Arrow files, so `load_dataset(REPO)` reads the upload as it is.
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data-*.arrow"}]}],
    )
    DatasetInfosDict({"default": dataset_info}).to_dataset_card_data(data)
    return data


def render_card(
    dest: Path, run_dir: Path, cfg: RunConfig, tally: ExportTally, shards: list[Path], repo_id: str | None, quality: dict | None = None
) -> str:
    """The README.md text for the dataset saved in `dest` from `run_dir`."""
    from datasets import load_from_disk
    from huggingface_hub import DatasetCard

    paths = RunPaths(run_dir)
    ds = load_from_disk(str(dest))
    schemas = Counter(ds["schema"])  # the version each sample was stored in
    info = ds.info
    info.splits = None  # the split sizes are stated in the body; the Arrow builder recounts them
    statuses = collect_status(cfg, paths)
    stats = [shard_stats(s) for s in shards]
    pretty_name = f"{cfg.run.name} ({', '.join(sorted(schemas)) or SCHEMA_V2})"
    card = DatasetCard.from_template(
        card_data(tally.rows, pretty_name, info),
        template_path=str(data_cards_dir() / TEMPLATE),
        pretty_name=pretty_name,
        repo_id=repo_id,
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
        stages=_stage_rows(cfg, statuses, tally),
        rejects=_reject_rows(statuses),
        licence_notes=_licence_notes(cfg, tally),
        truth=tally.truth,
        quality=_quality(quality),
        sources=_sources(tally),
    )
    return str(card).rstrip("\n") + "\n"


def write_card(
    dest: Path, run_dir: Path, cfg: RunConfig, tally: ExportTally, shards: list[Path], repo_id: str | None, quality: dict | None = None
) -> Path:
    path = dest / "README.md"
    path.write_text(render_card(dest, run_dir, cfg, tally, shards, repo_id, quality), encoding="utf-8")
    return path
