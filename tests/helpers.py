"""Helpers for tests that run the real `datagen` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SMALL = {
    "run": {"name": "small", "seed": 7, "num_samples": 12, "shard_size": 4, "width": 128, "height": 128},
    "stages": {"repose": {"identity_size": 32}, "boxes": {"fit": {"max_points": 800}}},
    "output": {"keep_truth": True, "png_compress_level": 1},
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # tests start their own local Ray unless they say otherwise
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datagen.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env or _env(),
    )


def final_metas(run_dir: Path) -> list[dict]:
    """Every final sample's json, in shard and member order."""
    import json
    import tarfile

    metas = []
    for shard in sorted((run_dir / "final").glob("shard-*.tar")):
        with tarfile.open(shard) as t:
            metas += [json.loads(t.extractfile(m).read()) for m in t.getmembers() if m.name.endswith(".json")]
    return metas


def final_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "final").glob("shard-*.tar"))}


def rewrite_as_v2(run_dir: Path) -> None:
    """Re-encode a finished run's final shards as sigma-set/2 in place (masks made exclusive by
    depth order and described again, stats markers updated): a /1 run's /2 twin for reader tests."""
    import json

    import numpy as np

    from datagen.final.decode import decode_sample
    from datagen.final.writer import encode_v2
    from datagen.recipe.filters import mask_figures
    from datagen.recipe.instances import exclusive_by_depth
    from datagen.store.paths import stats_beside
    from datagen.store.shards import commit_tar, read_tar, tar_index_sha256

    for shard in sorted((Path(run_dir) / "final").glob("shard-*.tar")):
        members = []
        for key, fields in sorted(read_tar(shard).items()):
            d = decode_sample(fields, key)
            meta = d["json"]
            meta["source"] = {"kind": "generated", "dataset": meta["provenance"]["run_id"], "id": key}
            for subject in meta["subjects"]:
                subject["identity"]["source"] = "repose"
            masks = np.stack(exclusive_by_depth(list(d["masks"]), d["depth"]))
            for subject, mask in zip(meta["subjects"], masks, strict=True):  # describe the exclusive masks
                subject.update(mask_figures(mask, meta["width"], meta["height"]))
            encoded = encode_v2(meta, d["image"], masks, d["depth"], d["identities"])
            members += [(f"{key}.{name}", data) for name, data in encoded.items()]
        sha, size = commit_tar(shard, members)
        stats = json.loads(stats_beside(shard).read_text())
        stats.update(sha256=sha, size=size, index_sha256=tar_index_sha256(shard))
        stats_beside(shard).write_text(json.dumps(stats))
