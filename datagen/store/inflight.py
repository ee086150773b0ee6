"""The in-flight sample that stages pass along, and how it is stored between stages.

A stage's shard holds, per surviving sample, the full metadata (`<key>.json`) and only the
arrays that stage created or changed (`<key>.<array>.png` or `.npy`). A reader takes each
array from the latest earlier stage that wrote it, so an image is stored once, not once per
stage. Images and masks go as fast PNG (masks are mostly zeros: ~50x smaller than raw); depth
as 16-bit log depth PNG (LOG16_ARRAYS); everything else as .npy, never pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datagen.store.codec import decode_image, decode_json, decode_npy, encode_json, encode_npy, encode_png
from datagen.errors import ShardReadError
from datagen.schema import sample_key
from datagen.store.depth_png import Log16
from datagen.store.shards import read_tar

# Arrays with one entry per subject, along axis 0, kept aligned with meta["subjects"].
SUBJECT_ARRAYS = ("masks", "identity")
# Depth maps, stored as 16-bit log depth (datagen.store.depth_png), as in the final shards:
# ~0.1 MB instead of 4 MB at 1024², relative error <= 3.5e-5 for a 100x range. `set_array`
# quantises once and keeps the codes: later stages see the decoded values, the same in memory
# and after a resume, and every writer (this stage's shard, the final one) stores those codes.
LOG16_ARRAYS = ("depth", "truth_depth")


@dataclass
class Sample:
    index: int
    shard: int
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    log16: dict[str, Log16] = field(default_factory=dict)  # codes of the LOG16_ARRAYS

    @property
    def key(self) -> str:
        return sample_key(self.shard, self.index)

    @property
    def subjects(self) -> list[dict[str, Any]]:
        return self.meta.setdefault("subjects", [])

    def set_array(self, name: str, value: np.ndarray | Log16) -> None:
        """Set an array; a depth map (LOG16_ARRAYS) may come as stored codes (Log16), taken as they are."""
        if name in LOG16_ARRAYS:
            self.log16[name] = value if isinstance(value, Log16) else Log16.of(value)
            value = self.log16[name].decode()
        self.arrays[name] = value
        self.changed.add(name)

    def array(self, name: str, stage: str) -> np.ndarray:
        if name not in self.arrays:
            raise KeyError(f"{stage} needs array {name!r}, which no earlier stage produced")
        return self.arrays[name]

    def drop_subjects(self, reasons: dict[int, str], stage: str) -> None:
        """Remove subjects (by position) with a reason, keeping per-subject arrays aligned."""
        if not reasons:
            return
        dropped = self.meta.setdefault("rejected_subjects", [])
        for i in sorted(reasons):
            s = self.subjects[i]
            dropped.append({"name": s["name"], "caption": s["caption"], "stage": stage, "reason": reasons[i]})
        keep = [i for i in range(len(self.subjects)) if i not in reasons]
        self.meta["subjects"] = [self.subjects[i] for i in keep]
        for name in SUBJECT_ARRAYS:
            if name in self.arrays:
                self.set_array(name, self.arrays[name][keep])


@dataclass(frozen=True)
class Rejected:
    key: str
    stage: str
    reason: str


def _as_png_2d(arr: np.ndarray) -> np.ndarray | None:
    """A PNG-able 2D view of masks and images (stacks go vertically), None for anything else."""
    if arr.size == 0:
        return None
    if arr.dtype == bool and arr.ndim >= 2:  # (H, W) or (N, H, W) masks
        return arr.view(np.uint8).reshape(-1, arr.shape[-1])
    if arr.dtype == np.uint8 and arr.ndim == 2:
        return arr
    if arr.dtype == np.uint8 and arr.ndim >= 3 and arr.shape[-1] == 3:  # (H, W, 3) or (N, h, w, 3)
        return arr.reshape(-1, arr.shape[-2], 3)
    return None


def encode_array(arr: np.ndarray) -> tuple[dict[str, Any], str, bytes]:
    """(spec for the json head, member suffix, bytes)."""
    spec: dict[str, Any] = {"shape": list(arr.shape), "dtype": str(arr.dtype)}
    flat = _as_png_2d(arr)
    if flat is not None:
        return spec, "png", encode_png(flat, compress_level=1)
    return spec, "npy", encode_npy(arr)


def decode_array(spec: dict[str, Any], suffix: str, data: bytes) -> np.ndarray:
    if suffix == "npy":
        return decode_npy(data)
    arr = decode_image(data)
    return arr.reshape(spec["shape"]).astype(np.dtype(spec["dtype"]), copy=False)


def write_members(samples: list[Sample]) -> list[tuple[str, bytes]]:
    """Members of an intermediate shard, in a fixed order."""
    members: list[tuple[str, bytes]] = []
    for s in sorted(samples, key=lambda s: s.index):
        encoded = {
            name: s.log16[name].encode_member() if name in s.log16 else encode_array(s.arrays[name])
            for name in sorted(s.changed)
        }
        head = {"index": s.index, "seed": s.seed, "meta": s.meta, "arrays": {n: e[0] for n, e in encoded.items()}}
        members.append((f"{s.key}.json", encode_json(head)))
        for name, (_, suffix, data) in encoded.items():
            members.append((f"{s.key}.{name}.{suffix}", data))
    return members


def read_stage_samples(tars: list[Path], shard: int) -> list[Sample]:
    """Samples of the LAST tar in `tars`, with arrays gathered from all of them (latest wins)."""
    *earlier, last = tars
    contents = [read_tar(p) for p in earlier] + [read_tar(last)]
    samples = []
    for key, fields in sorted(contents[-1].items()):
        if "json" not in fields:
            raise ShardReadError(f"{last}: sample {key} has no json member")
        try:
            head = decode_json(fields["json"])
            sample = Sample(index=int(head["index"]), shard=shard, seed=int(head["seed"]), meta=head["meta"])
        except (ValueError, KeyError, TypeError) as e:
            raise ShardReadError(f"{last}: sample {key} has unreadable json ({e.__class__.__name__})") from None
        if sample.key != key:
            raise ShardReadError(f"{last}: member key {key} does not match its json index {sample.index}")
        for path, tar in zip(tars, contents, strict=True):
            members = tar.get(key, {})
            if "json" not in members:
                continue
            try:
                specs = (head if tar is contents[-1] else decode_json(members["json"])).get("arrays", {})
                for name, spec in specs.items():
                    suffix = "png" if f"{name}.png" in members else "npy"
                    if spec.get("encoding") == Log16.ENCODING:
                        sample.log16[name] = Log16.from_member(spec, members[f"{name}.png"])
                        sample.arrays[name] = sample.log16[name].decode()
                    else:
                        sample.arrays[name] = decode_array(spec, suffix, members[f"{name}.{suffix}"])
            except (ValueError, KeyError, TypeError, OSError) as e:
                raise ShardReadError(f"{path}: sample {key}: bad array ({e.__class__.__name__}: {e})") from None
        samples.append(sample)
    return samples
