"""The in-flight sample that stages pass along, and how it is stored between stages.

A stage's shard holds, per surviving sample, the full metadata (`<key>.json`) and only the
arrays that stage created or changed (`<key>.<array>.npy`). A reader takes each array from
the latest earlier stage that wrote it, so an image is stored once, not once per stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datagen.codec import decode_json, decode_npy, encode_json, encode_npy
from datagen.errors import ShardReadError
from datagen.schema import sample_key
from datagen.shards import read_tar

# Arrays with one entry per subject, along axis 0, kept aligned with meta["subjects"].
SUBJECT_ARRAYS = ("masks", "identity")


@dataclass
class Sample:
    index: int
    shard: int
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        return sample_key(self.shard, self.index)

    @property
    def subjects(self) -> list[dict[str, Any]]:
        return self.meta.setdefault("subjects", [])

    def set_array(self, name: str, value: np.ndarray) -> None:
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


def write_members(samples: list[Sample]) -> list[tuple[str, bytes]]:
    """Members of an intermediate shard, in a fixed order."""
    members: list[tuple[str, bytes]] = []
    for s in sorted(samples, key=lambda s: s.index):
        head = {"index": s.index, "seed": s.seed, "meta": s.meta}
        members.append((f"{s.key}.json", encode_json(head)))
        for name in sorted(s.changed):
            members.append((f"{s.key}.{name}.npy", encode_npy(s.arrays[name])))
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
        for tar in contents:
            for name, data in tar.get(key, {}).items():
                if name.endswith(".npy"):
                    try:
                        sample.arrays[name.removesuffix(".npy")] = decode_npy(data)
                    except ValueError as e:
                        raise ShardReadError(f"{last}: sample {key}: bad array {name} ({e})") from None
        samples.append(sample)
    return samples
