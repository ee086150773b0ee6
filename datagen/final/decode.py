"""Decode one final sample (sigma-set/1 or /2) from its raw members, checking it as it goes.

Shared by the trainer, `datagen sample`, the exporter and the viewers: whatever the version,
they get the same arrays (per-subject masks, metric depth, identity images). Only the fields
FORMAT.md names are decoded, each by its own handler (PIL for images, `numpy.load(allow_pickle=
False)` for /1 depth, log16 for /2 depth): nothing is ever unpickled.
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

from datagen.recipe.instances import decode_instances
from datagen.schema import (
    DEPTH_FIELD,
    DEPTH_PNG_FIELD,
    IDENTITIES_FIELD,
    IMAGE_FIELDS,
    INSTANCES_FIELD,
    JSON_FIELD,
    READABLE_SCHEMAS,
    SCHEMA_V2,
    SampleMeta,
    identity_field,
    mask_field,
)
from datagen.store.depth_png import LogRange, decode_depth_png

MASK_RE = re.compile(r"^mask_\d+\.png$")
ID_RE = re.compile(r"^id_\d+\.png$")
# Errors PIL raises on a corrupt or truncated image (zlib.error escapes from some PNG chunks).
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, zlib.error, Image.DecompressionBombError)


class BadSample(ValueError):
    """A sample that breaks sigma-set; `reason` is the counter it lands in."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class WrongSchema(BadSample):
    def __init__(self, found: Any):
        super().__init__("schema", f"schema {found!r}, expected one of {', '.join(READABLE_SCHEMAS)}")
        self.found = found



def _image(data: bytes, mode: str, what: str, size: tuple[int, int] | None, exact_mode: bool = False) -> np.ndarray:
    """Decode one image member; `size` (w, h) checked before the pixels are decoded. `exact_mode`:
    the stored mode must be `mode` (an instance map converted from RGB would give wrong masks)."""
    try:
        im = Image.open(io.BytesIO(data))
        found, stored = im.size, im.mode
        if (size is None or found == size) and (stored == mode or not exact_mode):
            im.load()
            return np.asarray(im.convert(mode))
    except _IMAGE_ERRORS as e:
        raise BadSample("image", f"{what}: undecodable ({e.__class__.__name__}: {e})") from None
    if exact_mode and stored != mode:
        raise BadSample("image", f"{what} is mode {stored}, expected {mode}")
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
    if meta.get("schema") not in READABLE_SCHEMAS:
        raise WrongSchema(meta.get("schema"))
    try:
        SampleMeta.model_validate(meta)
    except ValidationError as e:
        first = e.errors()[0]
        raise BadSample("json", f"json breaks {meta['schema']} at {'.'.join(map(str, first['loc'])) or '(top level)'}: {first['msg']}") from None
    if meta["key"] != key:
        raise BadSample("json", f"json key {meta['key']!r} is not the member key {key!r}")
    if not meta["subjects"]:
        raise BadSample("count", "no subjects")
    return meta


def decode_sample(members: dict[str, bytes], key: str) -> dict:
    """One sample's raw members -> {key, json, image (H,W,3) uint8, masks (N,H,W) bool,
    depth (H,W) float32, identities (N,h,w,3) uint8}, for sigma-set/1 and /2 alike. Raises
    BadSample. Other members (crops, control.png, anything unknown, `__url__`-style keys) are
    ignored, never decoded."""
    meta = _meta(members, key)
    decode = _decode_v2 if meta["schema"] == SCHEMA_V2 else _decode_v1
    return {"key": key, "json": meta, **decode(meta, members)}


def _target(meta: dict, members: dict[str, bytes]) -> np.ndarray:
    image_field = next((f for f in IMAGE_FIELDS if f in members), None)
    if image_field is None:
        raise BadSample("missing", "no png or jpg target image")
    return _image(members[image_field], "RGB", image_field, (int(meta["width"]), int(meta["height"])))


