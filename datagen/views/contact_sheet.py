"""`datagen show`: one PNG to eyeball a finished run.

The sheet shows the first K samples in key order (cheap: reading stops after K, and the same
K samples as `datagen browse --limit K`), one row each: [masks + names] [projected 3D boxes]
[depth] [identity strip: each subject's crop beside its re-posed identity, framed in the
subject's colour]. `--sample KEY` draws one sample large with its prompt, captions and scores.
All drawing goes through datagen.views.overlays so `show` and `browse` colour subjects alike; the
geometry is in datagen.views.sheet_layout.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from datagen.errors import UserError
from datagen.final.read import FinalSample, count_final_samples, find_sample, iter_final_samples
from datagen.store.output_guard import refuse_existing, write_file
from datagen.views.overlays import boxes_layer, composite, depth_colours, label_layer, mask_layer, subject_colours
from datagen.views.sheet_layout import (
    BORDER,
    GAP,
    MARGIN,
    PageLayout,
    SheetLayout,
    draw_text,
    fit_text,
    strip_cells,
    text_width,
    wrap_text,
)

SHEET_PANEL = 208  # 4 rows of the demo stay under 600 KB of lossless PNG
PAGE_PANEL = 512
BACKGROUND = (24, 24, 27)
TEXT = (235, 235, 235)
DIM = (150, 150, 155)
CELL = (64, 64, 70)  # behind crops (their alpha) and letterboxed identities
RULE = (52, 52, 58)
STRIP_LABEL_H = 15  # the name chip under each crop + identity pair
# Photos are resized with Lanczos (sharp when shrunk), masks with nearest (stay binary),
# the depth colour map with bilinear (no ringing at the black unknown-depth edges).
PHOTO_RESAMPLE = Image.Resampling.LANCZOS


def write_contact_sheet(run_dir: Path, out: Path, *, n: int, key: str | None, overwrite: bool) -> Path:
    """Draw the sheet (or one sample with `key`) and write it to `out` atomically."""
    run_dir, out = Path(run_dir), Path(out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: must end with .png (the sheet is a PNG)")
    if n < 1:
        raise UserError(f"--n: must be at least 1 (got {n})")
    refuse_existing(out, overwrite)  # before reading the run, which can take a while
    if key is not None:
        picture = render_page(find_sample(run_dir, key))
    else:
        samples = list(iter_final_samples(run_dir, limit=n))
        if not samples:
            raise UserError(f"{run_dir}: the final shards hold no samples")
        picture = render_sheet(samples, count_final_samples(run_dir))
    return write_file(out, png_bytes(picture), overwrite)


def png_bytes(picture: Image.Image) -> bytes:
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=True)  # no timestamp chunk: same pixels, same bytes
    return buf.getvalue()


@dataclass
class PanelView:
    """A sample fitted into a square panel: image, masks, 2D boxes and camera in panel pixels."""

    image: np.ndarray
    masks: np.ndarray
    subjects: list[dict]
    camera: dict
    offset: tuple[int, int]  # of the fitted image inside the square panel (letterbox)
    depth: np.ndarray
    depth_range: tuple[float, float]


def fit_sample(sample: FinalSample, panel: int) -> PanelView:
    h, w = sample.image.shape[:2]
    size = (max(1, round(w * panel / max(w, h))), max(1, round(h * panel / max(w, h))))
    sx, sy = size[0] / w, size[1] / h
    image = np.asarray(Image.fromarray(sample.image).resize(size, PHOTO_RESAMPLE))
    masks = np.zeros((len(sample.masks), size[1], size[0]), dtype=bool)
    for i, m in enumerate(sample.masks):
        masks[i] = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)) > 127
    subjects = []
    for s in sample.subjects:
        x0, y0, x1, y1 = s["box_2d"]
        subjects.append({**s, "box_2d": [round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)]})
    # Pixel centres sit at (c + 0.5, r + 0.5) (datagen.recipe.geometry), so scaling the intrinsics
    # scales projected points exactly like the image.
    cam = sample.meta["camera"]
    camera = {**cam, "fx": cam["fx"] * sx, "cx": cam["cx"] * sx, "fy": cam["fy"] * sy, "cy": cam["cy"] * sy}
    depth_rgb, depth_range = depth_colours(sample.depth)
    depth = np.asarray(Image.fromarray(depth_rgb).resize(size, Image.Resampling.BILINEAR))
    offset = ((panel - size[0]) // 2, (panel - size[1]) // 2)
    return PanelView(image, masks, subjects, camera, offset, depth, depth_range)


def masks_panel(view: PanelView, colours: np.ndarray, font_size: int) -> np.ndarray:
    size = (view.image.shape[1], view.image.shape[0])
    shaded = composite(view.image, mask_layer(view.masks, colours))
    return composite(shaded, label_layer(size, view.subjects, colours, font_size=font_size))


def boxes_panel(view: PanelView, colours: np.ndarray, line: int) -> np.ndarray:
    size = (view.image.shape[1], view.image.shape[0])
    return composite(view.image, boxes_layer(size, view.subjects, colours, view.camera, kind="3d", width=line))


def paste(sheet: Image.Image, pixels: np.ndarray, xy: tuple[int, int], view: PanelView | None = None) -> None:
    dx, dy = view.offset if view is not None else (0, 0)
    sheet.paste(Image.fromarray(pixels), (xy[0] + dx, xy[1] + dy))


def fit_cell(picture: Image.Image, cell: int) -> Image.Image:
    """`picture` scaled to fit a cell x cell square, centred on the cell colour (alpha kept)."""
    w, h = picture.size
    scale = cell / max(w, h)
    fitted = picture.convert("RGBA").resize((max(1, round(w * scale)), max(1, round(h * scale))), PHOTO_RESAMPLE)
    out = Image.new("RGBA", (cell, cell), (*CELL, 255))
    out.alpha_composite(fitted, ((cell - fitted.width) // 2, (cell - fitted.height) // 2))
    return out.convert("RGB")


def draw_subject_pair(sheet: Image.Image, sample: FinalSample, i: int, colour, crop_xy, identity_xy, cell: int) -> None:
    """Subject i's crop (as cut from the target) and identity image, each framed in its colour."""
    draw = ImageDraw.Draw(sheet)
    crop = sample.crop(i)
    if crop is not None:
        sheet.paste(fit_cell(Image.open(io.BytesIO(crop)), cell), crop_xy)
    else:
        draw.rectangle([crop_xy, (crop_xy[0] + cell - 1, crop_xy[1] + cell - 1)], fill=CELL)
        draw_text(draw, (crop_xy[0] + 4, crop_xy[1] + 4), "no crop", 11, DIM)
    sheet.paste(fit_cell(Image.fromarray(sample.identities[i]), cell), identity_xy)
    for x, y in (crop_xy, identity_xy):
        draw.rectangle([x - BORDER, y - BORDER, x + cell + BORDER - 1, y + cell + BORDER - 1], outline=colour, width=BORDER)


