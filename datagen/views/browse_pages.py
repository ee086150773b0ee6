"""The HTML of `datagen browse`: the index (thumbnail grid with subject-count filters) and one page
per sample (overlay toggles, identities beside crops, captions, scores, prompt).

Every string taken from a sample goes through `esc`: captions and prompts come from an LLM and
are untrusted, so nothing from the data may open a tag, close an attribute or start a script.
Pages are plain static HTML; viewer.js only filters and toggles what is already there.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from datagen.views.browse_media import LAYERS, SampleMedia
from datagen.views.overlays import subject_colours

# Images smaller than this on their longer side are shown enlarged (the stage is 640 px wide).
SMALL_SIDE = 512


@dataclass(frozen=True)
class Card:
    """One thumbnail of the index."""

    key: str
    subjects: int
    prompt: str
    background: str


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 3) -> str:
    """A number from the metadata, formatted; anything else (a crafted file) escaped as text."""
    if value is None:
        return "—"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return esc(value)


def _page(title: str, css: str, body: str, body_class: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n"
        # An empty icon: otherwise the browser asks for /favicon.ico, an error under file://.
        '<link rel="icon" href="data:,">\n'
        f'<link rel="stylesheet" href="{css}">\n</head>\n'
        f'<body class="{body_class}">\n{body}\n'
        f'<script src="{css.replace("viewer.css", "viewer.js")}"></script>\n</body>\n</html>\n'
    )


def card_of(key: str, meta: dict[str, Any]) -> Card:
    prompt = meta.get("prompt") if isinstance(meta.get("prompt"), dict) else {}
    return Card(key, len(meta["subjects"]), str(prompt.get("full", "")), str(prompt.get("background", "")))


def page_name(page: int) -> str:
    """The file of index page `page` (0-based): index.html first, then index-0002.html, ..."""
    return "index.html" if page == 0 else f"index-{page + 1:04d}.html"


def _page_links(page: int, pages: int) -> str:
    """Links to the previous and next index pages and to every page by number (a few dozen at
    paper scale); viewer.js carries the subject filter over to them."""
    if pages <= 1:
        return ""

    def link(to: int, text: str, rel: str = "") -> str:
        if to == page:
            return f'<a class="page" aria-current="page" data-page href="{page_name(to)}">{text}</a>'
        return f'<a class="page" data-page{rel} href="{page_name(to)}">{text}</a>'

    prev = link(page - 1, "&larr;", ' rel="prev"') if page > 0 else '<span class="off">&larr;</span>'
    nxt = link(page + 1, "&rarr;", ' rel="next"') if page + 1 < pages else '<span class="off">&rarr;</span>'
    numbers = "\n".join(link(i, str(i + 1)) for i in range(pages))
    return f'<nav class="pages" aria-label="index pages">{prev}\n{numbers}\n{nxt}</nav>\n'


def index_html(
    title: str, cards: list[Card], count_range: tuple[int, int], *, page: int = 0, pages: int = 1,
    total: int | None = None, run_counts: set[int] | frozenset[int] = frozenset(),
) -> str:  # fmt: skip
    """Index page `page` of `pages`: its cards, with one filter button per subject count in
    `count_range` or among `run_counts` (the counts of the whole run, so every page has the same
    buttons) or on the page; a button counts the page's cards and is disabled when it has none."""
    counts = Counter(c.subjects for c in cards)
    lo, hi = count_range
    total = len(cards) if total is None else total
    buttons = [f'<button type="button" data-subjects="all" aria-pressed="true">all <small>{len(cards)}</small></button>']
    for n in sorted(set(range(lo, hi + 1)) | set(run_counts) | set(counts)):
        off = "" if counts[n] else " disabled"
        buttons.append(
            f'<button type="button" data-subjects="{n}" aria-pressed="false"{off}>{n} <small>{counts[n]}</small></button>'
        )
    grid = "\n".join(
        f'<a class="card" href="samples/{esc(c.key)}.html" data-subjects="{c.subjects}" title="{esc(c.prompt)}">'
        f'<img src="thumbs/{esc(c.key)}.jpg" alt="{esc(c.key)}" loading="lazy">'
        f'<span class="badge" title="subjects">{c.subjects}</span>'
        f'<span class="key">{esc(c.key)}</span><span class="bg">{esc(c.background)}</span></a>'
        for c in cards
    )
    where = f" &middot; page {page + 1} of {pages} &middot; {total} samples in all" if pages > 1 else ""
    links = _page_links(page, pages)
    body = (
        f'<header>\n<h1>{esc(title)} <small><span id="shown">{len(cards)}</span> of {len(cards)} samples{where}</small></h1>\n'
        f'<nav class="filters" aria-label="subjects per image"><span class="dim">subjects:</span>\n'
        + "\n".join(buttons)
        + f'\n</nav>\n{links}</header>\n<main class="grid">\n{grid}\n</main>'
        + (f"\n<footer>\n{links}</footer>" if links else "")
    )
    return _page(f"datagen browse: {title}", "viewer.css", body, "index")


