"""prompts: a full prompt, a background caption and 3-10 subjects (name + caption) per sample.

Backend `procedural`: a grammar over the procedural world's vocabulary. It also leaves the
3D scene it describes under `truth.scene`, which the procedural t2i renders.
"""

from __future__ import annotations

from datagen.sample import Rejected, Sample
from datagen.seeds import stage_rng
from datagen.stage import Stage
from datagen.world import sample_scene, scene_prompt


class PromptsStage(Stage):
    name = "prompts"
    reads = ("run", "world")
    backends = ("procedural",)

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        lo, hi = self.cfg.num_subjects
        run = self.run_cfg.run
        for s in samples:
            rng = stage_rng(s.seed, self.name)
            n = int(rng.integers(lo, hi + 1))
            scene = sample_scene(rng, n, run.width, run.height, self.run_cfg.world)
            s.meta["prompt"] = scene_prompt(scene)
            s.meta["requested_subjects"] = n
            # sid ties a subject to its scene object through later filtering.
            s.meta["subjects"] = [
                {"sid": i, "name": obj["name"], "caption": obj["caption"]} for i, obj in enumerate(scene["subjects"])
            ]
            s.meta["truth"] = {"scene": scene}
        return list(samples)
