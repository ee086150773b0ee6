"""datagen browse: the files it writes, escaping of untrusted text, one-line errors, and the viewer
itself opened from file:// in headless Chromium (filters, toggles, images, console, screenshot)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from datagen.views.browse import write_browser
from datagen.views.browse_media import LAYERS, SampleMedia
from datagen.views.browse_pages import card_of, index_html, sample_html
from datagen.final.read import iter_final_samples

INSTALL_HINT = (
    "the browser test of `datagen browse` needs Chromium and its driver: "
    "`sudo apt-get install chromium chromium-driver` (Debian/Ubuntu; scripts/setup.sh installs them)"
)
EVIL = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def expected(finished_run) -> dict[str, dict]:
    """key -> metadata of every final sample, read straight from the shards."""
    return {s.key: s.meta for s in iter_final_samples(finished_run)}


@pytest.fixture(scope="module")
def viewer(finished_run, tmp_path_factory) -> Path:
    """The viewer of the session's finished run, written once for this module (read-only)."""
    out = tmp_path_factory.mktemp("browse") / "viewer"
    index = write_browser(finished_run, out, limit=None, overwrite=False)
    assert index == out / "index.html"
    return out


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """One headless Chromium for the module: starting it costs more than the tests that use it."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail(f"{'chromium' if chromium is None else 'chromedriver'} not found on PATH; {INSTALL_HINT}")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    # Explicit browser and driver paths: selenium-manager would otherwise try to download them.
    options.binary_location = chromium
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


# ---------------------------------------------------------------- browser helpers


def _open(driver, path: Path) -> None:
    driver.get_log("browser")  # drain what earlier pages logged
    driver.get(path.as_uri())


def _severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _wait_images(driver) -> list[str]:
    """Scroll through the page so lazy images load, wait for all to finish; the broken ones."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return [...document.images].every(i => i.complete)"))
    return driver.execute_script("return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.src)")


def _visible_cards(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.card')].filter(c => getComputedStyle(c).display !== 'none')"
        ".map(c => c.querySelector('.key').textContent)"
    )


def _shown(driver, element_id: str) -> bool:
    return driver.execute_script(
        "const s = getComputedStyle(document.getElementById(arguments[0]));"
        "return s.display !== 'none' && s.visibility !== 'hidden';",
        element_id,
    )


# ---------------------------------------------------------------- the viewer in Chromium


def test_index_cards_filters_images_and_console(driver, viewer, expected):
    from selenium.webdriver.common.by import By

    _open(driver, viewer / "index.html")
    assert len(driver.find_elements(By.CSS_SELECTOR, ".card")) == len(expected)
    assert sorted(_visible_cards(driver)) == sorted(expected)
    assert _wait_images(driver) == []

    counts = sorted({len(m["subjects"]) for m in expected.values()})
    for n in counts:
        driver.find_element(By.CSS_SELECTOR, f'button[data-subjects="{n}"]').click()
        want = sorted(k for k, m in expected.items() if len(m["subjects"]) == n)
        assert sorted(_visible_cards(driver)) == want, n
        assert driver.find_element(By.ID, "shown").text == str(len(want))
        badges = {
            c.find_element(By.CSS_SELECTOR, ".badge").text
            for c in driver.find_elements(By.CSS_SELECTOR, ".card")
            if c.is_displayed()
        }
        assert badges == {str(n)}
    # The filter survives a reload (it lives in the URL fragment); "all" brings every card back.
    driver.refresh()
    assert len(_visible_cards(driver)) == sum(len(m["subjects"]) == counts[-1] for m in expected.values())
    driver.find_element(By.CSS_SELECTOR, 'button[data-subjects="all"]').click()
    assert sorted(_visible_cards(driver)) == sorted(expected)
    assert _severe(driver) == []


