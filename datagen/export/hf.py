"""`datagen export hf`: a finished run as a Hugging Face `datasets` dataset, with its card.

One row per final sample, written with `Dataset.from_generator` (rows are flushed every
WRITER_BATCH rows, so memory stays bounded whatever the run's size) and `save_to_disk`, beside a
README.md card (datagen.export.card). The schema is declared up front (`sample_features`), never
inferred from the first rows: every FORMAT.md field has a typed column, and what varies by
backend (stage-named sections) is kept losslessly as JSON text. The whole directory is built
in a staged temporary and appears only once it loads back with the right row count.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from datagen.errors import UserError
from datagen.export.tally import ExportTally
from datagen.final.read import FinalSample, count_final_samples, final_shards, iter_final_samples
from datagen.models.hub import hub_offline, require
from datagen.store.output_guard import refuse_existing, staged_dir
from datagen.config import load_run_config
from datagen.schema import IMAGE_FIELDS, crop_field, identity_field, mask_field

# Rows per Arrow record batch: a 1024² row (image, depth, ten identities and crops) is ~12 MB.
WRITER_BATCH = 16
SAY_EVERY = 1000
BUILD_CACHE = ".build-cache"

# Keys with their own typed column; anything else a stage adds goes to `extra_json`.
SUBJECT_KEYS = ("name", "caption", "intensity", "box_2d", "box_area_frac", "mask_area_frac", "score", "box_3d", "identity")
TOP_KEYS = ("schema", "key", "width", "height", "prompt", "subjects", "camera", "depth", "generation", "provenance", "truth")


def sample_features(height: int, width: int) -> Any:
    """The dataset's Features: declared, so the schema never depends on which rows come first."""
    from datasets import Array2D, Features, Image, List, Value

    text, f64, i32 = Value("string"), Value("float64"), Value("int32")
    vec3 = List(f64, length=3)
    subject = {
        "name": text,
        "caption": text,
        "intensity": i32,
        "box_2d": List(i32, length=4),
        "box_area_frac": f64,
        "mask_area_frac": f64,
        "score": f64,
        "box_3d": {"center": vec3, "extent": vec3, "rotation": List(vec3, length=3), "corners": List(vec3, length=8)},
        "identity": {"width": i32, "height": i32},
        "extra_json": text,
    }
    return Features(
        {
            "key": text,
            "shard": text,
            "schema": text,
            "width": i32,
            "height": i32,
            "image": Image(),
            "prompt": {"full": text, "background": text},
            "subjects": List(subject),
            "masks": List(Image()),
            "identities": List(Image()),
            "crops": List(Image()),
            "depth": Array2D(shape=(height, width), dtype="float32"),
            "depth_info": {"units": text, "source": text},
            "camera": {"model": text, "fx": f64, "fy": f64, "cx": f64, "cy": f64},
            "generation_json": text,
            "provenance": {"run_id": text, "config_sha256": text, "datagen_version": text},
            "truth_json": text,
            "extra_json": text,
            "metadata_json": text,
        }
    )


def _json(obj: Any) -> str:
    # allow_nan: a NaN the shard's JSON holds is kept as it is, not refused.
    return json.dumps(obj, ensure_ascii=False, allow_nan=True)


def _png(sample: FinalSample, name: str) -> dict[str, Any]:
    """A member as stored (no re-encoding), named like the shard member it came from."""
    return {"bytes": sample.members[name], "path": f"{sample.key}.{name}"}


def _subject(s: dict[str, Any]) -> dict[str, Any]:
    row = {k: s[k] for k in SUBJECT_KEYS}
    row["extra_json"] = _json({k: v for k, v in s.items() if k not in SUBJECT_KEYS})
    return row


def _crops(sample: FinalSample, n: int) -> list[dict[str, Any] | None]:
    """Crops are optional (output.write_crops): empty when the run wrote none, None for a missing one."""
    crops = [sample.crop(i) for i in range(n)]
    if not any(crops):
        return []
    return [None if c is None else {"bytes": c, "path": f"{sample.key}.{crop_field(i)}"} for i, c in enumerate(crops)]