def draw_chip(draw: ImageDraw.ImageDraw, xy, text: str, colour, size: int, width: int) -> None:
    """A subject's index and name on its colour, as the mask labels draw it."""
    text = fit_text(text, size, width - 6)
    draw.rectangle([xy, (xy[0] + text_width(text, size) + 5, xy[1] + size + 3)], fill=colour)
    # Black on light colours, white on the dark blues and purples, where black is unreadable.
    ink = (0, 0, 0) if 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2] > 110 else (255, 255, 255)
    draw_text(draw, (xy[0] + 3, xy[1] + 1), text, size, ink)


def draw_depth_legend(sheet: Image.Image, xy, width: int, depth_range, size: int) -> None:
    """'near X m [turbo bar] far Y m': the bar runs in inverse depth, as depth_colours maps it."""
    from matplotlib import colormaps

    draw = ImageDraw.Draw(sheet)
    near, far = depth_range
    if not np.isfinite(near):
        draw_text(draw, xy, "depth: none known", size, DIM)
        return
    left, right = f"near {near:.2f} m", f"far {far:.2f} m"
    bar_x0 = xy[0] + text_width(left, size) + 6
    bar_x1 = xy[0] + width - text_width(right, size) - 6
    draw_text(draw, xy, left, size, TEXT)
    draw_text(draw, (bar_x1 + 6, xy[1]), right, size, TEXT)
    if bar_x1 - bar_x0 > 4:
        t = np.linspace(1.0, 0.0, bar_x1 - bar_x0)  # near (t=1) on the left
        bar = (colormaps["turbo"](t)[:, :3] * 255 + 0.5).astype(np.uint8)
        sheet.paste(Image.fromarray(np.repeat(bar[None], size - 2, axis=0)), (bar_x0, xy[1] + 3))


def subject_line(sample: FinalSample) -> str:
    return f"{len(sample.subjects)} subjects · {sample.meta['prompt']['background']}"


def run_id(sample: FinalSample) -> str:
    return sample.meta.get("provenance", {}).get("run_id", sample.shard.parent.parent.name)


