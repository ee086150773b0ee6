"""Turn a finished in-flight sample into sigma-set/2 members (FORMAT.md): target, json, log16
depth, instance map and stacked identities (`encode_v2`, shared with `datagen ingest`-style
writers and tests). No crops: readers derive them (`crop_rgba`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen import __version__
from datagen.store.codec import encode_json, encode_jpg, encode_png, round_floats
from datagen.config import RunConfig
from datagen.store.inflight import Sample
from datagen.recipe.instances import encode_instances
from datagen.schema import DEPTH_PNG_FIELD, IDENTITIES_FIELD, INSTANCES_FIELD, SCHEMA_V2, SampleMeta, routing_intensity
from datagen.store.depth_png import Log16, LogRange, encode_codes_png

# Working keys of the in-flight subject dicts that the format does not carry.
_INTERNAL_SUBJECT_KEYS = ("sid", "truth_box_3d")


def run_id(cfg: RunConfig) -> str:
    # Deterministic, so two runs of one config write the same bytes.
    return f"{cfg.run.name}-{cfg.config_sha256()[:12]}"


def generation_meta(s: Sample, split: str) -> dict[str, Any]:
    made = s.meta.get("generation", {})
    out: dict[str, Any] = {"seed": s.seed, "split": split, "models": made.get("models", {})}
    if made.get("settings"):
        out["settings"] = made["settings"]
    return out


def final_meta(s: Sample, cfg: RunConfig) -> dict[str, Any]:
    """The sample's json, less what encode_v2 adds (schema, depth range)."""
    subjects = []
    for i, subj in enumerate(s.subjects):
        out = {k: v for k, v in subj.items() if k not in _INTERNAL_SUBJECT_KEYS}
        out["intensity"] = routing_intensity(i)
        out["identity"] = {**out["identity"], "source": out["identity"].get("source", "repose")}
        subjects.append(out)
    rid = run_id(cfg)
    meta: dict[str, Any] = {
        "key": s.key,
        "width": s.meta["width"],
        "height": s.meta["height"],
        "prompt": s.meta["prompt"],
        "subjects": subjects,
        "camera": s.meta["camera"],
        "depth": s.meta["depth"],
        "source": s.meta.get("source", {"kind": "generated", "dataset": rid, "id": s.key}),
        "generation": generation_meta(s, cfg.run.split),
        "provenance": {"run_id": rid, "config_sha256": cfg.config_sha256(), "datagen_version": __version__},
        "filter": {
            "requested_subjects": s.meta.get("requested_subjects", len(subjects)),
            "rejected_subjects": s.meta.get("rejected_subjects", []),
        },
    }
    if cfg.output.keep_truth and all("truth_box_3d" in subj for subj in s.subjects):
        meta["truth"] = {
            "subjects": [{"name": subj["name"], "box_3d": subj["truth_box_3d"]} for subj in s.subjects]
        }
    return meta


def crop_rgba(image: np.ndarray, mask: np.ndarray, box: list[int]) -> np.ndarray:
    """The subject cut from the target: its 2D box, alpha = mask (sigma-set/2 derives crops)."""
    x0, y0, x1, y1 = box
    rgba = np.dstack([image[y0:y1, x0:x1], (mask[y0:y1, x0:x1] * 255).astype(np.uint8)])
    return rgba


def final_members(s: Sample, cfg: RunConfig) -> list[tuple[str, bytes]]:
    """One finished sample as sigma-set/2 members, in a fixed order."""
    out = cfg.output
    depth = s.log16.get("depth") or Log16.of(s.array("depth", "filter"))
    fields = encode_v2(
        final_meta(s, cfg), s.array("image", "filter"), s.array("masks", "filter"), depth,
        s.array("identity", "filter"), png_level=out.png_compress_level, image_format=out.image_format,
        jpeg_quality=out.jpeg_quality,
    )  # fmt: skip
    return [(f"{s.key}.{name}", data) for name, data in fields.items()]


def geometry_members(
    masks: np.ndarray, depth: np.ndarray | Log16, identities: np.ndarray, png_level: int = 6
) -> tuple[dict[str, bytes], LogRange]:
    """depth.png, instances.png and identities.png of one sample, and the depth range its json
    records. `masks` must be exclusive; `depth` in metres, or already quantised (Log16: its codes
    are stored as they are)."""
    log16 = depth if isinstance(depth, Log16) else Log16.of(np.asarray(depth, dtype=np.float32))
    n, (h, w) = len(identities), identities.shape[1:3]
    members = {
        DEPTH_PNG_FIELD: encode_codes_png(log16.codes, png_level),
        INSTANCES_FIELD: encode_png(encode_instances(list(masks)), png_level),
        IDENTITIES_FIELD: encode_png(np.ascontiguousarray(identities).reshape(n * h, w, 3), png_level),
    }
    return members, log16.range


def encode_v2(
    meta: dict[str, Any], image: np.ndarray, masks: np.ndarray, depth: np.ndarray | Log16, identities: np.ndarray,
    *, png_level: int = 6, image_format: str = "png", jpeg_quality: int = 95,
) -> dict[str, bytes]:  # fmt: skip
    """sigma-set/2's members of one sample: field -> bytes. `meta` must carry `source` and every
    subject's `identity.source`; `masks` must be exclusive (recipe.instances.exclusive_by_depth);
    `depth` in metres, or already quantised (Log16: its codes are stored as they are)."""
    fields, log_range = geometry_members(masks, depth, identities, png_level)
    meta = round_floats({**meta, "schema": SCHEMA_V2, "depth": {**meta["depth"], **log_range.to_json()}})
    SampleMeta.model_validate(meta)
    fields["json"] = encode_json(meta)
    if image_format == "png":
        fields["png"] = encode_png(image, png_level)
    else:
        fields["jpg"] = encode_jpg(image, jpeg_quality)
    return dict(sorted(fields.items()))
