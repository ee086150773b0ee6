"""Check final shards against FORMAT.md from the outside: plain tarfile, numpy and PIL.

`datagen validate RUN` runs it; the tests run it on every dataset they build.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from datagen.config import RunConfig
from datagen.errors import UserError
from datagen.recipe.filters import mask_overlap
from datagen.recipe.geometry import mask_box_2d
from datagen.schema import KEY_RE, MEMBER_RE, SampleMeta, identity_field, mask_field
from datagen.recipe.filters import box3d_reason


def _image(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def validate_sample(key: str, fields: dict[str, bytes], cfg: RunConfig) -> list[str]:
    """Every broken invariant of one sample, as readable lines (empty when valid)."""
    errs: list[str] = []
    if "json" not in fields:
        return [f"{key}: no json"]
    meta = json.loads(fields["json"])
    try:
        SampleMeta.model_validate(meta)
    except ValueError as e:
        return [f"{key}: json does not match the schema: {str(e).splitlines()[0]}"]
    if meta["key"] != key:
        errs.append(f"{key}: json key {meta['key']} differs")
    image_field = "png" if "png" in fields else "jpg" if "jpg" in fields else None
    if image_field is None:
        return errs + [f"{key}: no target image"]
    image = _image(fields[image_field])
    w, h = image.size
    if image.mode != "RGB" or (w, h) != (meta["width"], meta["height"]):
        errs.append(f"{key}: image is {image.mode} {w}x{h}, json says {meta['width']}x{meta['height']}")
    depth = np.load(io.BytesIO(fields["depth.npy"]), allow_pickle=False)
    if depth.dtype != np.float32 or depth.shape != (h, w):
        errs.append(f"{key}: depth is {depth.dtype} {depth.shape}")
    subjects = meta["subjects"]
    rules = cfg.filters
    if not rules.min_subjects <= len(subjects) <= rules.max_subjects:
        errs.append(f"{key}: {len(subjects)} subjects, outside [{rules.min_subjects}, {rules.max_subjects}]")
    masks = []
    id_sizes = set()
    for i, subj in enumerate(subjects):
        if subj["intensity"] != 10 * (i + 1):
            errs.append(f"{key}: subject {i} intensity {subj['intensity']}")
        mask_im = _image(fields[mask_field(i)])
        mask = np.asarray(mask_im)
        if mask_im.mode != "L" or mask.shape != (h, w) or not set(np.unique(mask)) <= {0, 255}:
            errs.append(f"{key}: mask {i} must be mode L, {w}x{h}, values 0/255")
        mask = mask > 0
        masks.append(mask)
        if mask_box_2d(mask) != subj["box_2d"]:
            errs.append(f"{key}: subject {i} box_2d {subj['box_2d']} is not the mask's tight box {mask_box_2d(mask)}")
        if not rules.min_box_area_frac <= subj["box_area_frac"] <= rules.max_box_area_frac:
            errs.append(f"{key}: subject {i} box_area_frac {subj['box_area_frac']} out of range")
        ident = _image(fields[identity_field(i)])
        if ident.mode != "RGB" or ident.size != (subj["identity"]["width"], subj["identity"]["height"]):
            errs.append(f"{key}: identity {i} is {ident.mode} {ident.size}")
        id_sizes.add(ident.size)
        why = box3d_reason(subj, meta["camera"], w, h, cfg.filters)
        if why:
            errs.append(f"{key}: subject {i} 3D box breaks the projection invariant ({why})")
    if len(id_sizes) > 1:
        errs.append(f"{key}: identity images differ in size {sorted(id_sizes)}")
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            if mask_overlap(masks[i], masks[j]) > rules.max_mask_overlap:
                errs.append(f"{key}: masks {i} and {j} overlap beyond {rules.max_mask_overlap}")
    return errs


def validate_shard(path: Path, cfg: RunConfig, seen_keys: set[str]) -> tuple[int, list[str]]:
    """(samples, errors) of one final shard; `seen_keys` catches keys repeated across shards."""
    errs: list[str] = []
    samples: dict[str, dict[str, bytes]] = defaultdict(dict)
    order: list[str] = []
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            m = MEMBER_RE.match(info.name)
            if not info.isreg() or m is None:
                errs.append(f"{path.name}: bad member {info.name!r}")
                continue
            key, field = m.groups()
            if key not in samples:
                if key in seen_keys:
                    errs.append(f"{path.name}: key {key} appears in another shard or twice")
                seen_keys.add(key)
                order.append(key)
            elif order[-1] != key:
                errs.append(f"{path.name}: members of {key} are not contiguous")
            samples[key][field] = tar.extractfile(info).read()
    for key in order:
        if not KEY_RE.match(key):
            errs.append(f"{path.name}: bad key {key}")
        errs.extend(validate_sample(key, samples[key], cfg))
    return len(order), errs


def validate_run(run_dir: Path, cfg: RunConfig) -> tuple[int, list[str]]:
    """(samples checked, problems) over every final shard; a run with no sample is an error:
    "0 problems" must never stand for "nothing was looked at"."""
    total = 0
    errs: list[str] = []
    seen: set[str] = set()
    shards = sorted((run_dir / "final").glob("shard-*.tar"))
    if not shards:
        raise UserError(f"{run_dir}: no final shards to validate yet (datagen status {run_dir} shows what is done)")
    for shard in shards:
        n, e = validate_shard(shard, cfg, seen)
        total += n
        errs.extend(e)
    if total == 0 and not errs:
        raise UserError(f"{run_dir}: its {len(shards)} final shard(s) hold no sample to validate (every sample was rejected?)")
    return total, errs
