"""Exports of the demo run (issue N): wall time and output size of `datagen export FORMAT` for
hf, sigma, omnigen2 and uno (both --entries), beside the final shards' own size.

    python bench/exports.py                      # the demo, 64 samples at 512² -> bench/results/exports.json
    python bench/exports.py --run /tmp/h22/demo  # time the exports of a finished run instead of making one
    python bench/exports.py --tiny               # 128², 4 samples: a test of the code, not the figures

Each export runs as its own `datagen` process (its imports counted, as a user sees it): `seconds`
is its wall time, `cpu_seconds` its user + system time (the figure to compare on a shared, busy
machine); its size is every file under --out, the card included.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml
from common import datagen_cli, fill_defaults, results_path, timed, write_json  # bench/, the script's dir

EXPORTS = {  # name -> the `datagen export` arguments after RUN --out DIR
    "hf": ["hf"],
    "sigma": ["sigma"],
    "omnigen2": ["omnigen2"],
    "uno_pairs": ["uno", "--entries", "pairs"],
    "uno_samples": ["uno", "--entries", "samples"],
}


def dir_bytes(path: Path) -> tuple[int, int]:
    """(bytes, files) of every file under `path`."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def make_run(run_dir: Path, size: int, samples: int) -> float:
    args = ["run", "--config", "configs/demo.yaml", "--out", str(run_dir), "--executor", "local",
            "--set", f"run.width={size}", "--set", f"run.height={size}", "--set", f"run.num_samples={samples}"]  # fmt: skip
    seconds, proc = timed(lambda: subprocess.run(datagen_cli(*args), capture_output=True, text=True, check=False))
    if proc.returncode != 0:
        raise SystemExit(f"datagen run failed:\n{proc.stderr[-3000:]}")
    return seconds


def export(run_dir: Path, out: Path, args: list[str]) -> dict:
    cmd = datagen_cli("export", args[0], str(run_dir), "--out", str(out), *args[1:])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, check=False))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # what a busy machine does not inflate
    if proc.returncode != 0:
        raise SystemExit(f"datagen export {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    size, files = dir_bytes(out)
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "mb": round(size / 1e6, 3), "files": files, "wrote": proc.stdout.strip().split(" to ")[0]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="128², 4 samples: a test of the code, not the figures")
    ap.add_argument("--run", type=Path, help="a finished run to export (default: make the demo)")
    ap.add_argument("--size", type=int, help="image side of the demo made (default 512; 128 with --tiny)")
    ap.add_argument("--samples", type=int, help="demo samples (default 64; 4 with --tiny)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    fill_defaults(args, {"size": 512, "samples": 64}, {"size": 128, "samples": 4}, args.tiny)
    args.out = args.out or results_path("exports", args.tiny)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    try:
        run_dir, run_seconds = args.run, None
        if run_dir is None:
            run_dir = work / "run"
            run_seconds = round(make_run(run_dir, args.size, args.samples), 2)
        run_yaml = yaml.safe_load((run_dir / "run.yaml").read_text())
        final_size, final_files = dir_bytes(run_dir / "final")
        report = {
            "tiny": args.tiny,
            "settings": {"run": str(args.run) if args.run else "configs/demo.yaml", "width": run_yaml["run"]["width"],
                         "height": run_yaml["run"]["height"], "samples_requested": run_yaml["run"]["num_samples"]},  # fmt: skip
            "run_seconds": run_seconds,
            "final_shards": {"mb": round(final_size / 1e6, 3), "files": final_files},
            "exports": {name: export(run_dir, work / name, cmd) for name, cmd in EXPORTS.items()},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for figures in report["exports"].values():
        figures["mb_vs_final"] = round(figures["mb"] / max(report["final_shards"]["mb"], 1e-9), 2)
    write_json(args.out, report)
    return report


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
