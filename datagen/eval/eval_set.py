"""The held-out samples `datagen eval model` judges on: a finished evaluation run's final shards.

Only a run built with `run.split: eval` is an evaluation set: a training run's samples were
seen in training, so judging on them says nothing about held-out layouts. Listing reads each
sample's JSON only; arrays are decoded where a worker needs them (`load_sample`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from datagen.errors import ShardReadError, UserError
from datagen.final.decode import BadSample, decode_sample
from datagen.final.read import final_shards
from datagen.schema import JSON_FIELD, KEY_RE, READABLE_SCHEMAS
from datagen.store.shards import read_tar


@dataclass(frozen=True)
class EvalItem:
    key: str
    shard: str
    subjects: int

    @property
    def seed(self) -> int:
        """The sample's generation seed offset: its key as a number, the same for every row and
        mode, so rows are compared on the same noise."""
        return int(self.key.replace("_", ""))


def _members(shard: str, keep=None) -> dict[str, dict[str, bytes]]:
    try:
        return read_tar(Path(shard), keep)
    except ShardReadError as e:
        raise UserError(str(e)) from None


def eval_items(run_dir: Path) -> list[EvalItem]:
    """Every sample of an evaluation run, in key order. One-line UserError when `run_dir` is not a
    finished datagen run, holds no sigma-set samples, or is a training run."""
    run_dir = Path(run_dir)
    if not (run_dir / "run.yaml").is_file():
        raise UserError(f"--data {run_dir}: not a datagen run (no run.yaml); give the directory `datagen run` made")
    items: list[EvalItem] = []
    for shard in final_shards(run_dir):
        for key, members in sorted(_members(str(shard), lambda key, field: field == JSON_FIELD).items()):
            if not KEY_RE.match(key) or JSON_FIELD not in members:
                raise UserError(f"{shard}: sample {key}: no {JSON_FIELD}; not a sigma-set shard")
            try:
                meta = json.loads(members[JSON_FIELD])
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise UserError(f"{shard}: sample {key}: bad json ({e})") from None
            schema = meta.get("schema") if isinstance(meta, dict) else None
            if schema not in READABLE_SCHEMAS:
                raise UserError(f"{shard}: sample {key}: schema {schema!r}, expected one of {', '.join(READABLE_SCHEMAS)}")
            split = (meta.get("generation") or {}).get("split", "train")
            if split != "eval":
                raise UserError(f"--data {run_dir}: sample {key} is from a training run (generation.split: {split}); "
                                "judge on a held-out run built with run.split: eval (configs/sigma_eval.yaml)")  # fmt: skip
            items.append(EvalItem(key, str(shard), len(meta.get("subjects", []))))
    return items


def load_sample(item: EvalItem) -> dict:
    """The decoded sample (json, image, masks, depth, identities) of one item, as training sees
    it: a non-square one (an ingested photograph) cut to the trainer's square window, not
    stretched (datagen.train.augment.window_view)."""
    from datagen.train.augment import window_view

    members = _members(item.shard, lambda key, field: key == item.key).get(item.key)
    if members is None:
        raise UserError(f"{item.shard}: no sample {item.key} (the run changed since the eval began)")
    try:
        return window_view(decode_sample(members, item.key))
    except BadSample as e:
        raise UserError(f"{item.shard}: sample {item.key}: {e}") from None
