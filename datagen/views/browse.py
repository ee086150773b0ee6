"""`datagen browse`: a static HTML viewer of a finished run, opened from file:// with no server.

    OUT/index.html              first index page: thumbnail grid, filters by subject count
    OUT/index-0002.html, ...    the further index pages, PAGE_SIZE cards each
    OUT/viewer.js, viewer.css   the only script and stylesheet (datagen/browser_assets)
    OUT/thumbs/<key>.jpg        thumbnails
    OUT/samples/<key>.html      a page per sample, prev/next links
    OUT/samples/<key>/          its image as stored, overlay layers, identities and crops

The key order is read first from the shards' member names (no sample bytes), so each final
shard can then be rendered on its own, with the keys just before and after it for the links:
`map_items` maps `render_shard` over the shards, in this process or on Ray workers
(datagen.pipeline.ray_map, chosen by the CLI: views never import the runner). A worker writes
its pages and media straight into the staged directory and returns only the index cards. A
worker holds one shard in memory at a time, so a full run can be browsed. The directory is
built aside and renamed into place (output_guard.staged_dir), so it is never half-written, and
the same run gives the same bytes whatever the number of workers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from datagen.errors import ShardReadError, UserError
from datagen.final.read import count_final_samples, decode_final, final_shards
from datagen.schema import JSON_FIELD
from datagen.store.output_guard import refuse_existing, staged_dir
from datagen.store.paths import RunPaths
from datagen.store.shards import read_tar
from datagen.views.browse_media import thumbnail, write_sample_media
from datagen.views.browse_pages import Card, card_of, index_html, page_name, sample_html

ASSETS = ("viewer.js", "viewer.css")
# Cards per index page. A card is about 0.5 KB of HTML with a procedural prompt (its tooltip),
# 1 KB with a long LLM one: a page of 0.25 to 0.5 MB, well under 2 MB, opens at once and its
# lazy thumbnails load as one scrolls; 27,000 samples make 54 pages.
PAGE_SIZE = 500

# Below this many samples, rendering in one process (under 30 s) beats starting Ray to share
# the work: measured on 2 cores, Ray costs about 10 s and halves the 26 ms a sample, so it
# pays from about 750 samples. The default for smaller runs is no Ray.
RAY_FROM_SAMPLES = 1000

# map_items(fn, items) -> [fn(item) for item in items], in item order, however it runs them.
Mapper = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]


def map_here(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    return [fn(item) for item in items]


@dataclass(frozen=True)
class ShardWork:
    """One final shard to render: which of its keys (in order), where they sit in the run's key
    order, and the keys just outside it, for the first and last page's prev/next links."""

    shard: str
    keys: tuple[str, ...]
    first: int  # position of keys[0] among all the keys browsed
    prev_key: str | None
    next_key: str | None
    dest: str  # the staged output directory
    per_page: int


def default_workers(run_dir: Path, limit: int | None, cores: int) -> int:
    """Workers to render with when the user does not say: every core, or one (no Ray) for a
    run of fewer than RAY_FROM_SAMPLES samples to browse (counted from the stats markers)."""
    n = count_final_samples(run_dir)
    return cores if min(n, limit or n) >= RAY_FROM_SAMPLES else 1


def _check_args(run_dir: Path, out: Path, limit: int | None, overwrite: bool, per_page: int) -> list[Path]:
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1")
    if per_page < 1:
        raise ValueError(f"per_page {per_page}: must be at least 1")
    refuse_existing(out, overwrite, protect=run_dir)
    return final_shards(run_dir)  # one line when there is no run or nothing finished, before anything is made


def _read(shard: Path, keep: Callable[[str, str], bool]) -> dict[str, dict[str, bytes]]:
    try:
        return read_tar(shard, keep)
    except ShardReadError as e:
        raise UserError(str(e)) from None


def shard_keys(shards: list[Path], limit: int | None) -> list[tuple[Path, list[str]]]:
    """(shard, its keys in order) for the samples to browse, from member names alone: the same
    order as datagen.final.read.iter_final_samples (shard order, then key order)."""
    plan: list[tuple[Path, list[str]]] = []
    left = limit
    for shard in shards:
        keys = sorted(_read(shard, lambda key, field: False))
        if left is not None:
            keys, left = keys[:left], left - len(keys[:left])
        if keys:
            plan.append((shard, keys))
        if left == 0:
            break
    return plan


