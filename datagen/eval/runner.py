"""`datagen eval model` on Ray: the eval's only Ray code.

Two passes over (row, sample) pairs, each a Ray Data `map` over a pool of long-lived actors
like the pipeline's GPU stages: generation (FLUX.1 Kontext loaded once per actor, every row's
LoRA attached once), then judging (the metric models loaded once per actor). Each pair is
committed to OUT as it finishes and skipped when found, so a killed eval resumes where it
stopped; the driver then reads the committed scores and writes the results.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datagen.eval.config import EvalConfig
from datagen.eval.eval_set import EvalItem
from datagen.eval.generation import Row
from datagen.train.config import TrainConfig


def _rows(rows_json: str) -> list[Row]:
    return [Row(**r) for r in json.loads(rows_json)]


class _GenerateWorker:
    def __init__(self, cfg_json: str, train_json: str, rows_json: str, out: str) -> None:
        from datagen.eval.generation import Generator

        self.out = Path(out)
        self.rows = {r.id: r for r in _rows(rows_json)}
        self.gen = Generator(EvalConfig.model_validate_json(cfg_json), TrainConfig.model_validate_json(train_json), list(self.rows.values()))

    def __call__(self, task: dict[str, Any]) -> dict[str, Any]:
        from datagen.eval.generation import generate_item

        item = EvalItem(**json.loads(task["item"]))
        return {**task, "status": generate_item(self.gen, self.out, self.rows[task["row"]], item)}


class _JudgeWorker:
    def __init__(self, cfg_json: str, rows_json: str, out: str) -> None:
        from datagen.eval.judging import Judges

        self.cfg = EvalConfig.model_validate_json(cfg_json)
        self.out = Path(out)
        self.rows = {r.id: r for r in _rows(rows_json)}
        self.judges = Judges.load(self.cfg)

    def __call__(self, task: dict[str, Any]) -> dict[str, Any]:
        from datagen.eval.scoring_task import judge_item

        item = EvalItem(**json.loads(task["item"]))
        return {**task, "status": judge_item(self.judges, self.cfg, self.out, self.rows[task["row"]], item)}


def _map(tasks: list[dict[str, Any]], worker: type, args: tuple, workers: int, gpus: float, say: Callable[[str], None], what: str) -> int:
    import ray
    from ray.data import ActorPoolStrategy

    from datagen.errors import UserError
    from datagen.pipeline.ray_runner import user_error_message

    if not tasks:
        return 0
    ds = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    ds = ds.map(worker, fn_constructor_args=args, compute=ActorPoolStrategy(size=max(1, min(workers, len(tasks)))),
                num_cpus=1, num_gpus=gpus or None)  # fmt: skip
    done = 0
    try:
        for row in ds.iter_rows():
            done += row["status"] == "done"
            say(f"{what}: {row['row']} {json.loads(row['item'])['key']} {row['status']}")
    except Exception as e:
        message = user_error_message(e)
        if message is None:
            raise
        raise UserError(message) from None
    return done


def run_eval_on_ray(
    cfg: EvalConfig, train: TrainConfig, rows: list[Row], items: list[EvalItem], out: Path,
    workers: int | None, address: str | None, say: Callable[[str], None],
) -> dict[str, int]:  # fmt: skip
    """Generate and judge every pending (row, sample); returns counts of what this call did."""
    from datagen.eval.generation import is_generated
    from datagen.eval.judging import score_path
    from datagen.pipeline.ray_runner import cluster_resources, init_ray, quiet_data_context

    init_ray(address)
    quiet_data_context(address, -1)  # -1: no stall timeout; a model load may take many minutes
    _, gpus = cluster_resources()
    per_worker = 1.0 if gpus >= 1 else 0.0
    workers = workers or (int(gpus) if gpus >= 1 else 1)
    rows_json = json.dumps([asdict(r) for r in rows])
    # Row-major order: an actor mostly meets one row after another, not a LoRA per sample.
    pairs = [(r, i) for r in rows for i in items]
    to_generate = [{"row": r.id, "item": json.dumps(asdict(i))} for r, i in pairs if not is_generated(out, r, i.key)]
    say(f"generation: {len(to_generate)} of {len(pairs)} (row, sample) pairs to do")
    generated = _map(to_generate, _GenerateWorker, (cfg.model_dump_json(), train.model_dump_json(), rows_json, str(out)),
                     workers, per_worker, say, "generated")  # fmt: skip
    to_judge = [{"row": r.id, "item": json.dumps(asdict(i))} for r, i in pairs if not score_path(out, r.id, i.key).is_file()]
    say(f"judging: {len(to_judge)} of {len(pairs)} to do")
    judged = _map(to_judge, _JudgeWorker, (cfg.model_dump_json(), rows_json, str(out)), workers, per_worker, say, "judged")
    return {"pairs": len(pairs), "generated": generated, "judged": judged}
