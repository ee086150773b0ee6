"""Read a finished run's final samples: for export, the contact sheet, the browser and reports.

Member names are checked on read (shards.read_tar), every sample is decoded and checked by
datagen.final.decode, and a user mistake (no run, no final shards, an unknown key, a broken shard) is
one UserError line naming the run, shard or key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datagen.errors import ShardReadError, UserError
from datagen.final.decode import BadSample, decode_sample
from datagen.pipeline.markers import final_shard_states, read_marker
from datagen.store.paths import RunPaths, stats_beside
from datagen.final.writer import crop_rgba
from datagen.schema import KEY_RE, SCHEMA_V1, crop_field, identity_field, mask_field
from datagen.store.codec import encode_png
from datagen.store.shards import read_tar


@dataclass
class FinalSample:
    """One decoded final sample. `meta` is its JSON; arrays as datagen.final.decode returns them."""

    key: str
    shard: Path
    meta: dict[str, Any]
    image: np.ndarray  # (H, W, 3) uint8
    masks: np.ndarray  # (N, H, W) bool, in identity order
    depth: np.ndarray  # (H, W) float32 metres, NaN/inf where unknown
    identities: np.ndarray  # (N, h, w, 3) uint8
    members: dict[str, bytes]  # the raw members, e.g. to copy PNGs without re-encoding

    @property
    def subjects(self) -> list[dict[str, Any]]:
        return self.meta["subjects"]

    @property
    def schema(self) -> str:
        return self.meta["schema"]

    def mask_png(self, i: int) -> bytes:
        """Subject i's mask as a PNG (0/255): stored in /1, derived from instances.png in /2."""
        if self.schema == SCHEMA_V1:
            return self.members[mask_field(i)]
        return encode_png((self.masks[i] * 255).astype(np.uint8))

    def identity_png(self, i: int) -> bytes:
        """Subject i's identity image as a PNG: stored in /1, cut from identities.png in /2."""
        if self.schema == SCHEMA_V1:
            return self.members[identity_field(i)]
        return encode_png(self.identities[i])

    def crop(self, i: int) -> bytes | None:
        """Subject i's RGBA crop PNG: as stored in /1 (None when the run wrote no crops),
        derived in /2 (the target inside box_2d, alpha = the subject's exclusive mask)."""
        if self.schema == SCHEMA_V1:
            return self.members.get(crop_field(i))
        return encode_png(crop_rgba(self.image, self.masks[i], self.subjects[i]["box_2d"]))


def final_shards(run_dir: Path) -> list[Path]:
    """The run's finished final shards, whatever settings made them (a run of an older datagen,
    sigma-set/1 included, stays readable), in shard order. UserError when there are none, or
    when a committed one is damaged."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a datagen run (no such directory)")
    from datagen.config import load_run_config

    paths = RunPaths(run_dir)
    states = final_shard_states(load_run_config(run_dir), paths, any_settings=True)
    damaged = [damage for _, _, damage in states if damage]
    if damaged:  # never read past a finished shard that went missing or was cut short
        raise UserError(f"{damaged[0]}; run the `datagen run` that made it again to redo it")
    shards = [paths.final_tar(shard) for shard, marker, _ in states if marker is not None]
    if not shards:
        raise UserError(f"{run_dir}: no final shards in {paths.final_dir} (run `datagen run` to finish it first)")
    return shards


def shard_stats(shard: Path) -> dict[str, Any]:
    """The stats marker committed beside a final shard."""
    path = stats_beside(shard)
    marker = read_marker(path)
    if marker is None:
        raise UserError(f"{path}: unreadable stats (missing, or not a JSON object)")
    return marker


def decode_final(shard: Path, key: str, members: dict[str, bytes]) -> FinalSample:
    """One sample of a final shard from its members; a bad one is a one-line UserError."""
    try:
        d = decode_sample(members, key)
    except BadSample as e:
        raise UserError(f"{shard}: sample {key}: {e}") from None
    return FinalSample(key, shard, d["json"], d["image"], d["masks"], d["depth"], d["identities"], members)


def _read(shard: Path) -> dict[str, dict[str, bytes]]:
    try:
        return read_tar(shard)
    except ShardReadError as e:
        raise UserError(str(e)) from None


def iter_final_samples(run_dir: Path, limit: int | None = None) -> Iterator[FinalSample]:
    """Every final sample, in shard then key order (at most `limit`)."""
    count = 0
    for shard in final_shards(run_dir):
        for key, members in sorted(_read(shard).items()):
            if limit is not None and count >= limit:
                return
            yield decode_final(shard, key, members)
            count += 1


def count_final_samples(run_dir: Path) -> int:
    """Samples in the final shards, from their stats markers (no shard is opened)."""
    return sum(int(shard_stats(s)["samples_written"]) for s in final_shards(run_dir))


def find_sample(run_dir: Path, key: str) -> FinalSample:
    """The final sample `key`; UserError naming the key when the run has no such sample."""
    if not KEY_RE.match(key):
        raise UserError(f"--sample {key!r}: not a sample key (like 000000_000003)")
    for shard in final_shards(run_dir):
        # Keys start with the shard number, so only one shard can hold it.
        if shard.name != f"shard-{key[:6]}.tar":
            continue
        members = _read(shard).get(key)
        if members is not None:
            return decode_final(shard, key, members)
    raise UserError(f"--sample {key}: no such sample in {Path(run_dir) / 'final'}")
