"""The cut of a `--target-kept` run (datagen.pipeline.target): per bucket, the first samples in
index order, and nothing else in `final/`.

A shard holding over-target samples is rewritten without them (the same members in the same
order, so its bytes depend only on the shard and the target) and its stats say so: the final
stage's `over_target` rejections, and `target_cut` with the target and the shard's figures as
the final stage wrote them, which later rounds size from. The tar is committed before its stats,
so a crash between the two leaves a shard whose stats no longer match: resume redoes its final
stage and cuts again. Shards past the last one needed move to `surplus/`, whole.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from datagen.pipeline.kept_target import Target
from datagen.pipeline.markers import read_marker
from datagen.store.codec import encode_json
from datagen.store.paths import RunPaths, shard_name
from datagen.store.shards import commit_bytes, commit_tar, read_tar, tar_index_sha256

REASON = "over_target"


def surplus_dir(paths: RunPaths) -> Path:
    return paths.root / "surplus"


def plan_cut(target: Target, kept_by_shard: list[list[int]]) -> tuple[int, list[list[int]]]:
    """(the last shard the dataset needs, per shard up to it: samples it keeps per bucket)."""
    wanted = [n for _, _, n in target.buckets]
    have = [0] * len(wanted)
    takes: list[list[int]] = []
    for kept in kept_by_shard:
        if have == wanted:
            break
        take = [min(k, w - h) for k, w, h in zip(kept, wanted, have)]
        have = [h + t for h, t in zip(have, take)]
        takes.append(take)
    return len(takes) - 1, takes


def apply_cut(final: str, paths: RunPaths, target: Target, kept_by_shard: list[list[int]]) -> int:
    """Cut the run to the target; returns the last shard kept."""
    last, takes = plan_cut(target, kept_by_shard)
    for shard, take in enumerate(takes):
        stats = read_marker(paths.final_stats(shard))
        assert stats is not None
        if sum(take) < stats["samples_written"] or "target_cut" in stats:
            _cut_shard(paths, shard, stats, take, target, final)
    for shard in range(last + 1, len(kept_by_shard)):
        _move(paths.final_dir, surplus_dir(paths), shard)
    return last


def _cut_shard(paths: RunPaths, shard: int, stats: dict[str, Any], take: list[int], target: Target, final: str) -> None:
    cut = stats.get("target_cut")
    if cut is not None and cut["target"] == target.spec():
        return  # already cut for this target
    tar = paths.final_tar(shard)
    samples = read_tar(tar)
    left = list(take)
    keep, removed, histogram = [], [], Counter()
    for key, fields in samples.items():  # key order is index order
        subjects = len(json.loads(fields["json"])["subjects"])
        b = target.bucket_of(subjects)
        if b is not None and left[b] > 0:
            left[b] -= 1
            keep.append(key)
            histogram[subjects] += 1
        else:
            removed.append(key)
    sha, size = commit_tar(tar, [(f"{k}.{f}", data) for k in keep for f, data in samples[k].items()])
    rejected = {**stats["rejected"], final: {**stats["rejected"].get(final, {})}}
    rejected[final][REASON] = rejected[final].get(REASON, 0) + len(removed)
    new = {
        **stats,
        "sha256": sha,
        "size": size,
        "index_sha256": tar_index_sha256(tar),
        "samples_written": len(keep),
        "samples_rejected": stats["samples_rejected"] + len(removed),
        "rejected": rejected,
        "subjects_histogram": {str(k): histogram[k] for k in sorted(histogram)},
        "rejected_keys": sorted([*stats["rejected_keys"], *([k, REASON] for k in removed)]),
        "target_cut": {
            "target": target.spec(),
            **{k: stats[k] for k in ("sha256", "size", "samples_written", "subjects_histogram")},
        },
    }
    commit_bytes(paths.final_stats(shard), encode_json(new))


def restore_surplus(paths: RunPaths, shards: range) -> None:
    """Move back the surplus shards a larger round needs again (whole, as their final stage wrote them)."""
    if surplus_dir(paths).is_dir():
        for shard in shards:
            if not paths.final_stats(shard).exists():
                _move(surplus_dir(paths), paths.final_dir, shard)


def uncut_other_targets(paths: RunPaths, target: Target) -> None:
    """Shards cut for another target lost samples this one may need: their final stage runs again
    (from its committed input), so its stats no longer count."""
    for path in sorted(paths.final_dir.glob("shard-*.stats.json")):
        stats = read_marker(path)
        if stats and stats.get("target_cut") and stats["target_cut"]["target"] != target.spec():
            path.unlink()


def _move(src_dir: Path, dst_dir: Path, shard: int) -> None:
    """The tar, then its stats last: the stats mark a final shard done wherever it lies."""
    stats = src_dir / f"{shard_name(shard)}.stats.json"
    if not stats.exists():
        return
    dst_dir.mkdir(parents=True, exist_ok=True)
    tar = src_dir / f"{shard_name(shard)}.tar"
    if tar.exists():  # else moved before an interruption, its stats not yet
        os.replace(tar, dst_dir / tar.name)
    os.replace(stats, dst_dir / stats.name)
