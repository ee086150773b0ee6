"""The pictures of `datagen browse`: a thumbnail per sample and, per sample page, the target image
with transparent overlay layers stacked over it with CSS, so each one can be toggled without
re-drawing anything in the browser.

Rendering is most of what `browse` costs (a paper-scale run has 27,000 samples), so each
picture is made the cheapest way that shows it exactly:
- depth and masks are raster layers at the image's own resolution (datagen.views.overlays
  draws them as `datagen show` does); the page enlarges small images with crisp pixels;
- 2D boxes, 3D boxes and labels are SVG: a few hundred bytes of text, sharp at any size,
  instead of a mostly transparent PNG to encode per layer;
- stored PNGs are copied byte for byte: the image, and the identities (sigma-set/2 stacks them
  in one identities.png, which the page shows one tile at a time; /1 stores one per subject).
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from datagen.final.read import FinalSample
from datagen.final.writer import crop_rgba
from datagen.schema import IDENTITIES_FIELD, IMAGE_FIELDS, SCHEMA_V1, crop_field, identity_field
from datagen.views.overlays import box3d_segments, depth_colours, mask_layer, subject_colours, text_colour

THUMB_SIDE = 192
# Lossless and quick: zlib's effort barely shrinks these small layers and crops further.
PNG_LEVEL = 1
# Overlay layers, bottom to top: (file stem, file name, checkbox label, shortcut key, shown by default).
LAYERS = (
    ("depth", "depth.png", "depth", "d", False),
    ("mask", "mask.png", "masks", "m", True),
    ("boxes2d", "boxes2d.svg", "2D boxes", "b", False),
    ("boxes3d", "boxes3d.svg", "3D boxes", "3", False),
    ("labels", "labels.svg", "labels", "l", True),
)


@dataclass(frozen=True)
class SampleMedia:
    """What a sample page needs to know about the files written for it (names relative to
    the sample's media directory)."""

    image: str
    size: tuple[int, int]  # (w, h) of the target image, and of every layer
    depth_range: tuple[float, float]  # (near, far) metres of the depth colour scale
    identities: list[str]  # per subject, the file that holds its identity image
    identity_tiles: int  # 1: a file per subject; n: one file, n tiles stacked top to bottom
    identity_size: tuple[int, int]  # (w, h) of one identity image
    crops: list[str | None]


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def thumbnail(sample: FinalSample) -> bytes:
    """A JPEG of the target image, at most THUMB_SIDE on its longer side (never enlarged)."""
    im = Image.fromarray(sample.image)
    im.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _hex(colour: np.ndarray) -> str:
    r, g, b = (int(c) for c in colour[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _svg(size: tuple[int, int], body: list[str]) -> bytes:
    """An SVG layer in image pixel coordinates; width and height give it the image's natural size."""
    w, h = size
    inner = "\n".join(body)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">\n{inner}\n</svg>\n'
    ).encode()


def _stroke(size: tuple[int, int]) -> str:
    # In image pixels: about 2.5 screen pixels at the page's 640 px, whatever the image size.
    return f"{max(size) / 256:g}"


def boxes2d_svg(size: tuple[int, int], subjects: list[dict], colours: np.ndarray) -> bytes:
    stroke = _stroke(size)
    return _svg(size, [
        f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" stroke="{_hex(colours[i])}" stroke-width="{stroke}"/>'
        for i, (x0, y0, x1, y1) in enumerate(s["box_2d"] for s in subjects)
    ])  # fmt: skip


def boxes3d_svg(size: tuple[int, int], subjects: list[dict], colours: np.ndarray, camera: dict | None) -> bytes:
    """Each subject's 3D box projected with the camera: one path of its visible edges."""
    body = []
    for i, s in enumerate(subjects):
        if s.get("box_3d") is None or camera is None:
            continue
        segments = [(p, q) for p, q in box3d_segments(s["box_3d"], camera) if np.isfinite([*p, *q]).all()]
        d = " ".join(f"M{p[0]:.1f} {p[1]:.1f}L{q[0]:.1f} {q[1]:.1f}" for p, q in segments)
        if d:
            body.append(f'<path d="{d}" fill="none" stroke="{_hex(colours[i])}" stroke-width="{_stroke(size)}" stroke-linecap="round"/>')
    return _svg(size, body)


def labels_svg(size: tuple[int, int], subjects: list[dict], colours: np.ndarray) -> bytes:
    """Each subject's index and name at the top-left of its 2D box, on a halo of its colour
    (no text to measure: the browser sizes the halo to its own font)."""
    font = max(size) / 40
    body = []
    for i, s in enumerate(subjects):
        x0, y0 = s["box_2d"][0], s["box_2d"][1]
        fill = "#000" if text_colour(colours[i])[0] == 0 else "#fff"
        text = html.escape(f"{i} {s.get('name', '')}".strip(), quote=True)
        body.append(
            f'<text x="{x0 + font / 4:g}" y="{max(font, y0 - font / 4):g}" font-size="{font:g}" font-family="sans-serif" '
            f'font-weight="600" fill="{fill}" stroke="{_hex(colours[i])}" stroke-width="{font / 3:g}" '
            f'stroke-linejoin="round" paint-order="stroke">{text}</text>'
        )
    return _svg(size, body)


def _identities(sample: FinalSample, dest: Path) -> tuple[list[str], int, tuple[int, int]]:
    """Copy the stored identity PNGs; (file per subject, tiles per file, size of one)."""
    n = len(sample.subjects)
    h, w = sample.identities.shape[1:3] if n else (0, 0)
    if sample.schema == SCHEMA_V1:
        for i in range(n):
            (dest / identity_field(i)).write_bytes(sample.members[identity_field(i)])
        return [identity_field(i) for i in range(n)], 1, (w, h)
    (dest / IDENTITIES_FIELD).write_bytes(sample.members[IDENTITIES_FIELD])
    return [IDENTITIES_FIELD] * n, n, (w, h)


def _crop(sample: FinalSample, i: int) -> bytes | None:
    """Subject i's RGBA crop: as stored in /1 (None when the run wrote none), else cut from the
    target inside box_2d with alpha = its mask, as FinalSample.crop does."""
    if sample.schema == SCHEMA_V1:
        return sample.members.get(crop_field(i))
    return _png(crop_rgba(sample.image, sample.masks[i], sample.subjects[i]["box_2d"]))


def write_sample_media(sample: FinalSample, dest: Path) -> SampleMedia:
    """Write the image, its overlay layers, identities and crops of one sample into `dest`."""
    dest.mkdir(parents=True)
    h, w = sample.image.shape[:2]
    # The stored image is copied byte for byte: the viewer shows exactly what the dataset holds.
    field = next(f for f in IMAGE_FIELDS if f in sample.members)
    image = f"image.{field}"
    (dest / image).write_bytes(sample.members[field])

    n = len(sample.subjects)
    colours = subject_colours(n)
    depth_rgb, depth_range = depth_colours(sample.depth)
    layers = {
        "depth.png": _png(depth_rgb),
        "mask.png": _png(mask_layer(sample.masks, colours)),
        "boxes2d.svg": boxes2d_svg((w, h), sample.subjects, colours),
        "boxes3d.svg": boxes3d_svg((w, h), sample.subjects, colours, sample.meta.get("camera")),
        "labels.svg": labels_svg((w, h), sample.subjects, colours),
    }
    for name, data in layers.items():
        (dest / name).write_bytes(data)

    identities, tiles, identity_size = _identities(sample, dest)
    crops: list[str | None] = []
    for i in range(n):
        crop = _crop(sample, i)
        crops.append(crop_field(i) if crop is not None else None)
        if crop is not None:
            (dest / crop_field(i)).write_bytes(crop)
    return SampleMedia(image, (w, h), depth_range, identities, tiles, identity_size, crops)
