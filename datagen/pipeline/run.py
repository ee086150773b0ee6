"""`datagen run`: resolve the config, plan against what is committed, run, report.

Everything the user can get wrong is checked here, before Ray or any model starts.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from datagen.config import RunConfig, dump_config, load_config, resolve_config_path
from datagen.errors import UserError
from datagen.store.paths import RunPaths
from datagen.pipeline.resume import ShardJob, clear_failures, make_plan
from datagen.pipeline.progress import ProgressWatcher
from datagen.pipeline.shard_task import Outcome
from datagen.store.shards import commit_bytes, sweep_temp_files
from datagen.pipeline.preflight import validate_pipeline

DEFAULT_CONFIG = "demo"


@dataclass
class RunRequest:
    config: str | None = None
    out: str | None = None
    stages: str = "all"
    workers: int | None = None
    num_samples: int | None = None
    seed: int | None = None
    overrides: tuple[str, ...] = ()
    address: str | None = None
    executor: str = "ray"


@dataclass
class RunReport:
    paths: RunPaths
    outcomes: list[Outcome]
    jobs: list[ShardJob]
    kept: int
    failed: list[Outcome]
    blocked: list[ShardJob]


def parse_stages(text: str, order: list[str]) -> list[str]:
    if text.strip() == "all":
        return list(order)
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UserError("--stages: name at least one stage, or 'all'")
    for name in names:
        if name not in order:
            raise UserError(f"--stages: unknown stage {name!r} (this run's stages: {', '.join(order)}, or all)")
    return [s for s in order if s in names]


def resolve_config(req: RunRequest) -> tuple[RunConfig, Path]:
    """The config to run and the run directory. An existing run resumes with its own run.yaml
    unless --config names another."""
    if req.num_samples is not None and req.num_samples <= 0:
        raise UserError(f"--num-samples: must be a positive number of samples (got {req.num_samples})")
    if req.workers is not None and req.workers <= 0:
        raise UserError(f"--workers: must be at least 1 (got {req.workers})")
    if req.seed is not None and req.seed < 0:
        raise UserError(f"--seed: must be >= 0 (got {req.seed})")
    out = Path(req.out) if req.out else None
    if req.config is None:
        # No --config: resume the run as it was configured, or start the demo.
        default = resolve_config_path(DEFAULT_CONFIG)
        if out is None:
            out = Path.cwd() / load_config(default).run.name
        source = out / "run.yaml" if (out / "run.yaml").is_file() else default
    else:
        source = resolve_config_path(req.config)
    overrides = list(req.overrides)
    if req.num_samples is not None:
        overrides.append(f"run.num_samples={req.num_samples}")
    if req.seed is not None:
        overrides.append(f"run.seed={req.seed}")
    cfg = load_config(source, overrides)
    if req.address:
        cfg.ray.address = req.address
    if out is None:
        out = Path.cwd() / cfg.run.name
    return cfg, out


def prepare_run_dir(out: Path) -> RunPaths:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"--out {out}: cannot write there ({os.strerror(e.errno) if e.errno else e})") from None
    if (out / "final").exists() and not (out / "run.yaml").exists():
        raise UserError(f"--out {out}: holds a final/ directory but no run.yaml; not a datagen run")
    return RunPaths(out)


@contextmanager
def run_lock(paths: RunPaths) -> Iterator[None]:
    """One driver per run directory: a second one would sweep the first one's temp files."""
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{paths.root}: another datagen run is using this run directory") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def execute(req: RunRequest) -> RunReport:
    from datagen.pipeline.kept_target import Target
    from datagen.pipeline.target import reach_target

    cfg, out = resolve_config(req)
    validate_pipeline(cfg)
    selected = parse_stages(req.stages, cfg.stages.order)
    target = Target.of(cfg)
    if target is not None and selected != cfg.stages.order:
        raise UserError("--target-kept: counts what the final stage keeps, so it runs every stage (--stages all)")
    if cfg.ray.address and req.executor != "local":
        from datagen.pipeline.ray_runner import check_address

        check_address(cfg.ray.address)  # before the run directory exists
    paths = prepare_run_dir(out)
    say(f"run directory: {paths.root.resolve()}")
    with run_lock(paths):
        own_yaml = req.config is None and paths.run_yaml.is_file()  # resuming: num_samples is how far it got
        _write_run_yaml(paths, cfg)
        sweep_temp_files(paths.root)
        if target is None:
            return _report(cfg, paths, *_run_round(cfg, paths, selected, req))
        outcomes: list[Outcome] = []
        last: list = [[], []]

        def run_round(round_cfg: RunConfig) -> bool:
            _write_run_yaml(paths, round_cfg)  # status and the viewers see the run's size so far
            done, jobs, blocked = _run_round(round_cfg, paths, selected, req)
            outcomes.extend(done)
            last[:] = [jobs, blocked]
            return not blocked and not any(o.status == "failed" for o in done)

        ended = reach_target(cfg, paths, run_round, say, resuming=own_yaml)
        _write_run_yaml(paths, ended)
        return _report(ended, paths, outcomes, *last)


