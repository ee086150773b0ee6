"""`datagen ingest KIND PATH --out RUN`: a dataset's rows through the recipe's later stages, on
the same runner, shards and resume as `datagen run` (row i of the source is sample i).

The config (default: the bundled `ingest_<kind>`) gets `source.kind` and `source.path` from the
command line; the run's size is the source's row count (or --num-samples, if smaller), counted
before any worker starts, so a source that is not what its kind says fails in one line first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datagen.errors import UserError

KINDS = ("anyinsertion", "musar", "folder", "hf", "dreambooth")
CACHE = Path("cache") / "datasets"  # under the run: the Arrow copy `datasets` makes of the source


@dataclass
class IngestRequest:
    kind: str
    path: str
    out: str
    config: str | None = None
    workers: int | None = None
    num_samples: int | None = None
    overrides: tuple[str, ...] = ()
    address: str | None = None
    executor: str = "ray"


def source_path(path: str) -> str:
    """A local path made absolute (workers may run elsewhere in the tree); a hub id as given."""
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path


def ingest(req: IngestRequest) -> Any:
    from datagen.config import load_config, resolve_config_path
    from datagen.ingest.sources import open_source
    from datagen.pipeline.run import RunRequest, execute

    if req.kind not in KINDS:
        raise UserError(f"SOURCE {req.kind!r}: one of {', '.join(KINDS)}")
    config = req.config or f"ingest_{req.kind}"
    overrides = (f"source.kind={req.kind}", f"source.path={source_path(req.path)}", *req.overrides)
    cfg = load_config(resolve_config_path(config), list(overrides))
    rows = len(open_source(cfg.source, cache_dir=str(Path(req.out) / CACHE)))
    if rows == 0:
        raise UserError(f"{req.path}: the {req.kind} source holds no rows (split {cfg.source.split!r})")
    n = rows if req.num_samples is None else min(rows, req.num_samples)
    return execute(RunRequest(config=config, out=req.out, workers=req.workers, num_samples=n, overrides=overrides,
                              address=req.address, executor=req.executor))  # fmt: skip
