"""`datagen browse`: a static HTML viewer of a finished run, opened from file:// with no server.

    OUT/index.html              thumbnail grid, filters by subject count
    OUT/viewer.js, viewer.css   the only script and stylesheet (datagen/browser_assets)
    OUT/thumbs/<key>.jpg        thumbnails
    OUT/samples/<key>.html      a page per sample, prev/next links
    OUT/samples/<key>/          its image as stored, overlay layers, identities and crops

Samples are streamed (two in memory at a time), so a full run can be browsed. The directory is
built aside and renamed into place (output_guard.staged_dir), so it is never half-written, and
the same run always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

import yaml

from datagen.views.browse_media import thumbnail, write_sample_media
from datagen.views.browse_pages import Card, card_of, index_html, sample_html
from datagen.errors import UserError
from datagen.final.read import FinalSample, final_shards, iter_final_samples
from datagen.store.output_guard import refuse_existing, staged_dir
from datagen.store.paths import RunPaths

ASSETS = ("viewer.js", "viewer.css")


def _check_args(run_dir: Path, out: Path, limit: int | None, overwrite: bool) -> None:
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1")
    refuse_existing(out, overwrite, protect=run_dir)
    final_shards(run_dir)  # one line when there is no run or nothing finished, before anything is made


def _subject_range(run_dir: Path) -> tuple[int, int]:
    """The run's configured subject-count bounds (filters.min/max_subjects in run.yaml), for
    the filter buttons; FORMAT.md's default 3 to 10 when run.yaml does not say."""
    try:
        filters = (yaml.safe_load(RunPaths(Path(run_dir)).run_yaml.read_text()) or {}).get("filters") or {}
        return int(filters.get("min_subjects", 3)), int(filters.get("max_subjects", 10))
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
        return 3, 10


def _with_neighbours(samples: Iterable[FinalSample]) -> Iterator[tuple[str | None, FinalSample, str | None]]:
    """(previous key, sample, next key), reading one sample ahead so pages can link forward."""
    prev_key, current = None, None
    for sample in samples:
        if current is not None:
            yield prev_key, current, sample.key
            prev_key = current.key
        current = sample
    if current is not None:
        yield prev_key, current, None


def _copy_assets(dest: Path) -> None:
    folder = resources.files("datagen.views") / "browser_assets"
    for name in ASSETS:
        (dest / name).write_bytes((folder / name).read_bytes())


def _run_title(run_dir: Path, first: FinalSample | None) -> str:
    prov = first.meta.get("provenance") if first is not None else None
    return str(prov.get("run_id")) if isinstance(prov, dict) and prov.get("run_id") else Path(run_dir).resolve().name


def write_browser(run_dir: Path, out: Path, *, limit: int | None = None, overwrite: bool = False) -> Path:
    """Write the viewer for `run_dir` into `out` (at most `limit` samples); returns index.html."""
    run_dir, out = Path(run_dir), Path(out)
    _check_args(run_dir, out, limit, overwrite)
    with staged_dir(out, overwrite, protect=run_dir) as tmp:
        (tmp / "thumbs").mkdir()
        (tmp / "samples").mkdir()
        cards: list[Card] = []
        first: FinalSample | None = None
        for prev_key, sample, next_key in _with_neighbours(iter_final_samples(run_dir, limit)):
            first = first or sample
            media = write_sample_media(sample, tmp / "samples" / sample.key)
            page = sample_html(sample.key, sample.meta, media, prev_key, next_key)
            (tmp / "samples" / f"{sample.key}.html").write_text(page, encoding="utf-8")
            (tmp / "thumbs" / f"{sample.key}.jpg").write_bytes(thumbnail(sample))
            cards.append(card_of(sample.key, sample.meta))
        index = index_html(_run_title(run_dir, first), cards, _subject_range(run_dir))
        (tmp / "index.html").write_text(index, encoding="utf-8")
        _copy_assets(tmp)
    return out / "index.html"