def sample_row(sample: FinalSample) -> dict[str, Any]:
    """One final sample as a row of `sample_features`."""
    meta, n = sample.meta, len(sample.subjects)
    image_field = next(f for f in IMAGE_FIELDS if f in sample.members)
    return {
        "key": sample.key,
        "shard": sample.shard.name,
        "schema": meta["schema"],
        "width": meta["width"],
        "height": meta["height"],
        "image": _png(sample, image_field),
        "prompt": meta["prompt"],
        "subjects": [_subject(s) for s in sample.subjects],
        "masks": [{"bytes": sample.mask_png(i), "path": f"{sample.key}.{mask_field(i)}"} for i in range(n)],
        "identities": [{"bytes": sample.identity_png(i), "path": f"{sample.key}.{identity_field(i)}"} for i in range(n)],
        "crops": _crops(sample, n),
        "depth": sample.depth,
        "depth_info": meta["depth"],
        "camera": meta["camera"],
        "generation_json": _json(meta["generation"]),
        "provenance": meta["provenance"],
        "truth_json": None if meta.get("truth") is None else _json(meta["truth"]),
        "extra_json": _json({k: v for k, v in meta.items() if k not in TOP_KEYS}),
        "metadata_json": sample.members["json"].decode("utf-8"),
    }


def _rows(run_dir: str, size: tuple[int, int], tally: ExportTally, say: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    for sample in iter_final_samples(Path(run_dir)):
        (h, w), found = size, (sample.meta["height"], sample.meta["width"])
        if found != size:
            raise UserError(f"{sample.shard}: sample {sample.key} is {found[1]}x{found[0]}, the run's config says {w}x{h}")
        row = sample_row(sample)
        tally.rows += 1
        for stage, model in sample.meta["generation"].get("models", {}).items():
            tally.models.setdefault(stage, Counter())[model] += 1
        tally.provenance[tuple(sample.meta["provenance"][k] for k in ("run_id", "config_sha256", "datagen_version"))] += 1
        tally.crops += bool(row["crops"])
        tally.truth += row["truth_json"] is not None
        if tally.rows % SAY_EVERY == 0:
            say(f"export: {tally.rows} samples")
        yield row


@contextmanager
def _quiet_progress(datasets: Any) -> Iterator[None]:
    """datasets' own progress bars off (the CLI reports through `say`), restored afterwards."""
    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def build_dataset(run_dir: Path, dest: Path, size: tuple[int, int], say: Callable[[str], None]) -> ExportTally:
    """Write every final sample of `run_dir` into `dest` with save_to_disk; returns the tally."""
    datasets = require("datasets", "export")
    tally = ExportTally()
    cache = dest / BUILD_CACHE  # from_generator's Arrow cache: inside the staged dir, not ~/.cache
    with _quiet_progress(datasets):
        try:
            ds = datasets.Dataset.from_generator(
                _rows,
                features=sample_features(*size),
                cache_dir=str(cache),
                gen_kwargs={"run_dir": str(run_dir), "size": size, "tally": tally, "say": say},
                fingerprint="datagen-export-hf",  # a fresh cache dir each time: nothing stale to reuse
                writer_batch_size=WRITER_BATCH,
            )
        except datasets.exceptions.DatasetGenerationError as e:
            # A corrupt shard or sample raised a UserError inside the generator: report that line.
            if isinstance(e.__cause__, UserError):
                raise e.__cause__ from None
            raise
        ds.save_to_disk(str(dest))
        del ds
    shutil.rmtree(cache)
    return tally


def _check_datasets_version() -> None:
    datasets = require("datasets", "export")
    # datasets 4 brought List features; 3.x's Sequence would turn `subjects` into a dict of lists.
    if not hasattr(datasets, "List"):
        raise UserError(f"datagen export hf needs datasets>=4 (found {datasets.__version__}): pip install -U 'datagen[export]'")


def _check_readback(dest: Path, expected: int) -> None:
    datasets = require("datasets", "export")
    rows = datasets.load_from_disk(str(dest)).num_rows
    if rows != expected:
        raise UserError(f"export: {dest} holds {rows} rows but the final shards' stats say {expected} samples")


def check_repo_id(repo_id: str) -> None:
    """UserError unless `repo_id` is a hub repo id (`name` or `user/name`)."""
    require("huggingface_hub", "export")
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        why = (str(e).strip().splitlines() or [""])[0]
        raise UserError(f"--push-to-hub {repo_id!r}: not a hub repo id, expected user/name ({why})") from None


def _network_errors() -> tuple[type[BaseException], ...]:
    """What an upload raises when the hub cannot be reached or refuses: hub errors are OSErrors
    (offline mode, HTTP errors, no token); the HTTP client's transport errors are not."""
    errors: list[type[BaseException]] = [OSError]
    for client in ("httpx2", "httpx", "requests"):  # whichever the installed huggingface_hub uses
        module = sys.modules.get(client)
        if module is not None:
            errors.append(getattr(module, "HTTPError", OSError))
    return tuple(errors)


def upload(out: Path, repo_id: str, *, private: bool, say: Callable[[str], None]) -> str:
    """Create the dataset repo (if needed) and upload `out` to it; the repo's URL. A failure is one
    line that says the export in `out` is complete, so nothing is lost."""
    hub = require("huggingface_hub", "export")
    later = f"the dataset is complete in {out}; upload it later with: hf upload {repo_id} {out} --repo-type dataset"
    if hub_offline():
        raise UserError(f"--push-to-hub {repo_id}: HF_HUB_OFFLINE is set, so nothing was uploaded; {later}")
    api = hub.HfApi()
    say(f"export: uploading {out} to the dataset repo {repo_id}")
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(out), repo_type="dataset", commit_message="datagen export hf")
    except _network_errors() as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise UserError(f"--push-to-hub {repo_id}: upload failed ({e.__class__.__name__}: {first}); {later}") from None
    return str(getattr(url, "url", None) or f"https://huggingface.co/datasets/{repo_id}")


