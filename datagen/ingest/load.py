"""A source's table through the `datasets` library, never a hand-written parser: a directory of
parquet files, a `save_to_disk` directory, an image folder or a hub id from the local cache.
Whatever is wrong with the source as a whole fails here in one line naming the path, before
anything is written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datagen.errors import UserError
from datagen.ingest.rows import one_line
from datagen.models.hub import require

if TYPE_CHECKING:
    import datasets

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # `name` or `owner/name`


def load_table(kind: str, where: str, split: str, revision: str | None, cache_dir: str | None) -> datasets.Dataset:
    """One split of the source at `where` (a local path or a hub id), images still undecoded
    wherever the caller casts them (`cast_images`)."""
    ds = require("datasets", "export")
    ds.disable_progress_bars()  # datagen reports progress per shard; `datasets` would draw bars on stderr
    path = Path(where).expanduser()
    local = path.exists()
    if local and revision is not None:
        raise UserError(f"{where}: `revision` applies to hub ids only, and this is a local path")
    if kind in ("folder", "dreambooth"):
        if not path.is_dir():
            raise UserError(f"{where}: no such folder")
        return _guarded(where, lambda: ds.load_dataset("imagefolder", data_dir=str(path), split=split, cache_dir=cache_dir))
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return _pick_split(where, _guarded(where, lambda: ds.load_from_disk(str(path))), split)
        if not any(path.rglob("*.parquet")):
            raise UserError(f"{where}: neither a directory of parquet files nor a save_to_disk directory")
        # data_dir, not one list of files: the library sorts the files and sorts train-*/test-*
        # (or train/, test/) into their splits, as it does for a hub repository.
        return _guarded(where, lambda: ds.load_dataset("parquet", data_dir=str(path), split=split, cache_dir=cache_dir))
    if path.is_file():
        if path.suffix != ".parquet":
            raise UserError(f"{where}: a file must be .parquet (or give a directory)")
        files = {split: str(path)}
        return _guarded(where, lambda: ds.load_dataset("parquet", data_files=files, split=split, cache_dir=cache_dir))
    if not HUB_ID.match(where) or ".." in where:
        raise UserError(f"{where}: no such file or directory")
    # No trust_remote_code: datasets>=4 runs no loading scripts, and none is asked for.
    return _guarded(
        where,
        lambda: ds.load_dataset(where, split=split, revision=revision, cache_dir=cache_dir),
        prefix="not a local path, and as a hub id: ",
    )


def _guarded(where: str, load: Any, prefix: str = "") -> Any:
    """`load()`, with the library's refusals (missing files, unknown split, offline hub, a
    metadata path that leaves the folder, a corrupt file) as one-line UserErrors."""
    from datasets.exceptions import DatasetsError

    try:
        return load()
    except (OSError, ValueError, DatasetsError) as e:
        cause = e.__cause__ if isinstance(e, DatasetsError) and e.__cause__ is not None else e
        raise UserError(f"{where}: {prefix}cannot be loaded ({type(cause).__name__}: {one_line(str(cause))})") from None


def _pick_split(where: str, loaded: Any, split: str) -> datasets.Dataset:
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UserError(f"{where}: no split {split!r} (it has {', '.join(loaded)})")
        return loaded[split]
    return loaded  # a saved Dataset is one split whatever its name


def require_columns(where: str, table: datasets.Dataset, columns: list[str], what: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in table.column_names]
    if missing:
        has, noun = ", ".join(table.column_names), "columns" if len(missing) > 1 else "column"
        raise UserError(f"{where}: not {what}: no {noun} {', '.join(missing)} (it has: {has})")


def cast_images(where: str, table: datasets.Dataset, columns: list[str]) -> datasets.Dataset:
    """Image columns left undecoded ({"bytes", "path"} per value) so each row decodes its own
    images: one bad image is then one bad row. Strings (paths) and binaries cast too."""
    import datasets
    import pyarrow as pa

    for column in dict.fromkeys(columns):
        try:
            table = table.cast_column(column, datasets.Image(decode=False))
        except (TypeError, ValueError, pa.ArrowException) as e:
            kind = table.features[column]
            raise UserError(f"{where}: column {column} is not an image ({kind}: {one_line(str(e), 120)})") from None
    return table
