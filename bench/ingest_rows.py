"""Rows per second of `datagen ingest` on the CPU, per source kind, with the tiny random-weight
models (configs/ingest_tiny.yaml), and the reasons the rows it did not keep were rejected.

    python bench/ingest_rows.py            # 128 rows per source at 128² -> bench/results/ingest_rows.json
    python bench/ingest_rows.py --tiny     # 8 rows at 48²: a test of the code, not the figures

Each source is written with `datasets` in its kind's exact layout (docs/ingest_sources.md, as
tests/ingest/test_sources.py does): AnyInsertion parquet shards under data/, MUSAR-Gen
save_to_disk, an image folder with metadata.jsonl. A few rows of each are bad on purpose (an
empty mask, an image that does not decode, a mask of another size, a missing field, ...), so
that the reject reasons show up. What runs per kind on ingest_tiny:

- anyinsertion: masks and reference identities given: segment and repose keep them.
- musar: no names, no masks: caption (ingest_tiny's `auto`) names the subjects with the tiny
  Qwen2.5-VL, grounding + SAM find the masks, the cond images are the identities.
- folder: half the rows give a mask and a reference (kept), half only a name and caption (the
  tiny grounding + SAM find the mask, the tiny FLUX.1 Kontext reposes an identity).

Each kind is one `datagen ingest` subprocess (--executor local by default: one process), timed
from outside, with torch on --threads threads (OMP_NUM_THREADS; 1 by default: on a 2-core
machine shared with other work, two OpenMP threads made the tiny VLM's generate() take 9-40 s
where one thread took 0.3-0.6 s, so the figures measured the neighbours). Reported:
`rows_per_s` = rows / wall seconds, start-up and model loading included; `steady_rows_per_s` = the rows of every shard after the first / the time
from the first shard's commit to the last's (every model loaded by then); `first_shard_done_s`:
when the first shard was committed (start-up, model loading and that shard);
`stage_wall_s` (from `datagen status --json`): each stage's own processing time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from common import datagen_cli, fill_defaults, results_path, timed, write_json  # bench/, the script's dir

KINDS = ("anyinsertion", "musar", "folder")
# (extra --set overrides) per kind, beyond models_dir and the run's shard size.
KIND_OVERRIDES = {
    "anyinsertion": [],
    "musar": ["stages.caption.validation_retries=2"],
    "folder": [],
}

# ---------------------------------------------------------------- the sources


def picture(seed: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A flat background with an ellipse of another colour, and the ellipse's mask."""
    rng = np.random.default_rng(seed)
    bg, fg = rng.integers(0, 120, 3), rng.integers(140, 256, 3)
    cy, cx = rng.integers(h // 3, 2 * h // 3), rng.integers(w // 3, 2 * w // 3)
    ry, rx = rng.integers(max(2, h // 8), h // 3), rng.integers(max(2, w // 8), w // 3)
    yy, xx = np.ogrid[:h, :w]
    m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return np.where(m[..., None], fg, bg).astype(np.uint8), m


def png(a: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(a.astype(np.uint8) * (255 if a.dtype == bool else 1)).save(out, "PNG")
    return out.getvalue()


def img(a: np.ndarray) -> dict:
    return {"bytes": png(a), "path": None}


NOT_AN_IMAGE = {"bytes": b"not an image at all", "path": None}


def bad_rows(rows: int) -> list[int]:
    """Where the bad rows go: spread over the source, even and odd rows (a folder's odd rows give
    no mask), the same places for every kind."""
    return [rows * k // 4 + k % 2 for k in range(4)]


def write_anyinsertion(root: Path, rows: int, size: int) -> dict[int, str]:
    """Parquet shards under data/, as on the hub. Returns {bad row: the reason expected}."""
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"), "split": datasets.Value("string"), "category": datasets.Value("string"),
            "main_label": datasets.Value("string"), "ref_image": datasets.Image(), "ref_mask": datasets.Image(),
            "tar_image": datasets.Image(), "tar_mask": datasets.Image(),
        }
    )  # fmt: skip
    table = []
    for k in range(rows):
        tar, tar_m = picture(k, size, size)
        ref, ref_m = picture(10_000 + k, size * 3 // 4, size // 2)
        table.append(dict(id=f"train/object/{k}", split="train", category="object", main_label=f"thing{k}",
                          ref_image=img(ref), ref_mask=img(ref_m), tar_image=img(tar), tar_mask=img(tar_m)))  # fmt: skip
    a, b, c, d = bad_rows(rows)
    table[a]["tar_mask"] = img(np.zeros((size, size), bool))
    table[b]["tar_image"] = NOT_AN_IMAGE
    table[c]["tar_mask"] = img(np.ones((size, size + 1), bool))
    table[d]["main_label"] = None
    data = root / "data"
    data.mkdir(parents=True)
    ds = datasets.Dataset.from_list(table, features=features)
    half = rows // 2
    ds.select(range(half)).to_parquet(str(data / "train-00000-of-00002.parquet"))
    ds.select(range(half, rows)).to_parquet(str(data / "train-00001-of-00002.parquet"))
    return {a: "empty_mask", b: "undecodable_image", c: "mask_size", d: "missing_field"}


def write_musar(root: Path, rows: int, size: int) -> dict[int, str]:
    """save_to_disk: tgt_img, cond_img_0, cond_img_1, prompt."""
    import datasets

    cols: dict[str, list] = {"tgt_img": [], "cond_img_0": [], "cond_img_1": [], "prompt": []}
    for k in range(rows):
        cols["tgt_img"].append(img(two_things(k, size)))
        cols["cond_img_0"].append(img(picture(20_000 + k, size // 2, size // 2)[0]))
        cols["cond_img_1"].append(img(picture(30_000 + k, size // 2, size // 2)[0]))
        cols["prompt"].append(f"a round thing beside another round thing, take {k}")
    a, b, c, d = bad_rows(rows)
    cols["tgt_img"][a] = NOT_AN_IMAGE
    cols["cond_img_1"][b] = None
    cols["prompt"][c] = None
    cols["cond_img_0"][d] = NOT_AN_IMAGE
    image = datasets.Image()
    features = datasets.Features({c: image for c in ("tgt_img", "cond_img_0", "cond_img_1")} | {"prompt": datasets.Value("string")})
    datasets.Dataset.from_dict(cols, features=features).save_to_disk(str(root))
    return {a: "undecodable_image", b: "missing_field", c: "missing_field", d: "undecodable_image"}


def two_things(seed: int, size: int) -> np.ndarray:
    """Two ellipses side by side on one background: a two-subject target."""
    left, m0 = picture(40_000 + seed, size, size // 2)
    right, m1 = picture(50_000 + seed, size, size - size // 2)
    right = np.where(m1[..., None], right, left[:, :1])  # one background
    return np.concatenate([left, right], axis=1)


def write_folder(root: Path, rows: int, size: int) -> dict[int, str]:
    """An image folder with metadata.jsonl (file_name, prompt, subjects); rows in file-name order."""
    from PIL import Image

    for d in ("images", "masks", "refs"):
        (root / d).mkdir(parents=True)
    a, b, c, d = bad_rows(rows)
    with open(root / "metadata.jsonl", "w") as f:
        for k in range(rows):
            name = f"images/{k:05d}.png"
            image, m = picture(60_000 + k, size, size)
            Image.fromarray(image).save(root / name)
            subject: dict = {"name": f"thing{k}", "caption": f"a round thing, number {k}"}
            if k % 2 == 0:  # mask and reference given; the odd rows only name their subject
                ref, ref_m = picture(70_000 + k, size // 2, size // 2)
                Image.fromarray(m.astype(np.uint8) * 255).save(root / f"masks/{k:05d}.png")
                Image.fromarray(ref).save(root / f"refs/{k:05d}.png")
                Image.fromarray(ref_m.astype(np.uint8) * 255).save(root / f"refs/{k:05d}_mask.png")
                subject |= {"mask": f"masks/{k:05d}.png", "reference": f"refs/{k:05d}.png",
                            "reference_mask": f"refs/{k:05d}_mask.png"}  # fmt: skip
            if k == a:
                Image.fromarray(np.zeros((size, size), np.uint8)).save(root / f"masks/{k:05d}_empty.png")
                subject["mask"] = f"masks/{k:05d}_empty.png"
            elif k == b:
                subject["mask"] = f"masks/{k:05d}_missing.png"  # no such file: does not decode
            elif k == c:
                Image.fromarray(np.full((size + 1, size), 255, np.uint8)).save(root / f"masks/{k:05d}_tall.png")
                subject["mask"] = f"masks/{k:05d}_tall.png"
            subjects = [] if k == d else [subject]
            f.write(json.dumps({"file_name": name, "prompt": f"a round thing on a plain ground {k}", "subjects": subjects}) + "\n")
    return {a: "empty_mask", b: "undecodable_image", c: "mask_size", d: "no_subjects"}


WRITERS = {"anyinsertion": write_anyinsertion, "musar": write_musar, "folder": write_folder}

# ---------------------------------------------------------------- the runs


def build_tiny_models(root: Path) -> Path:
    proc = subprocess.run(datagen_cli("tiny-models", str(root)), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"datagen tiny-models failed:\n{proc.stderr[-3000:]}")
    return root


def ingest(kind: str, source: Path, run: Path, models: Path, args: argparse.Namespace) -> dict:
    sets = [f"models_dir={models}", f"run.shard_size={args.shard_size}", *KIND_OVERRIDES[kind]]
    cmd = datagen_cli("ingest", kind, str(source), "--config", "ingest_tiny", "--out", str(run),
                      "--executor", args.executor, *(x for s in sets for x in ("--set", s)))  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(args.threads)}
    env.pop("RAY_ADDRESS", None)
    load, started = os.getloadavg()[0], time.time()
    seconds, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, env=env, check=False))
    if proc.returncode != 0:
        raise SystemExit(f"datagen ingest {kind} failed:\n{proc.stderr[-3000:]}")
    status = json.loads(subprocess.run(datagen_cli("status", str(run), "--json"), capture_output=True, text=True,
                                       check=True, env=env).stdout)  # fmt: skip
    return {"wall_s": seconds, "started": started, "sets": sets, "status": status,
            "load_avg_1m": [round(load, 2), round(os.getloadavg()[0], 2)]}


def rejected(status: dict) -> dict[str, dict[str, int]]:
    """stage -> reason -> rows, stages with no reject left out."""
    return {s["stage"]: dict(sorted(s["rejected"].items())) for s in status["stages"] if s["rejected"]}


def timeline(run: Path, started: float) -> dict:
    """When the shards were committed, against the command's start (epoch seconds): the first
    shard carries the start-up (imports, dataset, each stage's model loaded on first use); the
    rest, processed with every model loaded, give the steady rate."""
    shards = []
    for p in sorted((run / "final").glob("shard-*.stats.json")):
        stats = json.loads(p.read_text())
        ends = [f["finished_at"] for f in stats["stages"].values() if "finished_at" in f]
        shards.append((max(ends), stats["samples_in"]))
    shards.sort()
    first_end, _ = shards[0]
    later_rows, later_s = sum(n for _, n in shards[1:]), shards[-1][0] - first_end
    return {"first_shard_done_s": round(first_end - started, 2), "shards": len(shards),
            "steady_rows_per_s": round(later_rows / later_s, 3) if len(shards) > 1 and later_s > 0 else None}  # fmt: skip


def measure(kind: str, work: Path, models: Path, args: argparse.Namespace) -> dict:
    source, run = work / f"{kind}-source", work / f"{kind}-run"
    expected = WRITERS[kind](source, args.rows, args.size)
    result = ingest(kind, source, run, models, args)
    status, wall = result["status"], result["wall_s"]
    source_rejects = rejected(status).get("source", {})
    want: dict[str, int] = {}
    for reason in expected.values():
        want[f"bad_row:{reason}"] = want.get(f"bad_row:{reason}", 0) + 1
    return {
        "rows": args.rows,
        "bad_rows": {str(row): reason for row, reason in sorted(expected.items())},
        "overrides": result["sets"][1:],  # beyond models_dir (a temporary folder)
        "seconds": round(wall, 2),
        "rows_per_s": round(args.rows / wall, 3),
        **timeline(run, result["started"]),
        "kept": status["kept"],
        "rejected": sum(sum(s["rejected"].values()) for s in status["stages"]),
        "rejected_by_stage_and_reason": rejected(status),
        "bad_rows_rejected_as_planted": source_rejects == dict(sorted(want.items())),
        "stage_wall_s": {s["stage"]: round(s["wall_s"], 2) for s in status["stages"]},
        "subjects_histogram": status["subjects_histogram"],
        "load_avg_1m_before_after": result["load_avg_1m"],  # other work on the machine meanwhile
    }


def machine(threads: int) -> dict:
    return {"cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "cpu_model": cpu_model(), "torch_threads": threads}  # fmt: skip


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="8 rows at 48²: a test of the code, not the figures")
    ap.add_argument("--rows", type=int, help="rows per source (default 128; 8 with --tiny)")
    ap.add_argument("--size", type=int, help="target image side in pixels (default 128; 48 with --tiny)")
    ap.add_argument("--shard-size", type=int, help="rows per shard (default 16; 4 with --tiny)")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    ap.add_argument("--executor", default="local", choices=("local", "ray"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the ingest (OMP_NUM_THREADS; default 1)")
    ap.add_argument("--models", type=Path, help="tiny models already built by `datagen tiny-models DIR` (default: built here)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    fill_defaults(args, {"rows": 128, "size": 128, "shard_size": 16}, {"rows": 8, "size": 48, "shard_size": 4}, args.tiny)
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(args.kinds) - set(KINDS))
    if unknown:
        ap.error(f"--kinds: unknown {unknown} (known: {', '.join(KINDS)})")
    if args.rows < 8:
        ap.error("--rows: at least 8 (4 of them are bad on purpose)")
    if args.size < 32:
        ap.error("--size: at least 32")
    args.out = args.out or results_path("ingest_rows", args.tiny)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    report: dict = {
        "tiny": args.tiny,
        "machine": machine(args.threads),
        "settings": {"config": "configs/ingest_tiny.yaml (tiny random-weight models)", "executor": args.executor,
                     "rows_per_source": args.rows, "width": args.size, "height": args.size,
                     "shard_size": args.shard_size},  # fmt: skip
        "sources": {},
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ingest-rows-bench-") as tmp:
        work = Path(tmp)
        models = args.models or build_tiny_models(work / "tiny-models")
        for kind in args.kinds:
            report["sources"][kind] = figures = measure(kind, work, models, args)
            print(f"{kind}: {figures['rows']} rows in {figures['seconds']} s = {figures['rows_per_s']} rows/s "
                  f"({figures['steady_rows_per_s']} rows/s once loaded), kept {figures['kept']}, "
                  f"rejected {figures['rejected_by_stage_and_reason']}", flush=True)  # fmt: skip
    report["summary"] = {kind: {k: f[k] for k in ("rows_per_s", "steady_rows_per_s", "kept", "rejected")}
                         for kind, f in report["sources"].items()}  # fmt: skip
    report["bench_wall_s"] = round(time.perf_counter() - start, 1)
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
