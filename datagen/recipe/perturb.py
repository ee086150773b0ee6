"""Imperfect perception inputs made from perfect ones: depth like a monocular geometry model's,
masks like a segmenter's.

The procedural world gives exact depth and masks; real models do not. These pure functions
degrade the truth in the ways those models err, so a benchmark can measure what each error
costs the 3D boxes (bench/perception_truth.py). Depth follows the OpenCV/z-depth convention of
datagen.recipe.geometry (NaN where unknown); every random draw comes from the caller's generator, so
a perturbation is reproducible from its seed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from datagen.recipe.geometry import erode_mask, valid_depth

# Two neighbouring depths whose log ratio exceeds this meet at a discontinuity (an object's
# silhouette), not on one smooth surface: 5% is far above the step between neighbouring pixels
# of a surface seen at any but grazing angles at the image sizes used here.
DISCONTINUITY_LOG_RATIO = 0.05


# ---------------------------------------------------------------- depth


def scale_depth(depth: np.ndarray, rel: float) -> np.ndarray:
    """A global metric-scale error: every depth times (1 + rel). Monocular models get the
    scene's shape right far more often than its absolute size."""
    return (depth * np.float32(1.0 + rel)).astype(np.float32)


def smooth_field(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """A zero-mean, unit-std random field that varies over about 1/cells of the image:
    Gaussian values on a (cells + 1)^2 grid, interpolated bicubically."""
    coarse = rng.standard_normal((cells + 1, cells + 1))
    field = ndimage.zoom(coarse, (shape[0] / coarse.shape[0], shape[1] / coarse.shape[1]), order=3, mode="nearest")
    field = field[: shape[0], : shape[1]]
    return (field - field.mean()) / field.std()


def smooth_noise(depth: np.ndarray, std: float, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency relative error: regions of the scene a few percent too near or too far, the
    way a model's depth bends a flat floor or leans an object."""
    if std <= 0:
        return depth
    return (depth * (1.0 + std * smooth_field(depth.shape, cells, rng))).astype(np.float32)


def pixel_noise(depth: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Independent relative noise per pixel (surface roughness that is not there)."""
    if std <= 0:
        return depth
    return (depth * (1.0 + std * rng.standard_normal(depth.shape))).astype(np.float32)


def discontinuities(depth: np.ndarray, log_ratio: float = DISCONTINUITY_LOG_RATIO) -> np.ndarray:
    """Pixels with a 4-neighbour across a depth step (both sides), or next to unknown depth."""
    valid = valid_depth(depth)
    log_d = np.log(np.where(valid, depth, 1.0))
    edge = np.zeros(depth.shape, dtype=bool)
    for axis in (0, 1):
        step = np.abs(np.diff(log_d, axis=axis)) > log_ratio
        step |= np.diff(valid.astype(np.int8), axis=axis) != 0
        lead = [slice(None)] * 2
        lag = [slice(None)] * 2
        lead[axis], lag[axis] = slice(1, None), slice(None, -1)
        edge[tuple(lead)] |= step
        edge[tuple(lag)] |= step
    return edge & valid


def bleed_edges(depth: np.ndarray, px: int) -> np.ndarray:
    """Depth smeared across discontinuities over `px` pixels on each side.

    A network regresses depth smoothly, so where a foreground object meets the background its
    output ramps from one depth to the other instead of stepping: unprojected, those pixels are
    the "flying pixels" strung between object and background. Here every pixel within px of a
    discontinuity takes the mean valid depth of its (2 px + 1)^2 window, which is such a ramp.
    """
    if px <= 0:
        return depth
    valid = valid_depth(depth)
    band = ndimage.binary_dilation(discontinuities(depth), structure=np.ones((2 * px + 1,) * 2, dtype=bool))
    band &= valid
    size = 2 * px + 1
    total = ndimage.uniform_filter(np.where(valid, depth, 0.0).astype(np.float64), size, mode="nearest")
    count = ndimage.uniform_filter(valid.astype(np.float64), size, mode="nearest")
    out = depth.copy()
    out[band] = (total[band] / count[band]).astype(np.float32)
    return out


# ---------------------------------------------------------------- masks


def erode(mask: np.ndarray, px: int) -> np.ndarray:
    """The mask shrunk by px pixels (a square structuring element, as the box fit erodes)."""
    return erode_mask(mask, px)


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """The mask grown by px pixels onto whatever lies around it: background or a neighbour."""
    if px <= 0:
        return np.asarray(mask, dtype=bool).copy()
    return ndimage.binary_dilation(mask, structure=np.ones((2 * px + 1,) * 2, dtype=bool))


def punch_holes(mask: np.ndarray, frac: float, radius: int, rng: np.random.Generator) -> np.ndarray:
    """Round holes of `radius` pixels at random mask pixels until about `frac` of the mask is gone
    (a segmenter missing a specular patch or a part it took for background)."""
    mask = np.asarray(mask, dtype=bool)
    area = int(mask.sum())
    if frac <= 0 or area == 0:
        return mask.copy()
    out = mask.copy()
    rows, cols = np.nonzero(mask)
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = yy**2 + xx**2 <= radius**2
    target = area * (1.0 - frac)
    # Each hole removes at most one disk; the bound only stops a pathological loop.
    for _ in range(area):
        if out.sum() <= target:
            break
        i = rng.integers(len(rows))
        r0, c0 = rows[i] - radius, cols[i] - radius
        r1, c1 = r0 + 2 * radius + 1, c0 + 2 * radius + 1
        # Clip the disk's window to the image.
        dr0, dc0 = max(0, -r0), max(0, -c0)
        dr1 = disk.shape[0] - max(0, r1 - mask.shape[0])
        dc1 = disk.shape[1] - max(0, c1 - mask.shape[1])
        out[r0 + dr0 : r0 + dr1, c0 + dc0 : c0 + dc1] &= ~disk[dr0:dr1, dc0:dc1]
    return out
