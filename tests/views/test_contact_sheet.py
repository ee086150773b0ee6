"""`datagen show`: the contact sheet draws what the shards hold, where the layout says, and
bad input is one line with nothing written."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import run_cli
from PIL import Image

from datagen.views.contact_sheet import PAGE_PANEL, SHEET_PANEL, STRIP_LABEL_H, page_layout, write_contact_sheet
from datagen.final.read import count_final_samples, iter_final_samples
from datagen.recipe.geometry import project_points
from datagen.views.overlays import label_layer, subject_colours
from datagen.views.sheet_layout import GAP, MARGIN, SheetLayout, strip_cells

K = 3


@pytest.fixture(scope="module")
def samples(finished_run):
    return list(iter_final_samples(finished_run))


@pytest.fixture(scope="module")
def sheet_path(finished_run, tmp_path_factory):
    return write_contact_sheet(finished_run, tmp_path_factory.mktemp("sheet") / "sheet.png", n=K, key=None, overwrite=False)


@pytest.fixture(scope="module")
def sheet(sheet_path) -> np.ndarray:
    return np.asarray(Image.open(sheet_path).convert("RGB")).astype(np.int32)


def resized(pixels: np.ndarray, size: int, resample=Image.Resampling.LANCZOS) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((size, size), resample)).astype(np.int32)


def window(sheet: np.ndarray, xy: tuple[int, int], size: int) -> np.ndarray:
    x, y = xy
    return sheet[y : y + size, x : x + size]


def test_sheet_size_follows_from_k_and_panel(finished_run, sheet, samples, tmp_path):
    one = write_contact_sheet(finished_run, tmp_path / "one.png", n=1, key=None, overwrite=False)
    # More than the run holds: every sample, once.
    every = write_contact_sheet(finished_run, tmp_path / "all.png", n=100, key=None, overwrite=False)
    h1, h3, h_all = Image.open(one).height, sheet.shape[0], Image.open(every).height
    lay = SheetLayout(SHEET_PANEL, K)
    row_h = lay.header_h + SHEET_PANEL + lay.row_gap
    assert h3 - h1 == (K - 1) * row_h
    assert h_all - h1 == (len(samples) - 1) * row_h and len(samples) == count_final_samples(finished_run) > K
    assert sheet.shape[:2] == (lay.height, lay.width)
    # Three image panels and a strip two panels wide, whatever K is.
    assert sheet.shape[1] == Image.open(one).width == Image.open(every).width == 2 * MARGIN + 5 * SHEET_PANEL + 3 * GAP


def test_same_run_same_bytes(finished_run, sheet_path, tmp_path):
    again = write_contact_sheet(finished_run, tmp_path / "again.png", n=K, key=None, overwrite=False)
    assert again.read_bytes() == sheet_path.read_bytes()
    # --overwrite replaces a file with the same bytes.
    write_contact_sheet(finished_run, again, n=K, key=None, overwrite=True)
    assert again.read_bytes() == sheet_path.read_bytes()


def test_mask_panel_tints_each_subject_in_its_colour(sheet, samples):
    lay = SheetLayout(SHEET_PANEL, K)
    checked = 0
    for row, sample in enumerate(samples[:K]):
        panel = window(sheet, lay.panel_xy(row, 0), SHEET_PANEL)
        plain = resized(sample.image, SHEET_PANEL)
        colours = subject_colours(len(sample.subjects)).astype(np.int32)
        masks = np.stack([resized(m.astype(np.uint8) * 255, SHEET_PANEL, Image.Resampling.NEAREST) > 127 for m in sample.masks])
        # The name labels sit over the masks: leave their pixels out.
        s = SHEET_PANEL / sample.image.shape[1]
        scaled = [{**x, "box_2d": [round(c * s) for c in x["box_2d"]]} for x in sample.subjects]
        labels = label_layer((SHEET_PANEL, SHEET_PANEL), scaled, colours, font_size=11)[..., 3] > 0
        for i in range(len(masks)):
            region = masks[i] & ~masks[i + 1 :].any(axis=0) & ~labels  # later subjects are drawn on top
            if region.sum() < 30:
                continue
            # 55% of the subject's colour over the image (overlays.mask_layer), labels aside.
            expected = 0.45 * plain[region] + 0.55 * colours[i]
            assert np.median(np.abs(panel[region] - expected)) < 8, (sample.key, i)
            toward = np.linalg.norm(panel[region] - colours[i], axis=1)
            assert np.median(toward) < np.median(np.linalg.norm(plain[region] - colours[i], axis=1)), (sample.key, i)
            checked += 1
    assert checked >= 6


def test_3d_box_corners_are_drawn_in_the_box_colour(sheet, samples):
    lay = SheetLayout(SHEET_PANEL, K)
    checked = 0
    for row, sample in enumerate(samples[:K]):
        panel = window(sheet, lay.panel_xy(row, 1), SHEET_PANEL)
        s = SHEET_PANEL / sample.image.shape[1]
        cam = sample.meta["camera"]
        camera = {**cam, **{k: cam[k] * s for k in ("fx", "fy", "cx", "cy")}}
        last = len(sample.subjects) - 1  # drawn last, so nothing covers its lines
        colour = subject_colours(len(sample.subjects))[last].astype(np.int32)
        for u, v in project_points(np.asarray(sample.subjects[last]["box_3d"]["corners"]), camera):
            c, r = int(u), int(v)
            if 1 <= c < SHEET_PANEL - 1 and 1 <= r < SHEET_PANEL - 1:
                near = panel[r - 1 : r + 2, c - 1 : c + 2].reshape(-1, 3)
                assert (near == colour).all(axis=1).any(), (sample.key, u, v)
                checked += 1
    assert checked >= 12


def test_identity_strip_holds_each_subjects_identity_framed_in_its_colour(sheet, samples):
    lay = SheetLayout(SHEET_PANEL, K)
    for row, sample in enumerate(samples[:K]):
        n = len(sample.subjects)
        cells = strip_cells(n, lay.strip_w, SHEET_PANEL, STRIP_LABEL_H)
        x0, y0 = lay.panel_xy(row, 3)
        colours = subject_colours(n).astype(np.int32)
        for i in range(n):
            x, y = x0 + cells.identity_xy(i)[0], y0 + cells.identity_xy(i)[1]
            shown = window(sheet, (x, y), cells.cell)
            diffs = [np.abs(shown - resized(ident, cells.cell)).mean() for ident in sample.identities]
            assert diffs[i] < 3 and int(np.argmin(diffs)) == i, (sample.key, i, diffs)
            assert (sheet[y + cells.cell // 2, x - 1] == colours[i]).all()  # the frame
            cx, cy = x0 + cells.crop_xy(i)[0], y0 + cells.crop_xy(i)[1]
            assert (sheet[cy + cells.cell // 2, cx - 1] == colours[i]).all()  # the crop beside it


def test_sample_page_shows_that_sample_large(finished_run, samples, tmp_path):
    sample, other = samples[5], samples[6]
    out = write_contact_sheet(finished_run, tmp_path / "one.png", n=8, key=sample.key, overwrite=False)
    page = np.asarray(Image.open(out).convert("RGB")).astype(np.int32)
    lay = page_layout(sample)
    assert page.shape[:2] == (lay.height, lay.width) and lay.panel == PAGE_PANEL >= 512
    shown = window(page, lay.panel_xy(0), PAGE_PANEL)
    assert np.abs(shown - resized(sample.image, PAGE_PANEL)).mean() < 2
    assert np.abs(shown - resized(other.image, PAGE_PANEL)).mean() > 10
    # A card per subject, in order, with its identity.
    last = len(sample.subjects) - 1
    card = window(page, lay.card_identity_xy(last), lay.card_cell)
    assert np.abs(card - resized(sample.identities[last], lay.card_cell)).mean() < 3


def test_cli_writes_the_sheet(finished_run, tmp_path):
    out = tmp_path / "sheet.png"
    done = run_cli("show", str(finished_run), "--out", str(out), "--n", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert Image.open(out).size == (SheetLayout(SHEET_PANEL, 2).width, SheetLayout(SHEET_PANEL, 2).height)


@pytest.mark.parametrize(
    "case, args, needle",
    [
        ("no_shards", ["--n", "2"], "no final shards"),
        ("unknown_key", ["--sample", "000001_000999"], "no such sample"),
        ("bad_key", ["--sample", "banana"], "not a sample key"),
        ("n_zero", ["--n", "0"], "--n"),
        ("exists", [], "already exists"),
        ("no_parent", [], "does not exist"),
        ("not_png", [], ".png"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(finished_run, tmp_path, case, args, needle):
    run, out = finished_run, tmp_path / "sheet.png"
    if case == "no_shards":
        run = shutil.copytree(finished_run, tmp_path / "empty_run")  # a run whose final shards are gone
        shutil.rmtree(run / "final")
    elif case == "exists":
        out.write_bytes(b"keep me")
    elif case == "no_parent":
        out = tmp_path / "missing" / "sheet.png"
    elif case == "not_png":
        out = tmp_path / "sheet.jpg"
    before = sorted(p.name for p in tmp_path.iterdir())
    done = run_cli("show", str(run), "--out", str(out), *args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no sheet, no temporary left
    if case == "exists":
        assert out.read_bytes() == b"keep me"
