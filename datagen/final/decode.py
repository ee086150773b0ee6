"""Decode one final (sigma-set/1) sample from its raw members, checking it as it goes.

Shared by the trainer, `datagen sample`, the exporter and the viewers. Only the fields FORMAT.md
names are decoded, each by its own handler (PIL for images, `numpy.load(allow_pickle=False)`
for depth): nothing is ever unpickled.
"""

from __future__ import annotations

import io
import json
import re
import zlib
from typing import Any

import numpy as np
from PIL import Image
from pydantic import ValidationError

from datagen.schema import (
    DEPTH_FIELD,
    IMAGE_FIELDS,
    JSON_FIELD,
    SCHEMA_VERSION,
    SampleMeta,
    identity_field,
    mask_field,
)

MASK_RE = re.compile(r"^mask_\d+\.png$")
ID_RE = re.compile(r"^id_\d+\.png$")
# Errors PIL raises on a corrupt or truncated image (zlib.error escapes from some PNG chunks).
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, zlib.error, Image.DecompressionBombError)


class BadSample(ValueError):
    """A sample that breaks sigma-set/1; `reason` is the counter it lands in."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class WrongSchema(BadSample):
    def __init__(self, found: Any):
        super().__init__("schema", f"schema {found!r}, expected {SCHEMA_VERSION!r}")
        self.found = found



def _image(data: bytes, mode: str, what: str, size: tuple[int, int] | None) -> np.ndarray:
    """Decode one image member; `size` (w, h) checked before the pixels are decoded."""
    try:
        im = Image.open(io.BytesIO(data))
        found = im.size
        if size is None or found == size:
            im.load()
            return np.asarray(im.convert(mode))
    except _IMAGE_ERRORS as e:
        raise BadSample("image", f"{what}: undecodable ({e.__class__.__name__}: {e})") from None
    raise BadSample("shape", f"{what} is {found[0]}x{found[1]}, expected {size[0]}x{size[1]}")


def _meta(members: dict[str, bytes], key: str) -> dict:
    if JSON_FIELD not in members:
        raise BadSample("missing", "no json member")
    try:
        meta = json.loads(members[JSON_FIELD])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadSample("json", f"bad json: {e}") from None
    if not isinstance(meta, dict):
        raise BadSample("json", "json is not an object")
    if meta.get("schema") != SCHEMA_VERSION:
        raise WrongSchema(meta.get("schema"))
    try:
        SampleMeta.model_validate(meta)
    except ValidationError as e:
        first = e.errors()[0]
        raise BadSample("json", f"json breaks sigma-set/1 at {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    if meta["key"] != key:
        raise BadSample("json", f"json key {meta['key']!r} is not the member key {key!r}")
    if not meta["subjects"]:
        raise BadSample("count", "no subjects")
    return meta


def decode_sample(members: dict[str, bytes], key: str) -> dict:
    """One sample's raw members -> {key, json, image (H,W,3) uint8, masks (N,H,W) bool,
    depth (H,W) float32, identities (N,h,w,3) uint8}. Raises BadSample. Other members (crops,
    control.png, anything unknown, `__url__`-style keys) are ignored, never decoded."""
    meta = _meta(members, key)
    n, w, h = len(meta["subjects"]), int(meta["width"]), int(meta["height"])
    fields = set(members)
    n_masks, n_ids = sum(bool(MASK_RE.match(f)) for f in fields), sum(bool(ID_RE.match(f)) for f in fields)
    if n_masks != n or n_ids != n:
        raise BadSample("count", f"{n} subjects but {n_masks} masks and {n_ids} identity images")
    missing = [f for f in [mask_field(i) for i in range(n)] + [identity_field(i) for i in range(n)] if f not in fields]
    if missing:
        raise BadSample("count", f"missing {', '.join(missing)}")
    image_field = next((f for f in IMAGE_FIELDS if f in fields), None)
    if image_field is None:
        raise BadSample("missing", "no png or jpg target image")
    image = _image(members[image_field], "RGB", image_field, (w, h))
    if DEPTH_FIELD not in fields:
        raise BadSample("missing", "no depth.npy")
    try:
        depth = np.load(io.BytesIO(members[DEPTH_FIELD]), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BadSample("depth", f"depth.npy unreadable ({e.__class__.__name__}: {e})") from None
    if not isinstance(depth, np.ndarray) or depth.dtype.kind != "f" or depth.shape != (h, w):
        raise BadSample("shape", f"depth.npy is {getattr(depth, 'dtype', '?')} {getattr(depth, 'shape', '?')}, expected float {h}x{w}")  # fmt: skip
    masks = np.stack([_image(members[mask_field(i)], "L", mask_field(i), (w, h)) > 127 for i in range(n)])
    ids = [_image(members[identity_field(i)], "RGB", identity_field(i), None) for i in range(n)]
    if len({x.shape for x in ids}) != 1:
        raise BadSample("shape", f"identity images differ in size: {sorted({x.shape[:2] for x in ids})}")
    return {"key": key, "json": meta, "image": image, "masks": masks, "depth": depth.astype(np.float32, copy=False), "identities": np.stack(ids)}  # fmt: skip