def export_hf(
    run_dir: Path, out: Path, *, overwrite: bool, push_to_hub: str | None, private: bool, say: Callable[[str], None]
) -> str:
    """Export `run_dir`'s final samples to `out` (save_to_disk + README.md); optionally upload it."""
    from datagen.export.card import write_card

    run_dir, out = Path(run_dir), Path(out)
    if push_to_hub is not None:
        check_repo_id(push_to_hub)  # before anything is read or written
    shards = final_shards(run_dir)
    expected = count_final_samples(run_dir)
    cfg = load_run_config(run_dir)
    refuse_existing(out, overwrite, protect=run_dir)  # before the (slow) export, not after it
    for module in ("datasets", "huggingface_hub", "jinja2"):  # jinja2: DatasetCard.from_template renders with it
        require(module, "export")
    _check_datasets_version()
    say(f"export: {expected} samples from {len(shards)} final shards of {run_dir}")
    with staged_dir(out, overwrite, protect=run_dir) as tmp:
        tally = build_dataset(run_dir, tmp, (cfg.run.height, cfg.run.width), say)
        if tally.rows != expected:
            raise UserError(f"export: read {tally.rows} samples but the final shards' stats say {expected} (a shard changed?)")
        write_card(tmp, run_dir, cfg, tally, shards, repo_id=push_to_hub)
        _check_readback(tmp, expected)
    done = f"wrote {tally.rows} rows to {out} (card: {out / 'README.md'})"
    if push_to_hub is None:
        return done
    say(done)
    url = upload(out, push_to_hub, private=private, say=say)
    return f"{done}; uploaded to {url}"
