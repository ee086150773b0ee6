"""Judge one committed (row, sample): read its generated images, score every mode, commit."""

from __future__ import annotations

from pathlib import Path

from datagen.eval.config import EvalConfig
from datagen.eval.eval_set import EvalItem, load_sample
from datagen.eval.generation import Row, read_generated
from datagen.eval.judging import Judges, commit_scores, score_path, score_sample


def judge_item(judges: Judges, cfg: EvalConfig, out: Path, row: Row, item: EvalItem) -> str:
    path = score_path(out, row.id, item.key)
    if path.is_file():
        return "skipped"
    images, done = read_generated(out, row, item.key, cfg.modes)
    scores = score_sample(judges, load_sample(item), images)
    commit_scores(path, {"row": row.id, "key": item.key, "subjects": item.subjects, "seconds": done["seconds"], "modes": scores})
    return "done"
