"""repose: an identity image per subject, re-posed and re-lit, all at one size.

Backend `procedural`: re-render the subject alone from the scene, rotated, under a new light,
centred on a neutral background. Seeded per (sample, subject).
"""

from __future__ import annotations

import numpy as np

from datagen.sample import Rejected, Sample
from datagen.seeds import stage_rng
from datagen.stage import Stage
from datagen.world import render_identity


class ReposeStage(Stage):
    name = "repose"
    requires = ("segment",)
    reads = ("world",)
    backends = ("procedural",)

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        out: list[Sample | Rejected] = []
        size = self.cfg.identity_size
        for s in samples:
            scene = s.meta.get("truth", {}).get("scene")
            if scene is None:
                out.append(self.reject(s, "no_scene_for_procedural_repose"))
                continue
            ids = [
                render_identity(scene["subjects"][subj["sid"]], size, stage_rng(s.seed, self.name, subj["sid"]), self.run_cfg.world)
                for subj in s.subjects
            ]
            s.set_array("identity", np.stack(ids) if ids else np.zeros((0, size, size, 3), np.uint8))
            for subj in s.subjects:
                subj["identity"] = {"width": size, "height": size}
            out.append(s)
        return out
