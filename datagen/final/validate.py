"""Check final shards against FORMAT.md from the outside: plain tarfile, numpy and PIL.

`datagen validate RUN` runs it; the tests run it on every dataset they build. A sigma-set/1
sample is checked member by member as /1 stores it; a sigma-set/2 sample is decoded by the one
decoder (datagen.final.decode, which refuses what it cannot read: a missing member, an
instance value above N, an 8-bit depth.png, an identities.png of the wrong size, a json that
breaks /2's promises) and its decoded masks are then held to /2's invariants. Every problem is
one line naming the sample key.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from datagen.config import RunConfig
from datagen.errors import UserError
from datagen.final.decode import BadSample, decode_sample
from datagen.recipe.filters import box3d_reason, mask_figures, mask_overlap
from datagen.recipe.geometry import mask_box_2d
from datagen.schema import (
    DEPTH_FIELD,
    DEPTH_PNG_FIELD,
    IDENTITIES_FIELD,
    IMAGE_FIELDS,
    INSTANCES_FIELD,
    JSON_FIELD,
    KEY_RE,
    MEMBER_RE,
    SCHEMA_V2,
    SampleMeta,
    identity_field,
    mask_field,
)

CONTROL_FIELD = "control.png"  # optional in /2: written for every sample of a run or for none
V2_FIELDS = (JSON_FIELD, DEPTH_PNG_FIELD, INSTANCES_FIELD, IDENTITIES_FIELD)  # + the target image
AREA_TOLERANCE = 1e-6  # the json keeps 6 decimals


def _image(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _mode(data: bytes) -> str:
    """An image member's mode, from its header alone (called once the decoder has read it)."""
    with Image.open(io.BytesIO(data)) as im:
        return im.mode


@dataclass
class RunChecks:
    """What must agree across a run: unique keys, and /2's per-run choices (png or jpg, control.png)."""

    seen_keys: set[str] = field(default_factory=set)
    image_field: dict[str, str] = field(default_factory=dict)  # /2 sample key -> png | jpg
    control: dict[str, str] = field(default_factory=dict)  # /2 sample key -> control.png | no control.png

    def problems(self) -> list[str]:
        return _mixed(self.image_field, "a /2 run stores one target format") + _mixed(
            self.control, "a /2 run writes control.png for every sample or for none"
        )


