"""depth: metric depth (metres, NaN where unknown) and the pinhole camera it implies.

Backend `procedural`: the renderer's depth and intrinsics, with optional relative noise.
"""

from __future__ import annotations

import numpy as np

from datagen.sample import Rejected, Sample
from datagen.seeds import stage_rng
from datagen.stage import Stage


class DepthStage(Stage):
    name = "depth"
    requires = ("t2i",)
    backends = ("procedural",)

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        for s in samples:
            depth = s.array("truth_depth", self.name).astype(np.float32)
            if self.cfg.noise_std > 0:
                rng = stage_rng(s.seed, self.name)
                depth = depth * (1.0 + self.cfg.noise_std * rng.standard_normal(depth.shape)).astype(np.float32)
            s.set_array("depth", depth)
            s.meta["camera"] = {"model": "pinhole", **s.meta["truth"]["camera"]}
            s.meta["depth"] = {"units": "m", "source": "procedural"}
        return list(samples)
