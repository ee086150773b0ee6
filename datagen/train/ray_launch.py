"""`datagen train --ray-workers N`: the same training loop on Ray Train's TorchTrainer, for
users who already run a Ray cluster. Ray starts one worker per GPU (or CPU process), forms the
torch.distributed group, and each worker runs `loop.train` under accelerate, which finds that
group already there: data split, checkpoints and resume are exactly those of `accelerate launch`.

Everything a worker needs travels as plain data (config name or path, overrides, shard URLs);
the run directory must be shared storage on a multi-node cluster, as for `datagen run`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datagen.errors import UserError
from datagen.models.hub import require

LOG_NAME = "train.log"


def _worker(job: dict[str, Any]) -> None:
    from datagen.train.config import load_train_config
    from datagen.train.loop import train
    from datagen.train.source import ShardSource

    cfg = load_train_config(job["config"], job["overrides"])
    from datagen.train.config import DataSource

    source = ShardSource([(DataSource(**spec), urls) for spec, urls in job["sources"]], cfg)
    log = Path(job["out"]) / LOG_NAME

    def say(message: str) -> None:
        # Only the main process says anything; Ray's own log forwarding is off (its actors are chatty).
        with open(log, "a") as f:
            print(message, file=f, flush=True)

    train(cfg, source, Path(job["out"]), resume=job["resume"], max_steps=job["max_steps"], say=say)


def outcome(out: Path, total_steps: int) -> dict[str, Any]:
    """What the run did, from its newest checkpoint (every run ends with one) and its LoRA."""
    from datagen.train.checkpoint import latest
    from datagen.train.model import LORA_FILE

    last = latest(out)
    state = json.loads((last / "state.json").read_text()) if last is not None else {}
    lora = out / "lora" / LORA_FILE
    done = state.get("step", 0) >= total_steps and lora.is_file()
    return {"steps": state.get("step", 0), "last_loss": state.get("loss"), "lora": str(lora) if done else None}


def _user_error(exc: BaseException) -> UserError | None:
    """The UserError a worker raised, wherever Ray wrapped it."""
    seen: list[BaseException] = [exc]
    while seen:
        e = seen.pop()
        if isinstance(e, UserError):
            return e
        seen += [x for x in (e.__cause__, e.__context__) if x is not None]
        seen += [x for x in getattr(e, "worker_failures", {}).values() if isinstance(x, BaseException)]
    return None


def train_on_ray(
    config: str, overrides: list[str], sources: list[tuple[Any, list[str]]], out: Path, *, total_steps: int, workers: int, use_gpu: bool,
    address: str | None, resume: bool, max_steps: int | None, say: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    """Run the training loop on `workers` Ray Train workers; returns the steps done, last loss and LoRA."""
    require("ray.train.torch", "train")
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from datagen.pipeline.ray_runner import init_ray, shutdown_ray

    if workers < 1:
        raise UserError(f"--ray-workers: must be at least 1 (got {workers})")
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG_NAME
    start = log.stat().st_size if log.is_file() else 0
    init_ray(address)
    job = {"config": config, "overrides": overrides, "sources": [(s.model_dump(), urls) for s, urls in sources],
           "out": str(out.resolve()), "resume": resume,
           "max_steps": max_steps}  # fmt: skip
    trainer = TorchTrainer(
        _worker,
        train_loop_config=job,
        # gloo on CPU workers, so CPU-only clusters (and tests) form the same group.
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        # A failed run is resumed by the user with --resume, from datagen's own checkpoints.
        run_config=RunConfig(name="datagen-train", storage_path=str((out / "ray").resolve()),
                             failure_config=FailureConfig(max_failures=0)),
    )  # fmt: skip
    say(f"training on Ray Train: {workers} {'GPU' if use_gpu else 'CPU'} worker(s); progress in {log}")
    try:
        trainer.fit()
    except Exception as e:
        known = _user_error(e)
        if known is not None:
            raise UserError(str(known)) from None
        raise
    finally:
        if address is None:
            shutdown_ray()
        if log.is_file():
            with open(log) as f:
                f.seek(start)
                for line in f.read().splitlines():
                    say(line)
    return outcome(out, total_steps)
