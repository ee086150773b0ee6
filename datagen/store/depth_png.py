"""Depth as a 16-bit PNG of log depth (sigma-set/2, FORMAT.md): 0 = unknown, v in 1..65535 =
exp(log_min + (v - 1) * (log_max - log_min) / 65534) metres.

A log scale spends the 16 bits evenly on relative error, which is what depth needs: the worst
relative error is (log_max - log_min) / 131068, 3.5e-5 for a 100x range. `log_min`/`log_max`
are rounded outwards to 6 decimals before quantising, so the values written to the sample's
JSON (which keeps 6 decimals) decode exactly what was encoded.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

LEVELS = 65534  # codes 1..65535; 0 is "unknown"
DECIMALS = 6


@dataclass(frozen=True)
class LogRange:
    log_min: float
    log_max: float

    def to_json(self) -> dict[str, float | str]:
        return {"encoding": "log16", "log_min": self.log_min, "log_max": self.log_max}


def log_range(depth: np.ndarray) -> LogRange:
    """The valid range of `depth` (finite, > 0) in natural-log metres, rounded outwards."""
    valid = depth[np.isfinite(depth) & (depth > 0)]
    if valid.size == 0:
        return LogRange(0.0, 0.0)
    scale = 10**DECIMALS
    lo = math.floor(math.log(float(valid.min())) * scale) / scale
    hi = math.ceil(math.log(float(valid.max())) * scale) / scale
    return LogRange(lo, hi)


def quantise(depth: np.ndarray, rng: LogRange) -> np.ndarray:
    """uint16 codes of `depth` on `rng` (0 where depth is unknown: NaN, inf or <= 0)."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    codes = np.zeros(depth.shape, dtype=np.uint16)
    span = rng.log_max - rng.log_min
    if span <= 0:
        codes[valid] = 1
        return codes
    step = np.rint((np.log(depth[valid]) - rng.log_min) / span * LEVELS)
    codes[valid] = (1 + np.clip(step, 0, LEVELS)).astype(np.uint16)
    return codes


def dequantise(codes: np.ndarray, rng: LogRange) -> np.ndarray:
    """float32 metres of uint16 codes (NaN where the code is 0)."""
    codes = np.asarray(codes).astype(np.float64)
    span = rng.log_max - rng.log_min
    depth = np.exp(rng.log_min + (codes - 1) * (span / LEVELS))
    depth[codes == 0] = np.nan
    return depth.astype(np.float32)


def encode_codes_png(codes: np.ndarray, compress_level: int = 6) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(codes, dtype=np.uint16)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_codes_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        if im.mode not in ("I;16", "I"):
            raise ValueError(f"depth.png: expected a 16-bit greyscale PNG, got mode {im.mode}")
        codes = np.asarray(im)
    if codes.min(initial=0) < 0 or codes.max(initial=0) > 65535:
        raise ValueError("depth.png: values outside 0..65535")
    return codes.astype(np.uint16)


def encode_depth_png(depth: np.ndarray, compress_level: int = 6) -> tuple[bytes, LogRange]:
    """PNG bytes (16-bit greyscale) and the range to record beside them in the JSON."""
    log16 = Log16.of(depth)
    return encode_codes_png(log16.codes, compress_level), log16.range


def decode_depth_png(data: bytes, rng: LogRange) -> np.ndarray:
    return dequantise(decode_codes_png(data), rng)


@dataclass(frozen=True)
class Log16:
    """A depth map as stored: codes and their range. Writers store these codes as they are (any
    PNG level), so depth is quantised once however often a sample is written; quantising the
    decoded float32 values again would not always give the same range and codes."""

    codes: np.ndarray  # uint16 H x W
    range: LogRange
    ENCODING = "log16"

    @classmethod
    def of(cls, depth: np.ndarray) -> Log16:
        rng = log_range(np.asarray(depth))
        return cls(quantise(depth, rng), rng)

    def decode(self) -> np.ndarray:
        return dequantise(self.codes, self.range)

    def encode_member(self, compress_level: int = 1) -> tuple[dict, str, bytes]:
        """(spec, suffix, bytes) of an intermediate shard's member (datagen.store.inflight)."""
        spec = {"shape": list(self.codes.shape), "dtype": "float32", **self.range.to_json()}
        return spec, "png", encode_codes_png(self.codes, compress_level)

    @classmethod
    def from_member(cls, spec: dict, data: bytes) -> Log16:
        return cls(decode_codes_png(data), LogRange(float(spec["log_min"]), float(spec["log_max"])))
