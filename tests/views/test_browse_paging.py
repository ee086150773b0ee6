"""datagen browse at scale: index pages of a fixed number of cards with links between them,
prev/next links across shard and page boundaries, and rendering on Ray workers
(datagen.pipeline.ray_map) giving the same bytes as rendering in one process."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import partial
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import run_cli

from datagen.errors import UserError
from datagen.final.read import final_shards, iter_final_samples
from datagen.pipeline.ray_map import ray_map
from datagen.views import browse
from datagen.views.browse import PAGE_SIZE, default_workers, shard_keys, write_browser
from datagen.views.browse_pages import page_name

PER_PAGE = 5  # the session's run has 12 samples or so: three pages, the last one short
MAX_PAGE_BYTES = 2_000_000


class _Links(HTMLParser):
    """Cards (key, subjects), filter buttons, index-page links and the pager of one page."""

    def __init__(self):
        super().__init__()
        self.cards: list[tuple[str, str]] = []
        self.buttons: list[tuple[str, bool]] = []
        self.pages: list[dict] = []
        self.rel: dict[str, str] = {}
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("class") == "card":
            self.cards.append((re.fullmatch(r"samples/(.+)\.html", a["href"]).group(1), a["data-subjects"]))
        elif tag == "button":
            self.buttons.append((a["data-subjects"], "disabled" in a))
        elif tag == "a" and "data-page" in a:
            self.pages.append(a)
        if tag == "a" and "rel" in a:
            self.rel.setdefault(a["rel"], a["href"])
        if tag == "a":
            self.hrefs.append(a.get("href", ""))


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def keys(finished_run) -> list[str]:
    return [s.key for s in iter_final_samples(finished_run)]


@pytest.fixture(scope="module")
def paged(finished_run, tmp_path_factory) -> Path:
    """The viewer of the session's run, PER_PAGE cards per index page, rendered in this process."""
    out = tmp_path_factory.mktemp("paged") / "viewer"
    write_browser(finished_run, out, per_page=PER_PAGE)
    return out


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray of 2 CPUs for the module: ray_map uses it and leaves it running."""
    import ray

    from datagen.pipeline.ray_runner import init_ray, shutdown_ray

    assert not ray.is_initialized()
    init_ray(None, num_cpus=2)
    yield
    shutdown_ray()


def test_pages_hold_every_card_once_in_key_order(paged, keys):
    pages = -(-len(keys) // PER_PAGE)
    assert pages >= 3, "the session's run should fill more than two pages"
    assert sorted(p.name for p in paged.glob("index*.html")) == sorted(page_name(i) for i in range(pages))
    assert [page_name(i) for i in range(3)] == ["index.html", "index-0002.html", "index-0003.html"]
    seen = []
    for i in range(pages):
        page = _parse(paged / page_name(i))
        assert len(page.cards) == (PER_PAGE if i + 1 < pages else len(keys) - PER_PAGE * (pages - 1))
        seen += [key for key, _ in page.cards]
        # Every page links to every page (header and footer), marks itself, and steps to its neighbours.
        numbered = [a["href"] for a in page.pages if "rel" not in a]
        assert numbered == [page_name(j) for j in range(pages)] * 2
        assert [a["href"] for a in page.pages if a.get("aria-current") == "page"] == [page_name(i)] * 2
        assert page.rel.get("prev") == (page_name(i - 1) if i > 0 else None)
        assert page.rel.get("next") == (page_name(i + 1) if i + 1 < pages else None)
        assert (paged / page_name(i)).stat().st_size < MAX_PAGE_BYTES
    assert seen == keys


def test_filters_are_the_same_buttons_on_every_page_counting_its_cards(paged, keys):
    pages = [_parse(paged / page_name(i)) for i in range(-(-len(keys) // PER_PAGE))]
    run_counts = {n for page in pages for _, n in page.cards}
    labels = [[b for b, _ in page.buttons] for page in pages]
    assert all(lab == labels[0] for lab in labels) and run_counts <= set(labels[0])
    for page in pages:
        on_page = {n for _, n in page.cards}
        assert {b for b, off in page.buttons if not off} == on_page | {"all"}


def test_a_full_page_stays_under_2_mb(paged, keys):
    """The bytes per card at the default PAGE_SIZE, from the largest page here: a paper-scale
    index page must stay under 2 MB (LLM prompts are longer than these: a margin of 2x)."""
    first = paged / page_name(0)
    empty = len(first.read_bytes()) - sum(len(m.group(0)) for m in re.finditer(r'<a class="card".*?</a>', first.read_text()))
    per_card = max(len(m.group(0).encode()) for m in re.finditer(r'<a class="card".*?</a>', first.read_text()))
    assert 2 * (empty + PAGE_SIZE * per_card) < MAX_PAGE_BYTES


def test_sample_pages_link_across_shards_and_to_their_index_page(paged, keys, finished_run):
    plan = shard_keys(final_shards(finished_run), None)
    assert len(plan) >= 2, "the session's run should have samples in more than one shard"
    for i, key in enumerate(keys):
        page = _parse(paged / "samples" / f"{key}.html")
        assert page.rel.get("prev") == (f"{keys[i - 1]}.html" if i > 0 else None), key
        assert page.rel.get("next") == (f"{keys[i + 1]}.html" if i + 1 < len(keys) else None), key
        assert any(h.startswith(f"../{page_name(i // PER_PAGE)}#subjects=") for h in page.hrefs), key
    # The boundaries themselves: the last sample of a shard and the first of the next link each other.
    (_, first_keys), (_, second_keys) = plan[0], plan[1]
    assert _parse(paged / "samples" / f"{first_keys[-1]}.html").rel["next"] == f"{second_keys[0]}.html"
    assert _parse(paged / "samples" / f"{second_keys[0]}.html").rel["prev"] == f"{first_keys[-1]}.html"


def test_ray_workers_give_the_same_bytes(local_ray, paged, finished_run, tmp_path):
    index = write_browser(finished_run, tmp_path / "ray", per_page=PER_PAGE, map_items=partial(ray_map, workers=2))
    assert _tree(index.parent) == _tree(paged)
    # A limit that ends inside a shard: still the same bytes as in one process, the last page links nowhere.
    here = write_browser(finished_run, tmp_path / "here", limit=6, per_page=PER_PAGE).parent
    there = write_browser(finished_run, tmp_path / "there", limit=6, per_page=PER_PAGE, map_items=partial(ray_map, workers=2)).parent
    assert _tree(here) == _tree(there) and len(list((here / "samples").glob("*.html"))) == 6


def test_ray_map_keeps_order_and_reports_a_user_error_in_one_line(local_ray, tmp_path):
    assert ray_map(str.upper, list("abcdefg"), workers=2) == list("ABCDEFG")
    assert ray_map(str.upper, [], workers=2) == []
    with pytest.raises(UserError, match=r"not a datagen run") as err:
        ray_map(final_shards, [tmp_path / "a", tmp_path / "b", tmp_path / "c"], workers=2)
    assert "\n" not in str(err.value)


def test_one_worker_runs_here_without_ray():
    # In a fresh process: this module's own Ray may be running here.
    code = (
        "import sys\nfrom datagen.pipeline.ray_map import ray_map\n"
        "assert ray_map(str.upper, ['a', 'b'], workers=1) == ['A', 'B']\n"
        "assert ray_map(str.upper, ['a'], workers=4) == ['A']\n"
        "print('ray' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_small_runs_render_without_ray_by_default(finished_run, keys, monkeypatch):
    assert default_workers(finished_run, None, cores=8) == 1  # the session's run is small
    monkeypatch.setattr(browse, "RAY_FROM_SAMPLES", len(keys))
    assert default_workers(finished_run, None, cores=8) == 8
    assert default_workers(finished_run, len(keys) - 1, cores=8) == 1


def test_cli_workers(finished_run, tmp_path, paged):
    one = run_cli("browse", str(finished_run), "--out", str(tmp_path / "one"), "--workers", "1")
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == str(tmp_path / "one" / "index.html")
    assert len(list((tmp_path / "one" / "samples").glob("*.html"))) == len(list((paged / "samples").glob("*.html")))
    bad = run_cli("browse", str(finished_run), "--out", str(tmp_path / "zero"), "--workers", "0")
    assert bad.returncode != 0 and not (tmp_path / "zero").exists()
