"""The pictures of `datagen browse`: a thumbnail per sample and, per sample page, the target image
with transparent overlay layers (masks, depth, 2D and 3D boxes, labels) drawn by datagen.views.overlays.

Layers have the image's aspect ratio and are stacked over it with CSS, so each one can be
toggled without re-drawing anything in the browser.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from datagen.final.read import FinalSample
from datagen.views.overlays import boxes_layer, depth_colours, label_layer, mask_layer, subject_colours
from datagen.schema import IMAGE_FIELDS, crop_field, identity_field

THUMB_SIDE = 192
# Small images are shown enlarged; drawing their overlays at this size at least keeps box lines
# and labels crisp instead of blowing up 1-pixel lines (1024 px images are drawn as they are).
LAYER_MIN_SIDE = 512
# Lossless but quick: the layers are mostly transparent and compress well at any level.
PNG_LEVEL = 3
# Overlay layers, bottom to top: (file stem, checkbox label, shortcut key, shown by default).
LAYERS = (
    ("depth", "depth", "d", False),
    ("mask", "masks", "m", True),
    ("boxes2d", "2D boxes", "b", False),
    ("boxes3d", "3D boxes", "3", False),
    ("labels", "labels", "l", True),
)


@dataclass(frozen=True)
class SampleMedia:
    """What a sample page needs to know about the files written for it (names relative to
    the sample's media directory)."""

    image: str
    size: tuple[int, int]  # (w, h) of the target image
    scale: int  # layers are drawn at `scale` times the image size
    depth_range: tuple[float, float]  # (near, far) metres of the depth colour scale
    identities: list[str]
    crops: list[str | None]


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def layer_scale(w: int, h: int) -> int:
    return max(1, -(-LAYER_MIN_SIDE // max(w, h, 1)))


def _scaled(subjects: list[dict], camera: dict | None, s: int) -> tuple[list[dict], dict | None]:
    """Subjects and camera for drawing at s times the image size: pixel boxes and intrinsics
    scale, 3D boxes stay in metres."""
    if s == 1:
        return subjects, camera
    subs = [{**sub, "box_2d": [int(v) * s for v in sub["box_2d"]]} for sub in subjects]
    cam = {**camera, **{k: float(camera[k]) * s for k in ("fx", "fy", "cx", "cy")}} if camera else camera
    return subs, cam


def thumbnail(sample: FinalSample) -> bytes:
    """A JPEG of the target image, at most THUMB_SIDE on its longer side (never enlarged)."""
    im = Image.fromarray(sample.image)
    im.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


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
    s = layer_scale(w, h)
    size = (w * s, h * s)
    subjects, camera = _scaled(sample.subjects, sample.meta.get("camera"), s)
    masks = sample.masks.repeat(s, axis=1).repeat(s, axis=2) if s > 1 else sample.masks
    line = max(2, round(max(size) / 256))
    depth_rgb, depth_range = depth_colours(sample.depth)
    layers = {
        "depth": depth_rgb,
        "mask": mask_layer(masks, colours),
        "boxes2d": boxes_layer(size, subjects, colours, camera, kind="2d", width=line),
        "boxes3d": boxes_layer(size, subjects, colours, camera, kind="3d", width=line),
        "labels": label_layer(size, subjects, colours, font_size=max(12, max(size) // 40)),
    }
    for stem, arr in layers.items():
        (dest / f"{stem}.png").write_bytes(_png(arr))

    identities, crops = [], []
    for i in range(n):
        identities.append(identity_field(i))
        (dest / identity_field(i)).write_bytes(sample.identity_png(i))
        crop = sample.crop(i)
        crops.append(crop_field(i) if crop is not None else None)
        if crop is not None:
            (dest / crop_field(i)).write_bytes(crop)
    return SampleMedia(image, (w, h), s, depth_range, identities, crops)