def plan_work(plan: list[tuple[Path, list[str]]], dest: Path, per_page: int) -> list[ShardWork]:
    work, first = [], 0
    for i, (shard, keys) in enumerate(plan):
        prev_key = plan[i - 1][1][-1] if i > 0 else None
        next_key = plan[i + 1][1][0] if i + 1 < len(plan) else None
        # Absolute paths: a Ray worker need not share this process's working directory.
        work.append(ShardWork(str(shard.resolve()), tuple(keys), first, prev_key, next_key, str(dest.resolve()), per_page))
        first += len(keys)
    return work


def render_shard(work: ShardWork) -> list[Card]:
    """Write the pages, media and thumbnails of one shard's samples; their index cards, in order.
    Runs in a worker: everything it needs is in `work`, and it shares nothing with other shards."""
    shard, dest = Path(work.shard), Path(work.dest)
    wanted = set(work.keys)
    members = _read(shard, lambda key, field: key in wanted)
    cards = []
    for i, key in enumerate(work.keys):
        sample = decode_final(shard, key, members.pop(key))  # pop: the shard's bytes go as they are used
        prev_key = work.keys[i - 1] if i > 0 else work.prev_key
        next_key = work.keys[i + 1] if i + 1 < len(work.keys) else work.next_key
        index_page = page_name((work.first + i) // work.per_page)
        media = write_sample_media(sample, dest / "samples" / key)
        page = sample_html(key, sample.meta, media, prev_key, next_key, index_page)
        (dest / "samples" / f"{key}.html").write_text(page, encoding="utf-8")
        (dest / "thumbs" / f"{key}.jpg").write_bytes(thumbnail(sample))
        cards.append(card_of(key, sample.meta))
    return cards


def _subject_range(run_dir: Path) -> tuple[int, int]:
    """The run's configured subject-count bounds (filters.min/max_subjects in run.yaml), for
    the filter buttons; FORMAT.md's default 3 to 10 when run.yaml does not say."""
    try:
        filters = (yaml.safe_load(RunPaths(Path(run_dir)).run_yaml.read_text()) or {}).get("filters") or {}
        return int(filters.get("min_subjects", 3)), int(filters.get("max_subjects", 10))
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
        return 3, 10


def _run_title(run_dir: Path, plan: list[tuple[Path, list[str]]]) -> str:
    """The run id of the first sample's provenance (its JSON member alone is read), else the
    run directory's name."""
    shard, keys = plan[0]
    raw = _read(shard, lambda key, field: key == keys[0] and field == JSON_FIELD)[keys[0]].get(JSON_FIELD, b"")
    try:
        prov = json.loads(raw).get("provenance")
    except (ValueError, AttributeError):
        prov = None
    return str(prov.get("run_id")) if isinstance(prov, dict) and prov.get("run_id") else Path(run_dir).resolve().name


def _copy_assets(dest: Path) -> None:
    folder = resources.files("datagen.views") / "browser_assets"
    for name in ASSETS:
        (dest / name).write_bytes((folder / name).read_bytes())


def _write_index(dest: Path, title: str, cards: list[Card], count_range: tuple[int, int], per_page: int) -> None:
    pages = max(1, -(-len(cards) // per_page))
    run_counts = {c.subjects for c in cards}
    for page in range(pages):
        chunk = cards[page * per_page : (page + 1) * per_page]
        html = index_html(title, chunk, count_range, page=page, pages=pages, total=len(cards), run_counts=run_counts)
        (dest / page_name(page)).write_text(html, encoding="utf-8")


def write_browser(
    run_dir: Path, out: Path, *, limit: int | None = None, overwrite: bool = False,
    per_page: int = PAGE_SIZE, map_items: Mapper = map_here,
) -> Path:  # fmt: skip
    """Write the viewer for `run_dir` into `out` (at most `limit` samples, `per_page` cards per
    index page), rendering the shards with `map_items`; returns the first index page."""
    run_dir, out = Path(run_dir), Path(out)
    shards = _check_args(run_dir, out, limit, overwrite, per_page)
    with staged_dir(out, overwrite, protect=run_dir) as tmp:
        (tmp / "thumbs").mkdir()
        (tmp / "samples").mkdir()
        plan = shard_keys(shards, limit)
        cards = [card for shard_cards in map_items(render_shard, plan_work(plan, tmp, per_page)) for card in shard_cards]
        title = _run_title(run_dir, plan) if plan else run_dir.resolve().name
        _write_index(tmp, title, cards, _subject_range(run_dir), per_page)
        _copy_assets(tmp)
    return out / "index.html"
