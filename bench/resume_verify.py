"""What a resume with nothing to do spends checking committed shards (issue M, part 3), under
`output.verify` index (the default), size and sha256, and what `datagen verify RUN` spends.

    python bench/resume_verify.py           # 1,280 samples (1.8 GB, 40 shards) -> bench/results/resume_verify.json
    python bench/resume_verify.py --tiny    # 32 samples: a test of the code, not the figures

The run is synthetic, so it is cheap to build at this size: the paper config
(configs/sigma_set27k.yaml, 1024², shards of 32) with every (stage, shard) committed under its
real fingerprint, its tar holding per sample the members, with the sizes, that
bench/results/storage.json measured on the demo at 1024² (random bytes: the checks read
bytes and headers, never images). Each check is timed warm (the files in the page cache, as
right after a run) and cold (every file dropped from the page cache with
posix_fadvise(DONTNEED) first, as a resume days later sees them). The figures are scaled
linearly to the paper run (41,000 samples through every stage: bytes and tar members both grow
with the samples).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

from common import ROOT, fill_defaults, results_path, timed, write_json  # bench/, the script's dir

from datagen.config import dump_config, load_config
from datagen.pipeline.fingerprint import stage_fingerprints
from datagen.pipeline.markers import RunMarkers
from datagen.pipeline.resume import PLAN_THREADS, make_plan
from datagen.pipeline.verify import verify_run
from datagen.store.codec import encode_json
from datagen.store.paths import RunPaths
from datagen.store.shards import commit_bytes, commit_tar, tar_index_sha256

PAPER_SAMPLES = 41_000
MODES = ("index", "size", "sha256")


def member_sizes(stage: str, final: str) -> dict[str, int]:
    """field -> bytes per sample of a stage's tar, from the storage benchmark (json only if unmeasured)."""
    storage = json.loads((ROOT / "bench/results/storage.json").read_text())["png"]
    if stage == final:
        mb = storage["final_members_mb_per_kept_sample"]
    else:
        mb = storage["stages"].get(stage, {}).get("members_mb_per_sample", {"json": 0.01})
    return {field: max(1, int(v * 1e6)) for field, v in sorted(mb.items())}


def build(run: Path, samples: int) -> tuple[int, int]:
    """A finished synthetic run; (bytes, tar members) committed."""
    cfg = load_config(ROOT / "configs/sigma_set27k.yaml", [f"run.num_samples={samples}"])
    paths = RunPaths(run)
    commit_bytes(paths.run_yaml, dump_config(cfg).encode())
    markers, order = RunMarkers(cfg, paths), cfg.stages.order
    rng = random.Random(0)
    total = members = 0
    for shard in range(cfg.num_shards):
        fps, input_sha = stage_fingerprints(cfg, shard), None
        for stage in order:
            sizes = member_sizes(stage, order[-1])
            tar = markers.output_tar(stage, shard)
            content = [
                (f"{shard:06d}_{i:06d}.{f}", rng.randbytes(n)) for i in cfg.shard_indices(shard) for f, n in sizes.items()
            ]
            sha, size = commit_tar(tar, content)
            marker = {"stage": stage, "shard": shard, "fingerprint": fps[stage], "input_sha256": input_sha,
                      "sha256": sha, "size": size, "index_sha256": tar_index_sha256(tar)}  # fmt: skip
            commit_bytes(markers.marker_path(stage, shard), encode_json(marker))
            input_sha, total, members = sha, total + size, members + len(content)
    return total, members


def drop_cache(run: Path) -> None:
    """Evict the run's files from the page cache (they are fsynced, so clean: no root needed)."""
    for p in run.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def resume_check(run: Path, mode: str) -> float:
    from datagen.config import load_run_config

    cfg = load_run_config(run)
    cfg.output.verify = mode
    seconds, jobs = timed(lambda: make_plan(cfg, RunPaths(run), cfg.stages.order))
    assert not any(j.run for j in jobs), f"{mode}: a no-op resume found work"
    return seconds


def full_verify(run: Path) -> float:
    from datagen.config import load_run_config

    seconds, report = timed(lambda: verify_run(load_run_config(run), RunPaths(run), jobs=4, bar=False))
    assert not report.problems, report.problems
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int)
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    fill_defaults(args, {"samples": 1280, "repeats": 3}, {"samples": 32, "repeats": 1}, args.tiny)
    load = os.getloadavg()[0]  # the machine may be shared: figures under load are slower
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        build_s, (total, members) = timed(lambda: build(run, args.samples))
        checks = {f"resume_{m}": (lambda m=m: resume_check(run, m)) for m in MODES}
        checks["datagen_verify"] = lambda: full_verify(run)
        figures: dict[str, dict[str, float]] = {}
        for name, check in checks.items():
            warm = [check() for _ in range(args.repeats)]  # the first warms the cache
            cold = []
            for _ in range(args.repeats):
                drop_cache(run)
                cold.append(check())
            figures[name] = {"warm_s": round(min(warm), 4), "cold_s": round(min(cold), 4)}
    scale = PAPER_SAMPLES / args.samples
    paper = {name: {k: round(v * scale, 1) for k, v in f.items()} for name, f in figures.items()}
    report = {
        "tiny": args.tiny,
        "settings": {"config": "configs/sigma_set27k.yaml", "samples": args.samples, "repeats": args.repeats,
                     "member_sizes": "bench/results/storage.json (demo at 1024²)", "plan_threads": PLAN_THREADS,
                     "cpus": os.cpu_count(), "load_average_at_start": round(load, 1)},  # fmt: skip
        "run": {"mb": round(total / 1e6, 1), "tar_members": members, "build_s": round(build_s, 1)},
        "checks": figures,
        "paper_scale_estimate": {"samples": PAPER_SAMPLES, "gb": round(total * scale / 1e9, 1),
                                 "tar_members": int(members * scale), **paper},  # fmt: skip
        "sha256_over_index": {
            k: round(figures["resume_sha256"][k] / max(figures["resume_index"][k], 1e-9), 1) for k in ("warm_s", "cold_s")
        },
    }
    write_json(args.out or results_path("resume_verify", args.tiny), report)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
