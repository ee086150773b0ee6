"""Training input benchmark: samples/s per CPU core of the trainer's per-sample work.

    python bench/train_input.py              # writes bench/results/train_input.json
    python bench/train_input.py --small      # a few samples, one pass: the test's smoke run
    python bench/train_input.py --shards RUN/final --out /tmp/x.json

Per sample, exactly what datagen.train.data does in a DataLoader worker: decode_sample (PNG
target, masks and identities, depth.npy) -> draw_augment -> build_example (control image in the
drawn structure mode, channel drop, resize to `resolution`, identity stack at `identity_size`).
One process, `torch.set_num_threads(1)`, so the figure is per core. The tar members are read into
memory first: reading the tar (I/O, page cache) is not timed, nor is collation into tensors.

Input: shards from the procedural pipeline (configs/demo.yaml) at 512x512 with 4 subjects per
prompt and 512x512 identity images, made into a temporary directory unless --shards is given.
The filters may drop a subject, so the JSON gives the mean subject count actually decoded.
Timings: `overall` with modes drawn as in training (configs/train_sigma.yaml's augment), then
each structure mode forced on every sample (the other draws kept). Goal: >= 20 samples/s per core.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from common import ROOT, datagen_cli, results_path, timed, write_json  # bench/, the script's dir

GOAL_SAMPLES_PER_S = 20.0
SIZE, SUBJECTS = 512, 4


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def make_shards(out: Path, n: int) -> Path:
    """n procedural samples at SIZE x SIZE, SUBJECTS subjects each, via the real CLI."""
    cmd = datagen_cli(
        "run", "--config", "configs/demo.yaml", "--executor", "local", "--out", str(out),
        "--set", f"run.num_samples={n}", "--set", f"run.width={SIZE}", "--set", f"run.height={SIZE}",
        "--set", f"stages.prompts.num_subjects=[{SUBJECTS},{SUBJECTS}]", "--set", "filters.min_subjects=3",
        "--set", f"stages.repose.identity_size={SIZE}",  # training reads 512x512 identities (identity_size)
    )  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return out / "final"


def raw_samples(shards: Path) -> list[dict]:
    """Every sample's undecoded members (bytes), as webdataset hands them to decode_sample."""
    from datagen.train.data import list_shards

    urls = list_shards(shards)
    if not urls:
        sys.exit(f"no shards in {shards}")
    return [{k: v for k, v in s.items() if not k.startswith("__")} | {"__key__": s["__key__"]}
            for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False)]  # fmt: skip


def one(members: dict, cfg, mode: str | None, visit: int) -> tuple[float, float, int]:
    """(decode s, augment s, subjects) for one sample; mode None: drawn as in training."""
    from datagen.train.augment import build_example, draw_augment, sample_rng
    from datagen.train.data import decode_sample

    key = members["__key__"]
    decode_s, decoded = timed(lambda: decode_sample(members, key))

    def augment() -> dict:
        draw = draw_augment(sample_rng(cfg.seed, 0, key, visit), cfg.augment)
        if mode is not None:
            draw = dataclasses.replace(draw, mode=mode)
        return build_example(decoded, draw, cfg.resolution, cfg.identity_size)

    augment_s, example = timed(augment)
    return decode_s, augment_s, example["n_subjects"]


def measure(samples: list[dict], cfg, mode: str | None, passes: int) -> dict:
    dec, aug, subjects = [], [], []
    for visit in range(passes):
        for members in samples:
            d, a, n = one(members, cfg, mode, visit)
            dec.append(d), aug.append(a), subjects.append(n)
    total = sum(dec) + sum(aug)
    return {
        "samples": len(dec),
        "samples_per_s": float(f"{len(dec) / total:.4g}"),
        "ms_per_sample": float(f"{1000 * total / len(dec):.4g}"),
        "decode_ms": float(f"{1000 * np.mean(dec):.4g}"),
        "augment_build_ms": float(f"{1000 * np.mean(aug):.4g}"),
        "mean_subjects": float(f"{np.mean(subjects):.3g}"),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, help="procedural samples to generate (default 64; --small 6)")
    ap.add_argument("--passes", type=int, help="passes over the samples per timing (default 3; --small 1)")
    ap.add_argument("--shards", type=Path, help="read these shards instead of generating")
    ap.add_argument("--out", type=Path, default=results_path("train_input"))
    ap.add_argument("--small", action="store_true", help="a smoke run for the test: figures mean little")
    args = ap.parse_args(argv)
    args.samples = args.samples or (6 if args.small else 64)
    args.passes = args.passes or (1 if args.small else 3)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # One core: the figure scales with DataLoader workers, one per core.
    torch.set_num_threads(1)
    from datagen.train.config import load_train_config

    cfg = load_train_config("train_sigma")  # resolution 512, identity_size 512, the paper's augment
    with tempfile.TemporaryDirectory(prefix="train_input_") as tmp:
        shards = args.shards or make_shards(Path(tmp) / "run", args.samples)
        samples = raw_samples(shards)
    if not samples:
        sys.exit("the run kept no samples")
    measure(samples[:2], cfg, None, 1)  # warm-up: imports, first allocations

    modes = {m: measure(samples, cfg, m, args.passes) for m in cfg.augment.structure_modes}
    overall = measure(samples, cfg, None, args.passes)
    for name, row in {**modes, "overall": overall}.items():
        print(f"{name}: {json.dumps(row)}", flush=True)
    report = {
        "machine": {"cpu_model": cpu_model(), "cores": os.cpu_count(),
                    "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                    "python": platform.python_version(), "torch_threads": torch.get_num_threads()},
        "small": args.small,
        "input": {"source": str(args.shards) if args.shards else "procedural (configs/demo.yaml)",
                  "width": SIZE, "height": SIZE, "prompt_subjects": SUBJECTS, "identity_size_stored": SIZE,
                  "samples": len(samples), "passes": args.passes, "mean_subjects": overall["mean_subjects"]},
        "training": {"resolution": cfg.resolution, "identity_size": cfg.identity_size,
                     "structure_modes": list(cfg.augment.structure_modes),
                     "channel_drop_p": cfg.augment.channel_drop_p, "max_dilate_px": cfg.augment.max_dilate_px},
        "note": "one process, torch.set_num_threads(1): per core. Timed: decode_sample + draw_augment + "
                "build_example per sample, tar members already in memory (tar I/O and collation not timed)",
        "modes": modes,
        "overall": overall,
        "goal": {"goal": f">= {GOAL_SAMPLES_PER_S} samples/s per core, modes drawn as in training",
                 "measured": overall["samples_per_s"], "met": overall["samples_per_s"] >= GOAL_SAMPLES_PER_S,
                 "comparable": not args.small},
    }  # fmt: skip
    write_json(args.out, report)
    print(json.dumps(report["goal"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
