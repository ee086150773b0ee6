"""`datagen verify RUN`: re-hash every committed shard of a run against its marker.

A resume checks committed shards cheaply by default (`output.verify: index`: the size and a
checksum of the tar's member headers, datagen.store.shards.tar_index_sha256), so data bytes
changed in place at the same size (a bad disk, a stray write) go unseen there. This reads
them all: every stage's shards and final/, each against the size and sha256 its marker
recorded. At paper scale that is the whole run, hence a progress bar (bytes) and a few
threads (hashlib releases the GIL while it hashes, so reads and hashing overlap).

Shards a `--target-kept` run moved to `surplus/` (whole, with their stats) are checked like
final/'s: a larger target moves them back and a resume then trusts them by their index.

Only markers are judged, not the settings: a shard made with other settings but whole is
fine here (`datagen status` says what is stale).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from datagen.config import RunConfig
from datagen.errors import UserError
from datagen.pipeline.markers import read_marker
from datagen.pipeline.target_cut import surplus_dir
from datagen.store.paths import RunPaths

CHUNK = 1 << 20
SURPLUS = "surplus"  # the pseudo-stage of shards past a --target-kept cut


@dataclass(frozen=True)
class Committed:
    """An output with a completion marker beside it."""

    stage: str
    marker: Path
    tar: Path


@dataclass
class VerifyReport:
    checked: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)  # one line per shard that does not match


def committed_outputs(cfg: RunConfig, paths: RunPaths, stage: str | None = None) -> list[Committed]:
    """Every output with a marker, stages in the run's order (then any other stage directory,
    left by an earlier order), final/ as the last stage. Shards are found on disk, not from the
    configured count, so shards a run added past its first estimate are checked too, and
    surplus/ (stage "surplus") after final/."""
    final = cfg.stages.order[-1]
    present = sorted(p.name for p in paths.stages_dir.glob("*") if p.is_dir()) if paths.stages_dir.is_dir() else []
    names = [*cfg.stages.order[:-1], *(s for s in present if s not in cfg.stages.order)]
    if stage is not None:
        if stage not in (*names, final, "final", SURPLUS):
            raise UserError(f"--stage: {stage!r} is not a stage of this run ({', '.join([*names, final, SURPLUS])})")
        names = [s for s in names if s == stage]
    out = [
        Committed(s, m, m.with_name(m.name.removesuffix(".done.json") + ".tar"))
        for s in names
        for m in sorted(paths.stage_dir(s).glob("shard-*.done.json"))
    ]
    if stage in (None, final, "final") and paths.final_dir.is_dir():
        out += [
            Committed(final, m, m.with_name(m.name.removesuffix(".stats.json") + ".tar"))
            for m in sorted(paths.final_dir.glob("shard-*.stats.json"))
        ]
    if stage in (None, SURPLUS) and surplus_dir(paths).is_dir():
        out += [
            Committed(SURPLUS, m, m.with_name(m.name.removesuffix(".stats.json") + ".tar"))
            for m in sorted(surplus_dir(paths).glob("shard-*.stats.json"))
        ]
    return out


def check(item: Committed, advance: Callable[[int], object] = lambda n: None) -> str | None:
    """Why this output does not match its marker, in one line; None when it does."""
    marker = read_marker(item.marker)
    if marker is None:
        return f"{item.marker}: unreadable marker"
    try:
        size = item.tar.stat().st_size
    except FileNotFoundError:
        return f"{item.tar}: missing, yet its marker says committed"
    except OSError as e:
        return f"{item.tar}: unreadable ({e.strerror})"
    if size != marker.get("size"):
        return f"{item.tar}: {size} bytes, its marker says {marker.get('size')}"
    if marker.get("sha256") is None:
        return f"{item.marker}: records no sha256"
    h = hashlib.sha256()
    try:
        with open(item.tar, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
                advance(len(chunk))
    except OSError as e:  # a bad disk answers EIO: that is a finding, not a reason to stop
        return f"{item.tar}: unreadable ({e.strerror})"
    if h.hexdigest() != marker["sha256"]:
        return f"{item.tar}: sha256 differs from its marker (same size: bytes changed in place)"
    return None


def verify_run(
    cfg: RunConfig, paths: RunPaths, stage: str | None = None, jobs: int = 4, bar: bool | None = None
) -> VerifyReport:
    """Check every committed output (or one stage's); `bar`: a rich progress bar on stderr
    (default: when stderr is a terminal)."""
    items = committed_outputs(cfg, paths, stage)
    sizes = [_size(i.tar) for i in items]
    report = VerifyReport(checked=len(items), bytes=sum(sizes))
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("verify"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    disable = not sys.stderr.isatty() if bar is None else not bar
    with Progress(*columns, console=Console(stderr=True), disable=disable) as progress:
        task = progress.add_task("verify", total=report.bytes)

        def advance(n: int) -> None:
            progress.update(task, advance=n)

        with ThreadPoolExecutor(max(1, jobs)) as pool:
            # map keeps the run's order in the report, whichever thread finishes first.
            report.problems = [p for p in pool.map(lambda i: check(i, advance), items) if p is not None]
    return report


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
