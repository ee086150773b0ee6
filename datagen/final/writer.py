"""Turn a finished in-flight sample into sigma-set members (FORMAT.md): /1 today, and the
encoder of sigma-set/2's five members (`encode_v2`), which the writer switches to next."""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen import __version__
from datagen.store.codec import encode_json, encode_jpg, encode_npy, encode_png, round_floats
from datagen.config import RunConfig
from datagen.store.inflight import Sample
from datagen.recipe.instances import encode_instances
from datagen.schema import (
    DEPTH_PNG_FIELD,
    IDENTITIES_FIELD,
    INSTANCES_FIELD,
    SCHEMA_V2,
    SCHEMA_VERSION,
    SampleMeta,
    crop_field,
    identity_field,
    mask_field,
    routing_intensity,
)
from datagen.store.depth_png import encode_depth_png

# Working keys of the in-flight subject dicts that the format does not carry.
_INTERNAL_SUBJECT_KEYS = ("sid", "truth_box_3d")


def run_id(cfg: RunConfig) -> str:
    # Deterministic, so two runs of one config write the same bytes.
    return f"{cfg.run.name}-{cfg.config_sha256()[:12]}"


def generation_meta(s: Sample) -> dict[str, Any]:
    made = s.meta.get("generation", {})
    out: dict[str, Any] = {"seed": s.seed, "models": made.get("models", {})}
    if made.get("settings"):
        out["settings"] = made["settings"]
    return out


def final_meta(s: Sample, cfg: RunConfig) -> dict[str, Any]:
    subjects = []
    for i, subj in enumerate(s.subjects):
        out = {k: v for k, v in subj.items() if k not in _INTERNAL_SUBJECT_KEYS}
        out["intensity"] = routing_intensity(i)
        subjects.append(out)
    meta: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "key": s.key,
        "width": s.meta["width"],
        "height": s.meta["height"],
        "prompt": s.meta["prompt"],
        "subjects": subjects,
        "camera": s.meta["camera"],
        "depth": s.meta["depth"],
        "generation": generation_meta(s),
        "provenance": {"run_id": run_id(cfg), "config_sha256": cfg.config_sha256(), "datagen_version": __version__},
        "filter": {
            "requested_subjects": s.meta.get("requested_subjects", len(subjects)),
            "rejected_subjects": s.meta.get("rejected_subjects", []),
        },
    }
    if cfg.output.keep_truth and all("truth_box_3d" in subj for subj in s.subjects):
        meta["truth"] = {
            "subjects": [{"name": subj["name"], "box_3d": subj["truth_box_3d"]} for subj in s.subjects]
        }
    meta = round_floats(meta)
    SampleMeta.model_validate(meta)  # the contract, checked on the way out
    return meta


def crop_rgba(image: np.ndarray, mask: np.ndarray, box: list[int]) -> np.ndarray:
    """The subject cut from the target: its 2D box, alpha = mask."""
    x0, y0, x1, y1 = box
    rgba = np.dstack([image[y0:y1, x0:x1], (mask[y0:y1, x0:x1] * 255).astype(np.uint8)])
    return rgba


def final_members(s: Sample, cfg: RunConfig) -> list[tuple[str, bytes]]:
    out = cfg.output
    level = out.png_compress_level
    image = s.array("image", "filter")
    masks = s.array("masks", "filter")
    identity = s.array("identity", "filter")
    meta = final_meta(s, cfg)
    fields: dict[str, bytes] = {
        "json": encode_json(meta),
        "depth.npy": encode_npy(s.array("depth", "filter").astype(np.float32)),
    }
    if out.image_format == "png":
        fields["png"] = encode_png(image, level)
    else:
        fields["jpg"] = encode_jpg(image, out.jpeg_quality)
    for i, subj in enumerate(meta["subjects"]):
        fields[mask_field(i)] = encode_png((masks[i] * 255).astype(np.uint8), level)
        fields[identity_field(i)] = encode_png(identity[i], level)
        if out.write_crops:
            fields[crop_field(i)] = encode_png(crop_rgba(image, masks[i], subj["box_2d"]), level)
    return [(f"{s.key}.{name}", data) for name, data in sorted(fields.items())]


def encode_v2(
    meta: dict[str, Any], image: np.ndarray, masks: np.ndarray, depth: np.ndarray, identities: np.ndarray,
    *, png_level: int = 6, image_format: str = "png", jpeg_quality: int = 95,
) -> dict[str, bytes]:  # fmt: skip
    """sigma-set/2's members of one sample: field -> bytes. `meta` must carry `source` and every
    subject's `identity.source`; `masks` must be exclusive (recipe.instances.exclusive_by_depth)."""
    depth_png, log_range = encode_depth_png(np.asarray(depth, dtype=np.float32), png_level)
    meta = {**meta, "schema": SCHEMA_V2, "depth": {**meta["depth"], **log_range.to_json()}}
    meta = round_floats(meta)
    SampleMeta.model_validate(meta)
    n, (h, w) = len(identities), identities.shape[1:3]
    fields = {
        "json": encode_json(meta),
        DEPTH_PNG_FIELD: depth_png,
        INSTANCES_FIELD: encode_png(encode_instances(list(masks)), png_level),
        IDENTITIES_FIELD: encode_png(np.ascontiguousarray(identities).reshape(n * h, w, 3), png_level),
    }
    if image_format == "png":
        fields["png"] = encode_png(image, png_level)
    else:
        fields["jpg"] = encode_jpg(image, jpeg_quality)
    return dict(sorted(fields.items()))