def render_sheet(samples: list[FinalSample], total: int) -> Image.Image:
    """The contact sheet of `samples` (the first of `total` in key order)."""
    lay = SheetLayout(SHEET_PANEL, len(samples))
    sheet = Image.new("RGB", (lay.width, lay.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title = f"run {run_id(samples[0])}  ·  first {len(samples)} of {total} samples in key order"
    draw_text(draw, (MARGIN, MARGIN), fit_text(title, 20, lay.width - 2 * MARGIN), 20, TEXT)
    heads = ["masks + subject names", "3D boxes, projected", "depth (inverse, turbo)", "identities: crop | identity"]
    for col, head in enumerate(heads):
        draw_text(draw, (lay.column_x(col), MARGIN + lay.title_h), head, 13, DIM)
    for row, sample in enumerate(samples):
        y = lay.row_y(row)
        if row:
            draw.line([(MARGIN, y - lay.row_gap // 2), (lay.width - MARGIN, y - lay.row_gap // 2)], fill=RULE)
        header = f"{sample.key}  ·  {subject_line(sample)}"
        draw_text(draw, (MARGIN, y + 2), fit_text(header, 14, 2 * SHEET_PANEL + GAP), 14, TEXT)
        view = fit_sample(sample, SHEET_PANEL)
        colours = subject_colours(len(sample.subjects))
        draw_depth_legend(sheet, (lay.column_x(2), y + 2), SHEET_PANEL, view.depth_range, 12)
        paste(sheet, masks_panel(view, colours, 11), lay.panel_xy(row, 0), view)
        paste(sheet, boxes_panel(view, colours, 2), lay.panel_xy(row, 1), view)
        paste(sheet, view.depth, lay.panel_xy(row, 2), view)
        draw_strip(sheet, sample, colours, lay.panel_xy(row, 3), lay.strip_w, SHEET_PANEL)
    return sheet


def draw_strip(sheet: Image.Image, sample: FinalSample, colours: np.ndarray, xy, width: int, height: int) -> None:
    """The identity strip: (crop, identity) pairs in subject order, each labelled below."""
    draw = ImageDraw.Draw(sheet)
    cells = strip_cells(len(sample.subjects), width, height, STRIP_LABEL_H)
    for i, s in enumerate(sample.subjects):
        colour = tuple(int(c) for c in colours[i])
        crop_xy, id_xy, label_xy = (
            (xy[0] + x, xy[1] + y) for x, y in (cells.crop_xy(i), cells.identity_xy(i), cells.label_xy(i))
        )
        draw_subject_pair(sheet, sample, i, colour, crop_xy, id_xy, cells.cell)
        draw_chip(draw, label_xy, f"{i} {s['name']}", colour, 11, 2 * cells.cell + 8)


def prompt_lines(sample: FinalSample) -> list[str]:
    return wrap_text(f"prompt: {sample.meta['prompt']['full']}", 16, 2 * PAGE_PANEL + GAP, max_lines=6)


def page_layout(sample: FinalSample) -> PageLayout:
    return PageLayout(PAGE_PANEL, len(prompt_lines(sample)), len(sample.subjects))


def render_page(sample: FinalSample) -> Image.Image:
    """One sample, large: title, prompt, [image] [masks] / [3D boxes] [depth], subject cards."""
    prompt = prompt_lines(sample)
    lay = page_layout(sample)
    page = Image.new("RGB", (lay.width, lay.height), BACKGROUND)
    draw = ImageDraw.Draw(page)
    title = f"run {run_id(sample)}  ·  sample {sample.key}  ·  {subject_line(sample)}"
    draw_text(draw, (MARGIN, MARGIN), fit_text(title, 20, lay.width - 2 * MARGIN), 20, TEXT)
    for k, line in enumerate(prompt):
        draw_text(draw, (MARGIN, lay.prompt_y + k * lay.line_h), line, 16, TEXT)
    view = fit_sample(sample, PAGE_PANEL)
    colours = subject_colours(len(sample.subjects))
    h, w = sample.image.shape[:2]
    panels = [view.image, masks_panel(view, colours, 15), boxes_panel(view, colours, 3), view.depth]
    heads = [f"image {w}x{h}", "masks + subject names", "3D boxes, projected", None]
    for i, (pixels, head) in enumerate(zip(panels, heads)):
        x, y = lay.panel_xy(i)
        if head is None:
            draw_depth_legend(page, (x, y - lay.caption_h + 4), PAGE_PANEL, view.depth_range, 14)
        else:
            draw_text(draw, (x, y - lay.caption_h + 4), head, 14, DIM)
        paste(page, pixels, (x, y), view)
    draw_text(draw, (MARGIN, lay.cards_y + 4), "subjects: crop | identity (re-posed or reference) | caption, score", 14, DIM)
    for i in range(len(sample.subjects)):
        draw_card(page, sample, i, tuple(int(c) for c in colours[i]), lay)
    return page


def draw_card(page: Image.Image, sample: FinalSample, i: int, colour, lay: PageLayout) -> None:
    s = sample.subjects[i]
    cell = lay.card_cell
    draw_subject_pair(page, sample, i, colour, lay.card_crop_xy(i), lay.card_identity_xy(i), cell)
    draw = ImageDraw.Draw(page)
    x = lay.card_identity_xy(i)[0] + cell + BORDER + GAP
    y = lay.card_xy(i)[1]
    width = lay.card_xy(i)[0] + PAGE_PANEL - x
    draw_chip(draw, (x, y), f"{i} {s['name']}", colour, 15, width)
    for k, line in enumerate(wrap_text(s.get("caption", ""), 14, width, max_lines=3)):
        draw_text(draw, (x, y + 24 + 18 * k), line, 14, TEXT)
    score = s.get("score")
    facts = [f"score {score:.2f}" if isinstance(score, (int, float)) else "score -"]
    for name, field in (("box", "box_area_frac"), ("mask", "mask_area_frac")):
        if field in s:
            facts.append(f"{name} {s[field] * 100:.1f}%")
    draw_text(draw, (x, y + 24 + 18 * 3 + 6), fit_text("  ·  ".join(facts), 13, width), 13, DIM)
