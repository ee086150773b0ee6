"""Byte-stable encodings: the same array or object always gives the same bytes."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image


def encode_json(obj: Any) -> bytes:
    # Sorted keys and fixed separators: key order never depends on how a dict was built.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode_json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def encode_npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    # allow_pickle=False: a data file must never be able to run code.
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_png(arr: np.ndarray, compress_level: int = 6) -> bytes:
    buf = io.BytesIO()
    # PIL writes no timestamps or text chunks unless asked, so the bytes depend on pixels only.
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def encode_jpg(arr: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert(im.mode)).copy()


def round_floats(obj: Any, ndigits: int = 6) -> Any:
    """Round every float in a JSON-able tree: keeps files small and byte-stable."""
    if isinstance(obj, float):
        return round(obj, ndigits) + 0.0  # + 0.0 turns -0.0 into 0.0
    if isinstance(obj, dict):
        return {k: round_floats(v, ndigits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [round_floats(v, ndigits) for v in obj]
    if isinstance(obj, np.floating):
        return round(float(obj), ndigits) + 0.0
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