def _write_run_yaml(paths: RunPaths, cfg: RunConfig) -> None:
    try:
        commit_bytes(paths.run_yaml, dump_config(cfg).encode())
    except OSError as e:
        raise UserError(f"{paths.run_yaml}: cannot write ({os.strerror(e.errno) if e.errno else e})") from None


def _run_round(cfg: RunConfig, paths: RunPaths, selected: list[str], req: RunRequest):
    """Plan against what is committed and run what is not: (outcomes, jobs, blocked jobs)."""
    jobs = make_plan(cfg, paths, selected)
    todo = [j for j in jobs if j.run]
    blocked = [j for j in jobs if j.blocked]
    for reason in sorted({j.blocked for j in blocked if j.blocked}):
        shards = [j.shard for j in blocked if j.blocked == reason]
        say(f"{len(shards)} shard(s) skipped ({_shard_list(shards)}): {reason}; run the earlier stages first")
    if not todo:
        if not blocked:
            say("nothing to do: every requested (stage, shard) is committed and current")
        return [], jobs, blocked
    clear_failures(cfg, paths, todo)
    runs = sum(len(j.run) for j in todo)
    say(f"{len(todo)} of {len(jobs)} shards to process ({runs} stage-shard steps), stages: {', '.join(selected)}")
    start = time.perf_counter()
    with ProgressWatcher(cfg, paths, todo):
        outcomes = _dispatch(cfg, paths, todo, req)
    say(f"finished in {time.perf_counter() - start:.1f}s")
    return outcomes, jobs, blocked


def _shard_list(shards: list[int], most: int = 8) -> str:
    shown = ", ".join(str(s) for s in shards[:most])
    return shown + (f", ... {len(shards) - most} more" if len(shards) > most else "")


def _dispatch(cfg: RunConfig, paths: RunPaths, todo: list[ShardJob], req: RunRequest) -> list[Outcome]:
    if req.executor == "local":
        from datagen.pipeline.local_runner import run_local

        return run_local(cfg, paths, todo)
    from datagen.pipeline import ray_runner as runner

    stages = [s for s in cfg.stages.order if any(s in j.run for j in todo)]
    runner.init_ray(cfg.ray.address, cfg.ray.num_cpus, cfg.ray.num_gpus)
    try:
        pools = runner.plan_ray_pools(cfg, stages, req.workers)
        if pools.notice:
            say(pools.notice)
        say(f"workers: {pools.describe()}")
        pools.save(paths.logs_dir / "pools.json")
        return runner.run_on_ray(cfg, paths, todo, pools)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise UserError(f"{paths.root}: disk full ({e})") from None
        raise
    finally:
        if not cfg.ray.address:
            runner.shutdown_ray()


def _report(cfg: RunConfig, paths: RunPaths, outcomes: list[Outcome], jobs: list[ShardJob], blocked: list[ShardJob]) -> RunReport:
    from datagen.pipeline.markers import final_kept

    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        say(f"FAILED {o.stage} shard {o.shard}: {o.error}")
    kept, done = final_kept(cfg, paths)
    say(f"final: {done}/{cfg.num_shards} shards, {kept} samples kept in {paths.final_dir}")
    if any("No space left on device" in (o.error or "") for o in failed):
        say(f"datagen: error: {paths.root}: disk full; free some space and run the same command to resume")
    elif failed:
        say(f"{len(failed)} (stage, shard) failed; see `datagen status {paths.root}` and {paths.logs_dir}")
    elif done == cfg.num_shards:
        say(f"look at it: datagen show {paths.root} | datagen browse {paths.root} --out DIR | datagen status {paths.root} --report")
    return RunReport(paths, outcomes, jobs, kept, failed, blocked)