def decode_geometry(meta: dict, members: dict[str, bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(masks (N,H,W) bool, depth (H,W) float32) of a sample whose checked json is `meta`, either
    version, decoding no other member: what figures of masks and depth need (`status --report`)."""
    return (_geometry_v2 if meta["schema"] == SCHEMA_V2 else _geometry_v1)(meta, members)


def _geometry_v2(meta: dict, members: dict[str, bytes]) -> tuple[np.ndarray, np.ndarray]:
    n, w, h = len(meta["subjects"]), int(meta["width"]), int(meta["height"])
    missing = [f for f in (DEPTH_PNG_FIELD, INSTANCES_FIELD) if f not in members]
    if missing:
        raise BadSample("missing", f"no {', '.join(missing)}")
    try:
        depth = decode_depth_png(members[DEPTH_PNG_FIELD], LogRange(meta["depth"]["log_min"], meta["depth"]["log_max"]))
    except _IMAGE_ERRORS as e:
        raise BadSample("depth", f"{DEPTH_PNG_FIELD} unreadable ({e.__class__.__name__}: {e})") from None
    if depth.shape != (h, w):
        raise BadSample("shape", f"{DEPTH_PNG_FIELD} is {depth.shape[1]}x{depth.shape[0]}, expected {w}x{h}")
    instances = _image(members[INSTANCES_FIELD], "L", INSTANCES_FIELD, (w, h), exact_mode=True)
    try:
        masks = np.stack(decode_instances(instances, n))
    except ValueError as e:
        raise BadSample("count", str(e)) from None
    return masks, depth


def _geometry_v1(meta: dict, members: dict[str, bytes]) -> tuple[np.ndarray, np.ndarray]:
    n, w, h = len(meta["subjects"]), int(meta["width"]), int(meta["height"])
    missing = [f for f in [mask_field(i) for i in range(n)] if f not in members]
    if missing:
        raise BadSample("count", f"missing {', '.join(missing)}")
    if DEPTH_FIELD not in members:
        raise BadSample("missing", "no depth.npy")
    try:
        depth = np.load(io.BytesIO(members[DEPTH_FIELD]), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BadSample("depth", f"depth.npy unreadable ({e.__class__.__name__}: {e})") from None
    if not isinstance(depth, np.ndarray) or depth.dtype.kind != "f" or depth.shape != (h, w):
        raise BadSample("shape", f"depth.npy is {getattr(depth, 'dtype', '?')} {getattr(depth, 'shape', '?')}, expected float {h}x{w}")  # fmt: skip
    masks = np.stack([_image(members[mask_field(i)], "L", mask_field(i), (w, h)) > 127 for i in range(n)])
    return masks, depth.astype(np.float32, copy=False)


def _decode_v2(meta: dict, members: dict[str, bytes]) -> dict:
    n = len(meta["subjects"])
    if IDENTITIES_FIELD not in members:
        raise BadSample("missing", f"no {IDENTITIES_FIELD}")
    image = _target(meta, members)
    masks, depth = _geometry_v2(meta, members)
    size = meta["subjects"][0]["identity"]
    if any(s["identity"]["width"] != size["width"] or s["identity"]["height"] != size["height"] for s in meta["subjects"]):
        raise BadSample("shape", "identity sizes differ between subjects")
    stacked = _image(members[IDENTITIES_FIELD], "RGB", IDENTITIES_FIELD, (size["width"], n * size["height"]))
    identities = stacked.reshape(n, size["height"], size["width"], 3)
    return {"image": image, "masks": masks, "depth": depth, "identities": identities}


def _decode_v1(meta: dict, members: dict[str, bytes]) -> dict:
    n = len(meta["subjects"])
    fields = set(members)
    n_masks, n_ids = sum(bool(MASK_RE.match(f)) for f in fields), sum(bool(ID_RE.match(f)) for f in fields)
    if n_masks != n or n_ids != n:
        raise BadSample("count", f"{n} subjects but {n_masks} masks and {n_ids} identity images")
    missing = [identity_field(i) for i in range(n) if identity_field(i) not in fields]
    if missing:
        raise BadSample("count", f"missing {', '.join(missing)}")
    image = _target(meta, members)
    masks, depth = _geometry_v1(meta, members)
    ids = [_image(members[identity_field(i)], "RGB", identity_field(i), None) for i in range(n)]
    if len({x.shape for x in ids}) != 1:
        raise BadSample("shape", f"identity images differ in size: {sorted({x.shape[:2] for x in ids})}")
    return {"image": image, "masks": masks, "depth": depth, "identities": np.stack(ids)}
