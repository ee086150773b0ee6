"""SIGMA-GEN's per-sample training augmentations (RECIPE.md), drawn from a seeded stream.

One `numpy.random.Generator` per (seed, epoch, reader, sample key, visit): the draws for a
sample do not depend on what came before it, so a run is reproducible and a resumed run (a new
`epoch`) draws fresh but reproducible augmentations. `visit` counts how often this reader has
met the key before: a resampled stream repeats samples, and a repeat should not get the same
augmentation; `reader` (rank and DataLoader worker) keeps two readers of one key apart.

Resize rule: every target and control becomes `resolution` x `resolution` (square, a multiple
of 16 by TrainConfig's check); each identity image `identity_size` squared. A square sample is
resized whole. A non-square one (ingested photographs keep their own size: AnyInsertion's run
from 368 px to 3.8k px, any aspect) is never stretched: that would squash its subjects against
their undistorted identity images. The trainer keeps the square of side min(W, H) centred on the
subjects' union (their masks' bounding box), slid inside the image (`crop_window`), and resizes
that. The control image is built at the sample's own size from its masks, depth, boxes and
camera, then cut by the same window as the target and resized with nearest neighbour (routing
intensities stay exactly 10 * i), so image, masks, depth and routing stay pixel-aligned. Mask
dilation is in the sample's own pixels. `datagen eval` judges a non-square sample through the
same window (`window_view`); `datagen sample` stretches a layout to the square instead: it may
not drop part of what it is asked to draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from datagen.recipe.conditioning import MODES, Layout, control_image, drop_channel, identity_stack
from datagen.recipe.geometry import mask_box_2d

TEMPLATES = (
    "Place these subjects in {background}",
    "Place these subjects to compose: {full}",
)


@dataclass(frozen=True)
class AugmentDraw:
    """What one training sample gets: structure mode, dropped channel, dilation, aspect, prompt."""

    mode: str
    drop_channel: int | None  # 0 asc, 1 dsc, 2 structure; None: keep all three
    dilate_px: int
    aspect: float  # width / height factor for boxes, area kept; 1.0: none
    template: int  # index into TEMPLATES


def sample_rng(seed: int, epoch: int, key: str, visit: int = 0, stream: int = 0) -> np.random.Generator:
    """The generator of one sample's draws. `stream` tells apart the readers (rank * 1000 +
    worker) that may meet the same key. The key's bytes enter the seed directly (no `hash()`,
    which Python salts per process)."""
    entropy = [int(seed), int(epoch), int(stream), int(visit), *key.encode()]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def draw_augment(rng: np.random.Generator, aug: Any) -> AugmentDraw:
    """Draw every parameter, always in the same order, so each draw is independent of the others.

    `aug` is a TrainConfig.augment (structure_modes, channel_drop_p, max_dilate_px, aspect_jitter).
    """
    modes = list(aug.structure_modes)
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown structure mode {m!r}; use one of {', '.join(MODES)}")
    mode = modes[int(rng.integers(len(modes)))]
    drop = rng.random() < aug.channel_drop_p
    channel = int(rng.integers(3))
    dilate = int(rng.integers(0, int(aug.max_dilate_px) + 1))
    aspect = 1.0 + float(rng.uniform(-1.0, 1.0)) * float(aug.aspect_jitter)
    template = int(rng.integers(len(TEMPLATES)))
    return AugmentDraw(mode, channel if drop else None, dilate, aspect, template)


def prompt_text(meta: dict, template: int) -> str:
    p = meta["prompt"]
    return TEMPLATES[template].format(background=p["background"], full=p["full"])


def _resize(img: np.ndarray, width: int, height: int, resample: int) -> np.ndarray:
    if img.shape[1] == width and img.shape[0] == height:
        return img
    return np.asarray(Image.fromarray(img).resize((width, height), resample=resample))


def subjects_box(decoded: dict) -> list[float] | None:
    """[x0, y0, x1, y1] around every subject: the union of the masks' boxes, else of the json's
    box_2d (x1, y1 exclusive); None when neither names a pixel."""
    masks = decoded.get("masks")
    boxes = [b for b in (mask_box_2d(m) for m in masks) if b is not None] if masks is not None else []
    if not boxes:
        boxes = [s["box_2d"] for s in decoded["json"]["subjects"] if s.get("box_2d") is not None]
    if not boxes:
        return None
    b = np.asarray(boxes, dtype=np.float64)
    return [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())]


def crop_window(width: int, height: int, box: list[float] | None = None) -> tuple[int, int, int]:
    """(x0, y0, side): the square of side min(width, height) that the trainer keeps of a sample,
    centred on `box` (the subjects' union) along the long axis and slid back inside the image;
    centred on the image without a box. A square sample keeps everything: (0, 0, width). A union
    no longer than the short side is kept whole."""
    side = min(int(width), int(height))
    long, along = (int(width), 0) if width > height else (int(height), 1)
    if long == side:
        return 0, 0, side
    centre = long / 2.0 if box is None else (float(box[along]) + float(box[along + 2])) / 2.0
    start = int(min(max(np.floor(centre - side / 2.0 + 0.5), 0), long - side))
    return (start, 0, side) if along == 0 else (0, start, side)


def window_view(decoded: dict) -> dict:
    """The decoded sample as the trainer sees it: cut to its `crop_window` (image, masks, depth),
    each box_2d the tight box of its cut mask (else moved and clipped), the camera's principal
    point moved, width and height the window's. `datagen eval` judges non-square samples (DreamBooth
    photographs) through it, so conditions and scores match training. A square sample is as it is."""
    meta = decoded["json"]
    width, height = int(meta["width"]), int(meta["height"])
    if width == height:
        return decoded
    x0, y0, side = crop_window(width, height, subjects_box(decoded))
    cut = (..., slice(y0, y0 + side), slice(x0, x0 + side))
    masks = decoded["masks"][cut]
    subjects = []
    for subj, mask in zip(meta["subjects"], masks, strict=True):
        box = mask_box_2d(mask)
        if box is None and subj.get("box_2d") is not None:
            b = subj["box_2d"]
            box = [min(max(v - o, 0), side) for v, o in zip(b, (x0, y0, x0, y0), strict=True)]
        subjects.append({**subj, "box_2d": box})
    camera = meta.get("camera")
    if camera:
        camera = {**camera, "cx": camera["cx"] - x0, "cy": camera["cy"] - y0}
    json_ = {**meta, "width": side, "height": side, "subjects": subjects, "camera": camera}
    return {**decoded, "json": json_, "image": decoded["image"][y0 : y0 + side, x0 : x0 + side],
            "masks": masks, "depth": decoded["depth"][cut]}  # fmt: skip


def fit_square(img: np.ndarray, window: tuple[int, int, int], size: int, resample: int) -> np.ndarray:
    """The window's square of `img` (H x W [x C]) at size x size."""
    x0, y0, side = window
    return _resize(np.ascontiguousarray(img[y0 : y0 + side, x0 : x0 + side]), size, size, resample)