def _pager(n: int, prev_key: str | None, next_key: str | None, index_page: str) -> str:
    prev = (
        f'<a rel="prev" href="{esc(prev_key)}.html">&larr; {esc(prev_key)}</a>' if prev_key else '<span class="off">&larr;</span>'
    )
    nxt = (
        f'<a rel="next" href="{esc(next_key)}.html">{esc(next_key)} &rarr;</a>' if next_key else '<span class="off">&rarr;</span>'
    )
    return f'<nav class="pager">{prev}<a href="../{index_page}#subjects={n}">index</a>{nxt}</nav>'


def _viewer(key: str, media: SampleMedia) -> str:
    toggles = "\n".join(
        f'<label><input type="checkbox" data-layer="{stem}" data-key="{k}" autocomplete="off"{" checked" if on else ""}>'
        f" {label} <kbd>{k}</kbd></label>"
        for stem, _, label, k, on in LAYERS
    )
    layers = "\n".join(
        f'<img class="layer" id="layer-{stem}" src="{esc(key)}/{name}" alt="{label}"{"" if on else " hidden"}>'
        for stem, name, label, _, on in LAYERS
    )
    w, h = media.size
    near, far = media.depth_range
    # Enlarged small images and their raster layers show crisp pixels, not a blur.
    small = " small" if max(w, h) < SMALL_SIDE else ""
    return (
        f'<section class="viewer">\n<fieldset class="toggles"><legend>layers</legend>\n{toggles}\n</fieldset>\n'
        f'<div class="stage{small}">\n'
        f'<img class="base" src="{esc(key)}/{esc(media.image)}" width="{w}" height="{h}" alt="{esc(key)}">\n'
        f"{layers}\n</div>\n"
        f'<p class="legend">depth colours: near {num(near, 2)} m (red) &hellip; far {num(far, 2)} m (blue), unknown black'
        f" &middot; {w}&times;{h} px &middot; keys: <kbd>&larr;</kbd> <kbd>&rarr;</kbd> previous / next</p>\n</section>"
    )


def _facts(meta: dict[str, Any]) -> str:
    prompt = meta.get("prompt") if isinstance(meta.get("prompt"), dict) else {}
    gen = meta.get("generation") if isinstance(meta.get("generation"), dict) else {}
    models = gen.get("models") if isinstance(gen.get("models"), dict) else {}
    depth = meta.get("depth") if isinstance(meta.get("depth"), dict) else {}
    cam = meta.get("camera") if isinstance(meta.get("camera"), dict) else {}
    rows = [("seed", esc(gen.get("seed", "—"))), ("depth source", esc(depth.get("source", "—")))]
    rows.append(("camera", " ".join(f"{k} {num(cam.get(k), 1)}" for k in ("fx", "fy", "cx", "cy"))))
    rows += [(f"model: {esc(stage)}", esc(model)) for stage, model in sorted(models.items())]
    dl = "\n".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return (
        f'<section class="info">\n<h2>prompt</h2>\n<p class="prompt">{esc(prompt.get("full", ""))}</p>\n'
        f'<h2>background</h2>\n<p class="background">{esc(prompt.get("background", ""))}</p>\n'
        f"<h2>generation</h2>\n<dl>\n{dl}\n</dl>\n</section>"
    )


