"""Procedural textures: subject patterns in the unit local frame, ground patterns in world xy.

All functions are pure numpy on float32/float64 arrays, so the same inputs give the same bytes.
"""

from __future__ import annotations

import numpy as np


def _hash(*cells: np.ndarray) -> np.ndarray:
    """Deterministic per-cell value in [0, 1) from integer cell coordinates (uint32 arithmetic wraps)."""
    h = np.full(np.shape(cells[0]), 0x811C9DC5, dtype=np.uint32)
    for k, c in zip((0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D), cells):
        h ^= np.asarray(c).astype(np.int64).astype(np.uint32) * np.uint32(k)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x2C1B3C6D)
        h ^= h >> np.uint32(12)
    return (h >> np.uint32(16)).astype(np.float32) * np.float32(1.0 / 65536.0)


def secondary_colour(rgb: np.ndarray) -> np.ndarray:
    """Pattern colour: darker for light base colours, lighter for dark ones."""
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    return np.where(luma[..., None] > 110, rgb * 0.45, rgb * 0.35 + 0.65 * 245)


def subject_pattern(texture: str, u: np.ndarray) -> np.ndarray:
    """Weight of the secondary colour at unit-frame points u (n, 3)."""
    if texture == "plain":
        return np.zeros(len(u), dtype=np.float32)
    if texture == "striped":
        # Offsets keep the unit shapes' flat faces (at multiples of 0.05) off pattern boundaries.
        return (np.floor(u[:, 2] / 0.1 + 0.37) % 2).astype(np.float32)
    if texture == "checkered":
        c = np.floor(u / 0.16 + 0.31).astype(np.int64)
        return (c.sum(axis=1) % 2).astype(np.float32)
    if texture == "dotted":
        # A 3D lattice of small balls; a surface shows a dot wherever it cuts one.
        spacing = 0.15
        d = u / spacing
        d = d - np.round(d)
        return (np.linalg.norm(d, axis=1) * spacing < 0.06).astype(np.float32)
    if texture == "speckled":
        c = np.floor(u / 0.045).astype(np.int64)
        return (_hash(c[:, 0], c[:, 1], c[:, 2]) < 0.3).astype(np.float32)
    raise ValueError(f"unknown texture {texture!r}")


def ground_pattern(texture: str, xy: np.ndarray) -> np.ndarray:
    """Brightness factor of the ground at world points xy (n, 2)."""
    x, y = xy[:, 0], xy[:, 1]
    if texture == "plain":
        return np.ones(len(xy), dtype=np.float32)
    if texture == "speckled":
        return 0.93 + 0.14 * _hash(np.floor(x / 0.03), np.floor(y / 0.03))
    if texture == "grass":
        fine = _hash(np.floor(x / 0.03), np.floor(y / 0.03))
        coarse = _hash(np.floor(x / 0.6) + 7, np.floor(y / 0.6) + 3)
        return 0.72 + 0.35 * fine + 0.15 * coarse
    if texture == "planks":
        width = 0.18
        row = np.floor(y / width)
        # Plank ends are staggered per row; each plank gets its own shade.
        col = np.floor((x + 2.0 * _hash(row)) / 1.6)
        shade = 0.8 + 0.35 * _hash(row, col)
        seam = (y / width - row) < 0.06
        return np.where(seam, 0.55, shade).astype(np.float32)
    if texture == "tiles":
        size = 0.5
        gx, gy = x / size, y / size
        cx, cy = np.floor(gx), np.floor(gy)
        grout = ((gx - cx) < 0.04) | ((gy - cy) < 0.04)
        shade = np.where((cx + cy) % 2 == 0, 1.0, 0.88)
        return np.where(grout, 0.6, shade).astype(np.float32)
    raise ValueError(f"unknown ground texture {texture!r}")