def _mixed(by_key: dict[str, str], rule: str) -> list[str]:
    """One line per sample outside the run's majority choice."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key, value in by_key.items():
        groups[value].append(key)
    if len(groups) < 2:
        return []
    common = max(sorted(groups), key=lambda v: len(groups[v]))
    n = len(groups[common])
    return [f"{key}: has {value} but {n} samples of the run have {common} ({rule})"
            for value in sorted(groups) if value != common for key in groups[value]]  # fmt: skip


def validate_sample(key: str, fields: dict[str, bytes], cfg: RunConfig, run: RunChecks | None = None) -> list[str]:
    """Every broken invariant of one sample, as readable lines (empty when valid)."""
    if JSON_FIELD not in fields:
        return [f"{key}: no json"]
    try:
        meta = json.loads(fields[JSON_FIELD])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return [f"{key}: bad json ({e})"]
    if isinstance(meta, dict) and meta.get("schema") == SCHEMA_V2:
        return _validate_v2(key, fields, cfg, run or RunChecks())
    return _validate_v1(key, fields, meta, cfg)


def _subject_rules(key: str, meta: dict, cfg: RunConfig) -> list[str]:
    """The rules /1 and /2 share that need no pixels: count, intensity, box area range, 3D box."""
    errs: list[str] = []
    subjects, rules = meta["subjects"], cfg.filters
    if not rules.min_subjects <= len(subjects) <= rules.max_subjects:
        errs.append(f"{key}: {len(subjects)} subjects, outside [{rules.min_subjects}, {rules.max_subjects}]")
    for i, subj in enumerate(subjects):
        if subj["intensity"] != 10 * (i + 1):
            errs.append(f"{key}: subject {i} intensity {subj['intensity']}")
        if not rules.min_box_area_frac <= subj["box_area_frac"] <= rules.max_box_area_frac:
            errs.append(f"{key}: subject {i} box_area_frac {subj['box_area_frac']} out of range")
        why = box3d_reason(subj, meta["camera"], meta["width"], meta["height"], rules)
        if why:
            errs.append(f"{key}: subject {i} 3D box breaks the projection invariant ({why})")
    return errs


# --- sigma-set/2 -----------------------------------------------------------------------------


def _v2_members(key: str, fields: dict[str, bytes]) -> tuple[list[str], bool]:
    """(problems, complete): exactly the five members, plus control.png when the run writes it."""
    images = [f for f in IMAGE_FIELDS if f in fields]
    missing = [f for f in V2_FIELDS if f not in fields] + ([] if images else ["png or jpg"])
    extra = sorted(set(fields) - set(V2_FIELDS) - set(images[:1]) - {CONTROL_FIELD})
    errs = []
    if missing:
        errs.append(f"{key}: sigma-set/2 sample lacks {', '.join(missing)}")
    if extra:
        errs.append(f"{key}: sigma-set/2 sample has members beyond its five: {', '.join(extra)}")
    return errs, not missing


def _validate_v2(key: str, fields: dict[str, bytes], cfg: RunConfig, run: RunChecks) -> list[str]:
    errs, complete = _v2_members(key, fields)
    if not complete:
        return errs
    run.image_field[key] = next(f for f in IMAGE_FIELDS if f in fields)
    run.control[key] = CONTROL_FIELD if CONTROL_FIELD in fields else f"no {CONTROL_FIELD}"
    try:
        sample = decode_sample(fields, key)
    except BadSample as e:
        return errs + [f"{key}: {e}"]
    # The decoder converts images to the mode it needs: the stored modes are checked here.
    for name, mode in ((run.image_field[key], "RGB"), (IDENTITIES_FIELD, "RGB")):  # instances: the decoder's
        found = _mode(fields[name])
        if found != mode:
            errs.append(f"{key}: {name} is mode {found}, expected {mode}")
    meta, masks = sample["json"], sample["masks"]
    h, w = masks.shape[1:]
    errs += _subject_rules(key, meta, cfg)
    for i, subj in enumerate(meta["subjects"]):
        figures = mask_figures(masks[i], w, h)  # what the writer records
        box = figures["box_2d"]
        if box is None:
            errs.append(f"{key}: subject {i} has an empty mask (no pixel of {INSTANCES_FIELD} is {i + 1})")
            continue
        if box != subj["box_2d"]:
            errs.append(f"{key}: subject {i} box_2d {subj['box_2d']} is not the tight box {box} of {INSTANCES_FIELD} == {i + 1}")
        for name in ("mask_area_frac", "box_area_frac"):
            if abs(round(figures[name], 6) - subj[name]) > AREA_TOLERANCE:
                errs.append(f"{key}: subject {i} {name} {subj[name]} differs from its instance mask's {round(figures[name], 6)}")
    return errs


# --- sigma-set/1 -----------------------------------------------------------------------------


def _validate_v1(key: str, fields: dict[str, bytes], meta: Any, cfg: RunConfig) -> list[str]:
    errs: list[str] = []
    try:
        SampleMeta.model_validate(meta)
    except ValueError as e:
        return [f"{key}: json does not match the schema: {str(e).splitlines()[0]}"]
    if meta["key"] != key:
        errs.append(f"{key}: json key {meta['key']} differs")
    image_field = "png" if "png" in fields else "jpg" if "jpg" in fields else None
    if image_field is None:
        return errs + [f"{key}: no target image"]
    subjects = meta["subjects"]
    needed = [DEPTH_FIELD, *(g(i) for g in (mask_field, identity_field) for i in range(len(subjects)))]
    missing = [f for f in needed if f not in fields]
    if missing:
        return errs + [f"{key}: sigma-set/1 sample lacks {', '.join(missing)}"]
    image = _image(fields[image_field])
    w, h = image.size
    if image.mode != "RGB" or (w, h) != (meta["width"], meta["height"]):
        errs.append(f"{key}: image is {image.mode} {w}x{h}, json says {meta['width']}x{meta['height']}")
    depth = np.load(io.BytesIO(fields[DEPTH_FIELD]), allow_pickle=False)
    if depth.dtype != np.float32 or depth.shape != (h, w):
        errs.append(f"{key}: depth is {depth.dtype} {depth.shape}")
    errs += _subject_rules(key, meta, cfg)
    masks = []
    id_sizes = set()
    for i, subj in enumerate(subjects):
        mask_im = _image(fields[mask_field(i)])
        mask = np.asarray(mask_im)
        if mask_im.mode != "L" or mask.shape != (h, w) or not set(np.unique(mask)) <= {0, 255}:
            errs.append(f"{key}: mask {i} must be mode L, {w}x{h}, values 0/255")
        mask = mask > 0
        masks.append(mask)
        if mask_box_2d(mask) != subj["box_2d"]:
            errs.append(f"{key}: subject {i} box_2d {subj['box_2d']} is not the mask's tight box {mask_box_2d(mask)}")
        ident = _image(fields[identity_field(i)])
        if ident.mode != "RGB" or ident.size != (subj["identity"]["width"], subj["identity"]["height"]):
            errs.append(f"{key}: identity {i} is {ident.mode} {ident.size}")
        id_sizes.add(ident.size)
    if len(id_sizes) > 1:
        errs.append(f"{key}: identity images differ in size {sorted(id_sizes)}")
    rules = cfg.filters
    for i in range(len(masks)):  # /2's instance map makes masks exclusive: overlap is /1's to check
        for j in range(i + 1, len(masks)):
            if mask_overlap(masks[i], masks[j]) > rules.max_mask_overlap:
                errs.append(f"{key}: masks {i} and {j} overlap beyond {rules.max_mask_overlap}")
    return errs


# --- shards and runs -------------------------------------------------------------------------


def validate_shard(path: Path, cfg: RunConfig, run: RunChecks) -> tuple[int, list[str]]:
    """(samples, errors) of one final shard; `run` catches keys repeated across shards."""
    errs: list[str] = []
    samples: dict[str, dict[str, bytes]] = defaultdict(dict)
    order: list[str] = []
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            m = MEMBER_RE.match(info.name)
            if not info.isreg() or m is None:
                errs.append(f"{path.name}: bad member {info.name!r}")
                continue
            key, name = m.groups()
            if key not in samples:
                if key in run.seen_keys:
                    errs.append(f"{path.name}: key {key} appears in another shard or twice")
                run.seen_keys.add(key)
                order.append(key)
            elif order[-1] != key:
                errs.append(f"{path.name}: members of {key} are not contiguous")
            samples[key][name] = tar.extractfile(info).read()
    for key in order:
        if not KEY_RE.match(key):
            errs.append(f"{path.name}: bad key {key}")
        errs.extend(validate_sample(key, samples[key], cfg, run))
    return len(order), errs


def validate_run(run_dir: Path, cfg: RunConfig) -> tuple[int, list[str]]:
    """(samples checked, problems) over every final shard; a run with no sample is an error:
    "0 problems" must never stand for "nothing was looked at"."""
    total = 0
    errs: list[str] = []
    run = RunChecks()
    shards = sorted((run_dir / "final").glob("shard-*.tar"))
    if not shards:
        raise UserError(f"{run_dir}: no final shards to validate yet (datagen status {run_dir} shows what is done)")
    for shard in shards:
        n, e = validate_shard(shard, cfg, run)
        total += n
        errs.extend(e)
    if total == 0 and not errs:
        raise UserError(f"{run_dir}: its {len(shards)} final shard(s) hold no sample to validate (every sample was rejected?)")
    return total, errs + run.problems()
