"""Fingerprints of (stage, shard) outputs: the stage's own settings chained to its input's.

A committed output is reused only when its fingerprint matches, so changing one stage's
setting reruns that stage and those after it, and nothing before. Execution settings (exec:
workers, batch size, resources) never enter a fingerprint: they do not change the bytes.
"""

from __future__ import annotations

from datagen import __version__
from datagen.config import RunConfig, sha256_json
from datagen.schema import SCHEMA_VERSION
from datagen.stages import STAGES


def stage_fingerprints(cfg: RunConfig, shard: int) -> dict[str, str]:
    indices = cfg.shard_indices(shard)
    fp = sha256_json(
        {"schema": SCHEMA_VERSION, "seed": cfg.run.seed, "split": cfg.run.split, "shard": shard,
         "indices": [indices.start, indices.stop]}  # fmt: skip
    )
    recipe = cfg.recipe_dict()
    fps: dict[str, str] = {}
    last = cfg.stages.order[-1]
    for name in cfg.stages.order:
        cls = STAGES[name]
        payload = {
            "input": fp,
            "stage": name,
            "version": cls.version,
            "config": recipe["stages"][name],
            "reads": {section: recipe[section] for section in cls.reads},
        }
        others = cls.reads_stages(cfg)
        if others:  # only where a stage says so, so the others' fingerprints stay as they were
            payload["stages_read"] = {other: recipe["stages"][other] for other in others}
        if name == last:
            # The final stage writes provenance: the whole recipe's hash and datagen's version.
            payload["provenance"] = [cfg.config_sha256(), __version__, cfg.run.name]
        fp = fps[name] = sha256_json(payload)
    return fps
