"""Where everything sits on a contact sheet: pure geometry and text fitting, no sample data.

Kept apart from the drawing so tests can find a panel or an identity cell in the written PNG
from the same numbers the renderer used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from PIL import ImageDraw, ImageFont

MARGIN = 16
GAP = 8
BORDER = 2  # the subject-coloured frame drawn outside each identity and crop cell
PAIR_GAP = 2 * BORDER + 2  # between a subject's crop and its identity: room for both frames


@cache
def font(size: int) -> ImageFont.FreeTypeFont:
    # Pillow's bundled font, not a system one: the same Pillow draws the same bytes anywhere.
    return ImageFont.load_default(size)


def text_width(text: str, size: int) -> int:
    return math.ceil(font(size).getlength(text))


def fit_text(text: str, size: int, width: int) -> str:
    """`text`, cut with '...' so that it fits in `width` pixels."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "...", size) > width:
        text = text[:-1]
    return text.rstrip() + "..." if text else ""


def wrap_text(text: str, size: int, width: int, max_lines: int | None = None) -> list[str]:
    """Greedy word wrap to `width` pixels; the last allowed line is cut with '...'."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [fit_text(" ".join(lines[max_lines - 1 :]), size, width)]
    return [fit_text(line, size, width) for line in lines] or [""]


def draw_text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size: int, fill) -> None:
    """Text whose top-left ink box starts near `xy`, whatever the font's ascent."""
    draw.text(xy, text, font=font(size), fill=fill, anchor="la")


@dataclass(frozen=True)
class StripCells:
    """A grid of (crop, identity) pairs, one per subject in subject order, with a label below."""

    cell: int  # side of each square crop / identity cell
    cols: int
    label_h: int

    def crop_xy(self, i: int) -> tuple[int, int]:
        col, row = i % self.cols, i // self.cols
        x = BORDER + col * (2 * self.cell + PAIR_GAP + GAP)
        return x, BORDER + row * (self.cell + 2 * BORDER + self.label_h + GAP // 2)

    def identity_xy(self, i: int) -> tuple[int, int]:
        x, y = self.crop_xy(i)
        return x + self.cell + PAIR_GAP, y

    def label_xy(self, i: int) -> tuple[int, int]:
        x, y = self.crop_xy(i)
        return x - BORDER, y + self.cell + BORDER + 2


def strip_cells(n: int, width: int, height: int, label_h: int) -> StripCells:
    """The column count that gives the biggest cells for `n` subjects in a width x height area."""
    best = StripCells(1, 1, label_h)
    for cols in range(1, max(n, 1) + 1):
        rows = math.ceil(n / cols)
        by_w = (width - 2 * BORDER - (cols - 1) * GAP - cols * PAIR_GAP) // (2 * cols)
        by_h = (height - rows * (2 * BORDER + label_h) - (rows - 1) * (GAP // 2)) // rows
        cell = min(by_w, by_h)
        if cell > best.cell:
            best = StripCells(cell, cols, label_h)
    return best


@dataclass(frozen=True)
class SheetLayout:
    """The contact sheet: a title row, a column-heading row, then one row per sample of
    [masks + labels] [3D boxes] [depth] [identity strip], each row under a one-line header."""

    panel: int
    rows: int
    title_h: int = 34
    columns_h: int = 22
    header_h: int = 22
    row_gap: int = 12

    @property
    def strip_w(self) -> int:
        return 2 * self.panel  # room for 10 subjects' crop + identity pairs at a legible size

    @property
    def row_h(self) -> int:
        return self.header_h + self.panel + self.row_gap

    @property
    def width(self) -> int:
        return 2 * MARGIN + 3 * (self.panel + GAP) + self.strip_w

    @property
    def height(self) -> int:
        return 2 * MARGIN + self.title_h + self.columns_h + self.rows * self.row_h - self.row_gap

    def column_x(self, col: int) -> int:
        """Left edge of panel column `col` (0..2 the image panels, 3 the identity strip)."""
        return MARGIN + col * (self.panel + GAP)

    def row_y(self, row: int) -> int:
        """Top of sample row `row`'s header line; its panels start header_h below."""
        return MARGIN + self.title_h + self.columns_h + row * self.row_h

    def panel_xy(self, row: int, col: int) -> tuple[int, int]:
        return self.column_x(col), self.row_y(row) + self.header_h


@dataclass(frozen=True)
class PageLayout:
    """One sample, large: title, the wrapped prompt, a 2 x 2 grid of [image] [masks + labels] /
    [3D boxes] [depth], then a card per subject (crop, identity, caption, score), two per row."""

    panel: int
    prompt_lines: int
    subjects: int
    title_h: int = 36
    line_h: int = 22
    caption_h: int = 24
    card_cell: int = 112

    @property
    def width(self) -> int:
        return 2 * MARGIN + 2 * self.panel + GAP

    @property
    def prompt_y(self) -> int:
        return MARGIN + self.title_h

    def panel_xy(self, i: int) -> tuple[int, int]:
        """Top-left of panel i (0 image, 1 masks, 2 boxes, 3 depth); its caption is above it."""
        top = self.prompt_y + self.prompt_lines * self.line_h + GAP + self.caption_h
        return MARGIN + (i % 2) * (self.panel + GAP), top + (i // 2) * (self.panel + GAP + self.caption_h)

    @property
    def cards_y(self) -> int:
        """Top of the subject cards' heading line."""
        return self.panel_xy(2)[1] + self.panel + GAP

    @property
    def card_h(self) -> int:
        return self.card_cell + 2 * BORDER + GAP

    def card_xy(self, i: int) -> tuple[int, int]:
        return MARGIN + (i % 2) * (self.panel + GAP), self.cards_y + self.caption_h + (i // 2) * self.card_h

    def card_crop_xy(self, i: int) -> tuple[int, int]:
        x, y = self.card_xy(i)
        return x + BORDER, y + BORDER

    def card_identity_xy(self, i: int) -> tuple[int, int]:
        x, y = self.card_crop_xy(i)
        return x + self.card_cell + PAIR_GAP, y

    @property
    def height(self) -> int:
        return self.cards_y + self.caption_h + math.ceil(self.subjects / 2) * self.card_h - GAP + MARGIN
