"""SIGMA-GEN's per-sample training augmentations (RECIPE.md), drawn from a seeded stream.

One `numpy.random.Generator` per (seed, epoch, reader, sample key, visit): the draws for a
sample do not depend on what came before it, so a run is reproducible and a resumed run (a new
`epoch`) draws fresh but reproducible augmentations. `visit` counts how often this reader has
met the key before: a resampled stream repeats samples, and a repeat should not get the same
augmentation; `reader` (rank and DataLoader worker) keeps two readers of one key apart.

Resize rule: every target and control is resized to `resolution` x `resolution` (square,
a multiple of 16 by TrainConfig's check); each identity image to `identity_size` squared.
The procedural and SIGMA-SET27K data are square, so the square rule distorts nothing there;
a non-square dataset is stretched (aspect buckets are not worth it yet). The control image is
built at the sample's own size, then resized with nearest neighbour so routing intensities stay
exactly 10 * i. Mask dilation is in the sample's own pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from datagen.recipe.conditioning import MODES, Layout, control_image, drop_channel, identity_stack

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


def to_unit(img: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 -> float32 3 x H x W in [-1, 1], as the VAE takes it."""
    return (img.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1).copy()


def build_example(decoded: dict, draw: AugmentDraw, resolution: int, identity_size: int) -> dict:
    """A training example from a decoded sample (see data.decode_sample) and its draws.

    Returns numpy arrays: target and control (3, R, R), identities (3, N * s, s), all float32 in
    [-1, 1]; prompt, n_subjects, key and the draws.
    """
    meta = decoded["json"]
    aspect = None if draw.aspect == 1.0 else draw.aspect
    control = control_image(Layout.from_sample(decoded), draw.mode, draw.dilate_px, aspect)
    if draw.drop_channel is not None:
        control = drop_channel(control, draw.drop_channel)
    r, s = int(resolution), int(identity_size)
    ids = [_resize(x, s, s, Image.BICUBIC) for x in decoded["identities"]]
    return {
        "key": decoded["key"],
        "target": to_unit(_resize(decoded["image"], r, r, Image.BICUBIC)),
        "control": to_unit(_resize(control, r, r, Image.NEAREST)),
        "identities": to_unit(identity_stack(ids)),
        "prompt": prompt_text(meta, draw.template),
        "n_subjects": len(meta["subjects"]),
        "augment": draw,
    }