def _identity(key: str, media: SampleMedia, i: int) -> str:
    """Subject i's identity image; from a stack of tiles (sigma-set/2's identities.png), only
    its tile shows: the box has one tile's shape and the stack is shifted to tile i."""
    src = f"{esc(key)}/{esc(media.identities[i])}"
    if media.identity_tiles == 1:
        return f'<img class="thumb" src="{src}" alt="identity {i}">'
    w, h = media.identity_size
    y = 100 * i / (media.identity_tiles - 1)
    return (
        f'<img class="thumb tile" src="{src}" alt="identity {i}" style="aspect-ratio:{w}/{h};object-position:50% {y:g}%">'
    )


def _subject_rows(key: str, subjects: list[dict[str, Any]], media: SampleMedia) -> str:
    colours = subject_colours(len(subjects))
    rows = []
    for i, s in enumerate(subjects):
        r, g, b = (int(c) for c in colours[i])
        idcheck = s.get("idcheck") if isinstance(s.get("idcheck"), dict) else {}
        crop = media.crops[i]
        crop_img = f'<img class="thumb crop" src="{esc(key)}/{crop}" alt="crop {i}">' if crop else '<span class="dim">—</span>'
        rows.append(
            f'<tr><td><span class="swatch" style="background:#{r:02x}{g:02x}{b:02x}">{i}</span></td>'
            f'<td class="name">{esc(s.get("name", ""))}</td><td class="caption">{esc(s.get("caption", ""))}</td>'
            f"<td>{_identity(key, media, i)}</td><td>{crop_img}</td>"
            f'<td class="num">{num(s.get("score"))}</td><td class="num">{num(idcheck.get("similarity"))}</td>'
            f'<td class="num">{num(s.get("mask_area_frac"))}</td><td class="num">{num(s.get("box_area_frac"))}</td>'
            f"<td><code>{esc(s.get('box_2d', ''))}</code></td></tr>"
        )
    head = (
        "<tr><th>#</th><th>name</th><th>caption</th><th>identity</th><th>crop</th><th>score</th>"
        "<th>idcheck sim.</th><th>mask area</th><th>box area</th><th>box 2D</th></tr>"
    )
    return (
        f'<section class="subjects">\n<h2>subjects</h2>\n<table>\n<thead>{head}</thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody>\n</table>\n</section>"
    )


def _dropped(meta: dict[str, Any]) -> str:
    """Subjects the pipeline dropped from this sample (filter stage), when it recorded any."""
    filt = meta.get("filter") if isinstance(meta.get("filter"), dict) else {}
    dropped = [d for d in filt.get("rejected_subjects") or [] if isinstance(d, dict)]
    if not dropped:
        return ""
    items = "\n".join(
        f"<li>{esc(d.get('name', ''))}: {esc(d.get('caption', ''))} "
        f'<span class="dim">({esc(d.get("stage", ""))}: {esc(d.get("reason", ""))})</span></li>'
        for d in dropped
    )
    return f"<h2>dropped subjects</h2>\n<ul>\n{items}\n</ul>"


def sample_html(
    key: str, meta: dict[str, Any], media: SampleMedia, prev_key: str | None, next_key: str | None,
    index_page: str = "index.html",
) -> str:  # fmt: skip
    """A sample's page; `index_page` is the index page that holds its card (the "index" link)."""
    n = len(meta["subjects"])
    w, h = media.size
    body = (
        f"<header>\n{_pager(n, prev_key, next_key, index_page)}\n"
        f"<h1>{esc(key)} <small>{n} subjects &middot; {w}&times;{h}</small></h1>\n</header>\n"
        f'<main class="sample-main">\n{_viewer(key, media)}\n{_facts(meta)}\n</main>\n'
        f"{_subject_rows(key, meta['subjects'], media)}\n"
        f'<section class="extra">\n{_dropped(meta)}\n'
        f"<details><summary>metadata JSON</summary>\n<pre>{esc(json.dumps(meta, indent=2, sort_keys=True))}</pre>\n</details>\n"
        "</section>"
    )
    return _page(f"{key}: datagen browse", "../viewer.css", body, "sample")
