"""t2i: the target image, seeded per sample.

Backend `procedural`: an Open3D ray-cast render of the scene the prompts stage described,
with its truth (instance ids, depth, intrinsics, true 3D boxes) kept for later stages.
"""

from __future__ import annotations

import numpy as np

from datagen.sample import Rejected, Sample
from datagen.stage import Stage
from datagen.world import render_scene


class T2IStage(Stage):
    name = "t2i"
    requires = ("prompts",)
    reads = ("run",)
    backends = ("procedural",)

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        out: list[Sample | Rejected] = []
        for s in samples:
            scene = s.meta.get("truth", {}).get("scene")
            if scene is None:
                out.append(self.reject(s, "no_scene_for_procedural_t2i"))
                continue
            r = render_scene(scene)
            s.set_array("image", r.image)
            s.set_array("truth_instance", r.instance)
            s.set_array("truth_depth", r.depth.astype(np.float32))
            s.meta["width"], s.meta["height"] = int(r.image.shape[1]), int(r.image.shape[0])
            s.meta["truth"]["camera"] = {k: float(r.camera[k]) for k in ("fx", "fy", "cx", "cy")}
            for subject in s.subjects:
                subject["truth_box_3d"] = r.boxes[subject["sid"]]
            out.append(s)
        return out
