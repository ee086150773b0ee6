"""Outputs that are refused when they exist and never left half-written.

A file is written to a hidden temporary name beside it and renamed into place; a directory
is built under a hidden temporary name beside it and renamed into place once complete. On
any error (or Ctrl-C) the temporary is removed and an existing output is left as it was.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from datagen.errors import UserError
from datagen.store.shards import commit_bytes


def refuse_existing(out: Path, overwrite: bool, flag: str = "--out", protect: Path | None = None) -> None:
    """UserError when `out` exists and --overwrite was not given, or when `out` is `protect` (the
    run being read) or holds it: replacing it would delete the very data being exported."""
    if protect is not None:
        target, kept = Path(out).resolve(), Path(protect).resolve()
        if target == kept or target in kept.parents:
            raise UserError(f"{flag} {out}: would replace the run {protect} itself; choose a directory outside it")
    if out.exists() and not overwrite:
        raise UserError(f"{flag} {out}: already exists (pass --overwrite to replace it)")
    if not out.parent.exists():
        raise UserError(f"{flag} {out}: parent directory {out.parent} does not exist")


def cannot_create(out: Path, flag: str, e: OSError) -> UserError:
    """The one line for an output the filesystem refuses (read-only, /proc, permissions)."""
    return UserError(f"{flag} {out}: cannot create it here ({e.strerror or e.__class__.__name__})")


def write_file(out: Path, data: bytes, overwrite: bool, flag: str = "--out") -> Path:
    """Write one output file atomically, refusing an existing one without --overwrite."""
    refuse_existing(out, overwrite, flag)
    if out.is_dir():
        raise UserError(f"{flag} {out}: is a directory, expected a file path")
    try:
        commit_bytes(out, data)
    except OSError as e:
        raise cannot_create(out, flag, e) from None
    return out


@contextmanager
def staged_dir(out: Path, overwrite: bool, flag: str = "--out", protect: Path | None = None) -> Iterator[Path]:
    """Yield an empty temporary directory beside `out`; on success it replaces `out`."""
    refuse_existing(out, overwrite, flag, protect)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out}: is a file, expected a directory")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
    except OSError as e:
        raise cannot_create(out, flag, e) from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        # Move the old output aside first so `out` is never a mix of old and new.
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