def test_sample_page_toggles_navigation_and_screenshot(driver, viewer, expected, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    keys = sorted(expected)
    _open(driver, viewer / "samples" / f"{keys[0]}.html")
    assert _wait_images(driver) == []
    assert _severe(driver) == []
    n = len(expected[keys[0]]["subjects"])
    assert len(driver.find_elements(By.CSS_SELECTOR, ".subjects tbody tr")) == n
    assert driver.find_element(By.CSS_SELECTOR, ".prompt").text == expected[keys[0]]["prompt"]["full"]

    # Masks start shown, depth hidden; each checkbox flips its own layer and nothing else.
    assert _shown(driver, "layer-mask") and not _shown(driver, "layer-depth")
    mask_box = driver.find_element(By.CSS_SELECTOR, 'input[data-layer="mask"]')
    mask_box.click()
    assert not _shown(driver, "layer-mask") and not _shown(driver, "layer-depth")
    mask_box.click()
    assert _shown(driver, "layer-mask")
    depth_box = driver.find_element(By.CSS_SELECTOR, 'input[data-layer="depth"]')
    depth_box.click()
    assert _shown(driver, "layer-depth")
    # The SVG layers (boxes, labels) have the image's natural size, like the raster ones.
    boxes_box = driver.find_element(By.CSS_SELECTOR, 'input[data-layer="boxes3d"]')
    boxes_box.click()
    assert _shown(driver, "layer-boxes3d")
    sizes = driver.execute_script("return [...document.querySelectorAll('.stage img')].map(i => [i.naturalWidth, i.naturalHeight])")
    assert len(set(map(tuple, sizes))) == 1
    driver.execute_script("window.scrollTo(0, 0)")  # _wait_images scrolled down; show the image
    driver.save_screenshot(str(tmp_path / "browse.png"))
    shot = (tmp_path / "browse.png").read_bytes()
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and Image.open(tmp_path / "browse.png").size[0] > 0
    depth_box.click()  # back to the defaults for whoever opens a page next (choices persist)
    boxes_box.click()

    # Next link and the right-arrow key both go forward; the first page has no previous.
    assert driver.find_elements(By.CSS_SELECTOR, "a[rel=prev]") == []
    driver.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    assert driver.current_url.endswith(f"/{keys[1]}.html")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    assert driver.current_url.endswith(f"/{keys[2]}.html")
    assert _wait_images(driver) == []
    assert _severe(driver) == []


def test_each_identity_tile_shows_its_own_subject(driver, viewer, finished_run):
    """sigma-set/2 stores the identities as one stack (identities.png); the page shows subject
    i's tile in row i: each one, as drawn, is closest to its own identity image."""
    import io

    from selenium.webdriver.common.by import By

    sample = next(s for s in iter_final_samples(finished_run) if len(s.subjects) >= 2)
    _open(driver, viewer / "samples" / f"{sample.key}.html")
    assert _wait_images(driver) == []
    tiles = driver.find_elements(By.CSS_SELECTOR, ".subjects img.tile")
    assert len(tiles) == len(sample.subjects)
    h, w = sample.identities.shape[1:3]
    for i, tile in enumerate(tiles):
        driver.execute_script("arguments[0].scrollIntoView()", tile)
        shot = Image.open(io.BytesIO(tile.screenshot_as_png)).convert("RGB").resize((w, h), Image.Resampling.BOX)
        errors = [np.abs(np.asarray(shot, dtype=float) - ident).mean() for ident in sample.identities]
        assert int(np.argmin(errors)) == i, errors


def test_index_pages_keep_the_filter_while_paging(driver, finished_run, expected, tmp_path):
    """Five cards a page: a filter button, then the next page's link and the arrow key, keep
    showing only that subject count; the page links reach every card once."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    viewer = write_browser(finished_run, tmp_path / "paged", per_page=5).parent
    _open(driver, viewer / "index.html")
    seen = []
    while True:
        assert _wait_images(driver) == [] and _severe(driver) == []
        seen += _visible_cards(driver)
        nxt = driver.find_elements(By.CSS_SELECTOR, "header .pages a[rel=next]")
        if not nxt:
            break
        nxt[0].click()
    assert seen == sorted(expected)

    n = len(expected[seen[0]]["subjects"])
    _open(driver, viewer / "index.html")
    driver.find_element(By.CSS_SELECTOR, f'button[data-subjects="{n}"]').click()
    driver.find_element(By.CSS_SELECTOR, "header .pages a[rel=next]").click()
    assert driver.current_url.endswith(f"/index-0002.html#subjects={n}")
    assert all(len(expected[k]["subjects"]) == n for k in _visible_cards(driver))
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
    assert driver.current_url.endswith(f"/index.html#subjects={n}")
    assert _severe(driver) == []


def test_malicious_caption_runs_nothing_in_the_browser(driver, viewer, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException

    page = tmp_path / "samples" / "000000_000000.html"
    page.parent.mkdir()
    for name in ("viewer.js", "viewer.css"):
        shutil.copy(viewer / name, tmp_path / name)
    page.write_text(sample_html("000000_000000", _evil_meta(), _fake_media(), None, None))
    _open(driver, page)
    assert EVIL in driver.find_element("css selector", ".caption").text
    with pytest.raises(NoAlertPresentException):
        _ = driver.switch_to.alert.text


# ---------------------------------------------------------------- the generator


def _check_files(viewer: Path, run: Path, schema: str) -> None:
    """The files `datagen browse` wrote for a run's samples: thumbnail, depth and mask layers at
    the image's size, SVG box and label layers, the stored image byte for byte, the stored
    identities (one PNG per subject in /1, identities.png in /2) and per subject a crop (stored
    in /1, derived from the image and instances.png in /2)."""
    for name in ("index.html", "viewer.js", "viewer.css"):
        assert (viewer / name).stat().st_size > 0
    keys = [s.key for s in iter_final_samples(run)]
    assert sorted(p.stem for p in (viewer / "samples").glob("*.html")) == sorted(keys)
    for sample in iter_final_samples(run, limit=2):
        assert sample.schema == schema
        media = viewer / "samples" / sample.key
        h, w = sample.image.shape[:2]
        n = len(sample.subjects)
        assert Image.open(viewer / "thumbs" / f"{sample.key}.jpg").format == "JPEG"
        assert sorted(p.name for p in media.iterdir() if p.name.split(".")[0] in {s for s, *_ in LAYERS}) == sorted(
            name for _, name, *_ in LAYERS
        )
        with Image.open(media / "depth.png") as im:
            assert (im.mode, im.size) == ("RGB", (w, h))
        with Image.open(media / "mask.png") as im:
            assert (im.mode, im.size) == ("RGBA", (w, h))
        for name in ("boxes2d.svg", "boxes3d.svg", "labels.svg"):
            svg = ET.fromstring((media / name).read_text())
            assert (svg.get("width"), svg.get("height"), svg.get("viewBox")) == (str(w), str(h), f"0 0 {w} {h}"), name
        shapes = {name: ET.fromstring((media / name).read_text()) for name in ("boxes2d.svg", "labels.svg")}
        assert len(shapes["boxes2d.svg"]) == n and [t.text for t in shapes["labels.svg"]] == [
            f"{i} {s['name']}" for i, s in enumerate(sample.subjects)
        ]
        # The image is the stored one, byte for byte.
        assert (media / "image.png").read_bytes() == sample.members["png"]
        # The stored identities, byte for byte, and one crop per subject, no more.
        if schema == "sigma-set/1":
            assert sorted(p.name for p in media.glob("id_*.png")) == [f"id_{i:02d}.png" for i in range(n)]
            assert all((media / f"id_{i:02d}.png").read_bytes() == sample.members[f"id_{i:02d}.png"] for i in range(n))
        else:
            assert not list(media.glob("id_*.png"))
            assert (media / "identities.png").read_bytes() == sample.members["identities.png"]
        assert sorted(p.name for p in media.glob("crop_*.png")) == [f"crop_{i:02d}.png" for i in range(n)]
        for i in range(n):
            crop = media / f"crop_{i:02d}.png"
            if schema == "sigma-set/1":  # the stored PNG, byte for byte
                assert crop.read_bytes() == sample.members[f"crop_{i:02d}.png"]
            # Either way: the target inside box_2d with alpha = its mask.
            x0, y0, x1, y1 = sample.subjects[i]["box_2d"]
            with Image.open(crop) as im:
                rgba = np.asarray(im)
            assert im.mode == "RGBA" and rgba.shape == (y1 - y0, x1 - x0, 4)
            inside = rgba[..., 3] > 0
            assert np.array_equal(inside, sample.masks[i][y0:y1, x0:x1]) and inside.any()
            assert np.array_equal(rgba[..., :3][inside], sample.image[y0:y1, x0:x1][inside])


def test_files_per_sample(viewer, finished_run):
    _check_files(viewer, finished_run, "sigma-set/2")


def test_files_per_sample_of_a_v1_run(tmp_path):
    run = shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "v1_run", tmp_path / "run")
    write_browser(run, tmp_path / "viewer", limit=None, overwrite=False)
    _check_files(tmp_path / "viewer", run, "sigma-set/1")


def test_same_run_same_bytes_and_limit(finished_run, viewer, tmp_path):
    again = write_browser(finished_run, tmp_path / "again", limit=None, overwrite=False).parent
    files = sorted(p.relative_to(viewer) for p in viewer.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((viewer / f).read_bytes() == (again / f).read_bytes() for f in files)

    # --limit keeps the first samples; the last page links back but not forward. --overwrite replaces.
    write_browser(finished_run, tmp_path / "again", limit=3, overwrite=True)
    pages = sorted((tmp_path / "again" / "samples").glob("*.html"))
    assert len(pages) == 3
    assert 'rel="next"' not in pages[-1].read_text() and 'rel="prev"' in pages[-1].read_text()


def test_error_mid_write_leaves_nothing(finished_run, tmp_path, monkeypatch):
    def broken(sample, dest):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("datagen.views.browse.write_sample_media", broken)
    with pytest.raises(RuntimeError):
        write_browser(finished_run, tmp_path / "view", limit=None, overwrite=False)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- escaping


class _Tags(HTMLParser):
    """Every start tag and its attributes, as a browser's tokenizer sees them."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _evil_meta() -> dict:
    subject = {
        "name": EVIL,
        "caption": EVIL,
        "box_2d": [1, 1, 5, 5],
        "score": EVIL,
        "mask_area_frac": 0.1,
        "box_area_frac": 0.2,
        "idcheck": {"similarity": "</pre><script>alert(3)</script>"},
    }
    return {
        "key": "000000_000000",
        "subjects": [subject],
        "prompt": {"full": EVIL, "background": "</title></style><script>alert(4)</script>"},
        "generation": {"seed": EVIL, "models": {EVIL: EVIL}},
        "depth": {"source": EVIL},
        "camera": {"fx": EVIL},
        "filter": {"rejected_subjects": [{"name": EVIL, "caption": EVIL, "stage": EVIL, "reason": EVIL}]},
    }


def _fake_media() -> SampleMedia:
    return SampleMedia("image.png", (8, 8), (1.0, 2.0), ["id_00.png"], 1, (8, 8), [None])


def test_untrusted_text_is_escaped():
    meta = _evil_meta()
    pages = [
        sample_html("000000_000000", meta, _fake_media(), "000000_000001", None),
        index_html("run", [card_of("000000_000000", meta)], (3, 10)),
    ]
    for page in pages:
        parser = _Tags()
        parser.feed(page)
        scripts = [a for t, a in parser.tags if t == "script"]
        assert all(a.get("src", "").endswith("viewer.js") for a in scripts) and len(scripts) == 1
        assert not [(t, k) for t, a in parser.tags for k in a if k.startswith("on")]
        assert not [a for t, a in parser.tags if a.get("src") == "x"]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ---------------------------------------------------------------- the command line


def _one_line_error(r, needle: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("datagen: error:") and needle in lines[0], r.stderr


def test_cli_writes_the_viewer(finished_run, tmp_path):
    r = run_cli("browse", str(finished_run), "--out", str(tmp_path / "v"), "--limit", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "v" / "index.html")
    assert len(list((tmp_path / "v" / "samples").glob("*.html"))) == 2


@pytest.mark.parametrize(
    "case, needle",
    [
        ("no-shards", "no final shards"),
        ("limit", "--limit 0"),
        ("exists", "already exists"),
        ("into-run", "would replace the run"),
    ],
)
def test_cli_bad_input(finished_run, tmp_path, case, needle):
    run, out, extra = finished_run, tmp_path / "v", []
    if case == "no-shards":
        run = shutil.copytree(finished_run, tmp_path / "empty-run")  # a run whose final shards are gone
        shutil.rmtree(run / "final")
    elif case == "limit":
        extra = ["--limit", "0"]
    elif case == "exists":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    else:
        out, extra = finished_run, ["--overwrite"]
    before = sorted(p.name for p in out.parent.iterdir())
    _one_line_error(run_cli("browse", str(run), "--out", str(out), *extra), needle)
    assert sorted(p.name for p in out.parent.iterdir()) == before  # no output, no temporary left
    if case == "exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