def to_unit(img: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 -> float32 3 x H x W in [-1, 1], as the VAE takes it."""
    return (img.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1).copy()


def build_example(decoded: dict, draw: AugmentDraw, resolution: int, identity_size: int) -> dict:
    """A training example from a decoded sample (see data.decode_sample) and its draws.

    Returns numpy arrays: target and control (3, R, R), identities (3, N * s, s), all float32 in
    [-1, 1]; prompt, n_subjects, key, the draws and `window`, the (x0, y0, side) square of the
    sample's own pixels that target and control show (crop_window; the module doc).
    Any subject count >= 1, any identity.source (repose or reference: identity images alike).
    """
    meta = decoded["json"]
    height, width = decoded["image"].shape[:2]
    aspect = None if draw.aspect == 1.0 else draw.aspect
    control = control_image(Layout.from_sample(decoded), draw.mode, draw.dilate_px, aspect)
    if draw.drop_channel is not None:
        control = drop_channel(control, draw.drop_channel)
    r, s = int(resolution), int(identity_size)
    window = crop_window(width, height, subjects_box(decoded))
    ids = [_resize(x, s, s, Image.BICUBIC) for x in decoded["identities"]]
    return {
        "key": decoded["key"],
        "target": to_unit(fit_square(decoded["image"], window, r, Image.BICUBIC)),
        "control": to_unit(fit_square(control, window, r, Image.NEAREST)),
        "identities": to_unit(identity_stack(ids)),
        "prompt": prompt_text(meta, draw.template),
        "n_subjects": len(meta["subjects"]),
        "augment": draw,
        "window": window,
    }
