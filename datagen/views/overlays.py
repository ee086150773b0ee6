"""Pictures of a sample's annotations, shared by `datagen show` and `datagen browse`.

All functions take and return uint8 numpy images (RGB or RGBA) so both viewers draw exactly
the same thing: subject i always has colour `subject_colours(n)[i]`.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from datagen.recipe.geometry import project_points, valid_depth

# The 12 edges of a box in CORNER_SIGNS order: bottom face, top face, verticals.
BOX_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]
# Corners closer than this (metres, camera z) are not drawn: projection blows up near z=0.
MIN_Z = 1e-3


def subject_colours(n: int) -> np.ndarray:
    """(n, 3) uint8 colours, well apart in hue, stable for a given n (golden-angle hues)."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    return np.array([[round(c * 255) for c in colorsys.hsv_to_rgb(h, 0.85, 0.95)] for h in hues], dtype=np.uint8).reshape(n, 3)


def mask_layer(masks: np.ndarray, colours: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """(H, W, 4) RGBA: each subject's mask in its colour (later subjects on top), edges opaque."""
    n, h, w = masks.shape
    out = np.zeros((h, w, 4), dtype=np.uint8)
    for i in range(n):
        m = masks[i].astype(bool)
        out[m, :3] = colours[i]
        out[m, 3] = round(alpha * 255)
        # A 1-pixel outline keeps touching subjects apart.
        inner = m.copy()
        inner[1:, :] &= m[:-1, :]
        inner[:-1, :] &= m[1:, :]
        inner[:, 1:] &= m[:, :-1]
        inner[:, :-1] &= m[:, 1:]
        out[m & ~inner, 3] = 255
    return out


def composite(base: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """Alpha-composite an RGBA layer over an RGB image; RGB uint8 out."""
    a = layer[..., 3:4].astype(np.float32) / 255.0
    mixed = base[..., :3].astype(np.float32) * (1 - a) + layer[..., :3].astype(np.float32) * a
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def depth_colours(depth: np.ndarray, cmap: str = "turbo") -> tuple[np.ndarray, tuple[float, float]]:
    """(H, W, 3) uint8 colour map of depth, unknown pixels black. Coloured by inverse depth
    (as disparity maps are), so the near scene is not flattened by a far horizon: near is red,
    far blue with turbo. The range is the 2nd-98th percentile of known depth, returned as
    (near, far) metres."""
    from matplotlib import colormaps

    ok = valid_depth(depth)
    out = np.zeros((*depth.shape, 3), dtype=np.uint8)
    if not ok.any():
        return out, (float("nan"), float("nan"))
    near, far = (float(x) for x in np.percentile(depth[ok], [2, 98]))
    inv_near, inv_far = 1.0 / max(near, 1e-6), 1.0 / max(far, 1e-6)
    t = np.clip((1.0 / depth[ok] - inv_far) / max(inv_near - inv_far, 1e-9), 0, 1)
    out[ok] = (colormaps[cmap](t)[:, :3] * 255 + 0.5).astype(np.uint8)
    return out, (near, far)


def box3d_segments(box: dict, camera: dict) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The 2D segments of a 3D box's edges in image pixels; edges with a corner behind the
    camera are left out."""
    corners = np.asarray(box["corners"], dtype=np.float64)
    uv = project_points(corners, camera)
    segments = []
    for a, b in BOX_EDGES:
        if corners[a, 2] > MIN_Z and corners[b, 2] > MIN_Z:
            segments.append(((float(uv[a, 0]), float(uv[a, 1])), (float(uv[b, 0]), float(uv[b, 1]))))
    return segments


def boxes_layer(
    size: tuple[int, int],
    subjects: list[dict],
    colours: np.ndarray,
    camera: dict | None = None,
    kind: str = "3d",
    width: int = 2,
) -> np.ndarray:
    """(H, W, 4) RGBA with each subject's box drawn in its colour: `kind` is '2d' (box_2d) or
    '3d' (box_3d projected with `camera`)."""
    w, h = size
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for i, s in enumerate(subjects):
        colour = (*(int(c) for c in colours[i]), 255)
        if kind == "2d":
            x0, y0, x1, y1 = s["box_2d"]
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=width)
        elif s.get("box_3d") is not None and camera is not None:
            for p, q in box3d_segments(s["box_3d"], camera):
                draw.line([p, q], fill=colour, width=width)
    return np.asarray(layer)


def text_colour(background: np.ndarray) -> tuple[int, int, int, int]:
    """Black on light colours, white on dark ones (Rec. 601 luma)."""
    r, g, b = (int(c) for c in background[:3])
    return (0, 0, 0, 255) if 0.299 * r + 0.587 * g + 0.114 * b >= 140 else (255, 255, 255, 255)


def label_layer(size: tuple[int, int], subjects: list[dict], colours: np.ndarray, font_size: int = 12) -> np.ndarray:
    """(H, W, 4) RGBA: each subject's index and name at the top-left of its 2D box."""
    from PIL import ImageFont

    w, h = size
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(font_size)
    for i, s in enumerate(subjects):
        x0, y0 = s["box_2d"][0], s["box_2d"][1]
        text = f"{i} {s.get('name', '')}".strip()
        left, top, right, bottom = draw.textbbox((x0, y0), text, font=font)
        y = max(0, y0 - (bottom - top) - 2)
        draw.rectangle([x0, y, x0 + (right - left) + 4, y + (bottom - top) + 3], fill=(*(int(c) for c in colours[i]), 230))
        draw.text((x0 + 2, y + 1 - (top - y0)), text, fill=text_colour(colours[i]), font=font)
    return np.asarray(layer)
