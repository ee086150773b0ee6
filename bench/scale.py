"""Paper scale on this machine: the procedural world for 27,000 samples at 256², then every tool
that reads a run, timed.

    python bench/scale.py                      # 27,000 samples -> bench/results/scale.json
    python bench/scale.py --samples 2048       # a quicker look
    python bench/scale.py --small              # 32 samples, for the test

Runs `datagen run` (Ray, the demo config at 256², shards of --shard-size) while sampling every
second the driver and each of its descendant processes (Ray's GCS, raylet and workers): peak
resident memory of the driver, of the largest worker and of all together, and the most open
files. Then times `status`, `status --report`, `validate`, `verify`, `show`, `browse`, `export hf`
and a resume with nothing to do (wall time and peak memory, Ray's included), and measures the
disk per kept sample. `--keep --tools-only` times the tools again on the kept run. A cluster runs the same
config with `--address` (the command is recorded in the results).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from common import ROOT, datagen_cli, fill_defaults, results_path, write_json  # bench/, the script's dir


class TreeSampler:
    """Peak RSS and open files of a process and its descendants, sampled every `period` s."""

    def __init__(self, pid: int, period: float = 1.0) -> None:
        self.root, self.period = psutil.Process(pid), period
        self.peak = {"driver_rss_mb": 0.0, "largest_worker_rss_mb": 0.0, "total_rss_mb": 0.0,
                     "driver_open_files": 0, "most_open_files_one_process": 0, "processes": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period)

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        rss, files = {}, {}
        for p in procs:
            try:
                rss[p.pid] = p.memory_info().rss / 2**20
                files[p.pid] = p.num_fds()
            except psutil.Error:
                continue
        if self.root.pid not in rss:
            return
        others = [v for k, v in rss.items() if k != self.root.pid]
        peak = self.peak
        peak["driver_rss_mb"] = max(peak["driver_rss_mb"], rss[self.root.pid])
        peak["largest_worker_rss_mb"] = max(peak["largest_worker_rss_mb"], max(others, default=0.0))
        peak["total_rss_mb"] = max(peak["total_rss_mb"], sum(rss.values()))
        peak["driver_open_files"] = max(peak["driver_open_files"], files[self.root.pid])
        peak["most_open_files_one_process"] = max(peak["most_open_files_one_process"], max(files.values()))
        peak["processes"] = max(peak["processes"], len(rss))


def run_sampled(cmd: list[str], env: dict, period: float = 1.0) -> tuple[float, dict, subprocess.CompletedProcess]:
    start = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=devnull, stderr=subprocess.PIPE, text=True)
        with TreeSampler(proc.pid, period) as sampler:
            _, err = proc.communicate()
    wall = time.perf_counter() - start
    peak = {k: round(v, 1) if isinstance(v, float) else v for k, v in sampler.peak.items()}
    return wall, peak, subprocess.CompletedProcess(cmd, proc.returncode, "", err)


def timed_tool(name: str, *args: str, env: dict) -> dict:
    """Wall time and peak memory (the tool and any Ray it starts) of one `datagen` command."""
    wall, peak, proc = run_sampled(datagen_cli(*args), env, period=0.2)  # tools of a second or two
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"wall_s": round(wall, 2), "rss_mb": peak["total_rss_mb"]}


OUTPUTS = {"status_report": "report", "show": "sheet.png", "browse": "browse", "export_hf": "hf"}  # under --work


def tool_commands(run: Path, work: Path) -> dict[str, list[str]]:
    """Every tool that reads a run, as `datagen` arguments."""
    return {
        "resume_nothing_to_do": ["run", "--out", str(run)],
        "status": ["status", str(run)],
        "status_report": ["status", str(run), "--report", "--report-dir", str(work / OUTPUTS["status_report"])],
        "validate": ["validate", str(run)],
        "verify": ["verify", str(run)],
        "show": ["show", str(run), "--out", str(work / OUTPUTS["show"])],
        "browse": ["browse", str(run), "--out", str(work / OUTPUTS["browse"])],
        "export_hf": ["export", "hf", str(run), "--out", str(work / OUTPUTS["export_hf"])],
    }


def time_tools(run: Path, work: Path, env: dict, only: list[str] | None = None) -> dict[str, dict]:
    commands = tool_commands(run, work)
    unknown = sorted(set(only or ()) - set(commands))
    if unknown:
        raise SystemExit(f"--tool: unknown {', '.join(unknown)} (one of {', '.join(commands)})")
    tools = {}
    for name, args in commands.items():
        if only and name not in only:
            continue
        if name in OUTPUTS:  # a rerun writes afresh (the tools refuse to overwrite)
            target = work / OUTPUTS[name]
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        tools[name] = timed_tool(name, *args, env=env)
        print(f"{name}: {tools[name]['wall_s']} s, {tools[name]['rss_mb']} MB", flush=True)
    return tools


def browse_pages(work: Path) -> dict:
    pages = sorted((work / "browse").glob("index*.html"))
    return {"browse_index_pages": len(pages),
            "browse_largest_index_page_mb": round(max((p.stat().st_size for p in pages), default=0) / 2**20, 3)}


def retime_tools(args: argparse.Namespace, out: Path, env: dict) -> None:
    """--tools-only: time the tools again on the run a --keep left, into the results already written."""
    work = Path(args.work)
    if not (work / "run" / "run.yaml").exists() or not out.exists():
        raise SystemExit(f"--tools-only needs a run kept by --keep in {work} and its results in {out}")
    report = json.loads(out.read_text())
    tools = time_tools(work / "run", work, env, args.tool)
    report["tools_wall_s"].update({k: t["wall_s"] for k, t in tools.items()})
    report.setdefault("tools_rss_mb", {}).update({k: t["rss_mb"] for k, t in tools.items()})
    if "browse" in tools:
        report.update(browse_pages(work))
    write_json(out, report)
    print(f"updated {out}")


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="32 samples: a test of the code, not the figures")
    ap.add_argument("--samples", type=int)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--shard-size", type=int)
    ap.add_argument("--workers", type=int, default=None, help="datagen run --workers (default: all cores)")
    ap.add_argument("--work", default="/tmp/datagen-scale", help="where the run and the tools' outputs go")
    ap.add_argument("--keep", action="store_true", help="keep the run directory afterwards")
    ap.add_argument("--out", default=None)
    ap.add_argument("--tools-only", action="store_true", help="time the tools again on the run --keep left; update --out")
    ap.add_argument("--tool", action="append", help="with --tools-only: only this tool (repeatable)")
    args = ap.parse_args(argv)
    fill_defaults(args, {"samples": 27000, "shard_size": 64}, {"samples": 32, "shard_size": 8}, args.small)
    out = Path(args.out or results_path("scale", tiny=args.small))
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    if args.tools_only:
        return retime_tools(args, out, env)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run = work / "run"
    sets = [f"run.num_samples={args.samples}", f"run.shard_size={args.shard_size}", f"run.width={args.size}",
            f"run.height={args.size}", "stages.repose.identity_size=128"]
    run_args = ["run", "--config", "demo", *[x for s in sets for x in ("--set", s)]]
    cmd = datagen_cli(*run_args, "--out", str(run), *(["--workers", str(args.workers)] if args.workers else []))
    wall, peak, proc = run_sampled(cmd, env)
    if proc.returncode != 0:
        raise SystemExit(f"datagen run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    kept = sum(int(json.loads(p.read_text())["samples_written"]) for p in (run / "final").glob("*.stats.json"))
    print(f"run: {args.samples} samples, {kept} kept in {wall:.0f} s ({kept / wall:.2f} kept/s); peaks {peak}", flush=True)

    tools = time_tools(run, work, env)
    final_bytes, run_bytes = du(run / "final"), du(run)
    report = {
        "small": args.small,
        "settings": {"config": "configs/demo.yaml", "samples": args.samples, "size": args.size,
                     "shard_size": args.shard_size, "workers": args.workers or os.cpu_count(), "cores": os.cpu_count(),
                     "overrides": sets},
        "cluster_command": "datagen run " + " ".join(run_args[1:]) + " --address HEAD_IP:6379 --out /shared/RUN --workers 64",
        "run": {"wall_s": round(wall, 1), "kept": kept, "kept_per_s": round(kept / wall, 3), **peak},
        "disk": {"final_bytes_per_kept": round(final_bytes / max(kept, 1)), "run_bytes_per_kept": round(run_bytes / max(kept, 1)),
                 "final_gb": round(final_bytes / 1e9, 3), "run_gb": round(run_bytes / 1e9, 3)},
        "tools_wall_s": {name: t["wall_s"] for name, t in tools.items()},
        "tools_rss_mb": {name: t["rss_mb"] for name, t in tools.items()},
        **browse_pages(work),
        "goals": {"resume_nothing_to_do_s": 10, "status_s": 10, "browse_s": 600, "browse_index_page_mb": 2},
    }
    write_json(out, report)
    print(f"wrote {out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
