"""t2i: the target image, seeded per sample.

Backend `procedural`: an Open3D ray-cast render of the scene the prompts stage described,
with its truth (instance ids, depth, intrinsics, true 3D boxes) kept for later stages.

Backend `diffusers`: FLUX.1 [dev] by default, or any text-to-image pipeline by id or path
(`AutoPipelineForText2Image`), batched, one generator per sample. Where the prompts stage
laid out a procedural scene (`prompts.layout: procedural`) its truth is rendered too, for
the oracle stages of a plumbing test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.store.inflight import Rejected, Sample
from datagen.seeds import stage_rng
from datagen.stages.base import Stage
from datagen.world import render_scene


def keep_truth_render(s: Sample, scene: dict) -> np.ndarray:
    """Render the scene and keep its truth on the sample; returns the rendered image."""
    r = render_scene(scene)
    s.set_array("truth_instance", r.instance)
    s.set_array("truth_depth", r.depth.astype(np.float32))
    s.meta["truth"]["camera"] = {k: float(r.camera[k]) for k in ("fx", "fy", "cx", "cy")}
    for subject in s.subjects:
        subject["truth_box_3d"] = r.boxes[subject["sid"]]
    return r.image


class T2IStage(Stage):
    name = "t2i"
    requires = ("prompts",)
    reads = ("run",)
    backends = ("procedural", "diffusers")

    pipe: Any = None
    device = "cpu"

    def setup(self) -> None:
        if self.cfg.backend == "diffusers":
            from datagen.models.diffusion import load_text_to_image, place

            self.pipe = load_text_to_image(self.cfg, self.run_cfg.models_dir)
            self.device = place(self.pipe, self.cfg)

    def generation_settings(self) -> dict | None:
        if self.cfg.backend != "diffusers":
            return None
        from datagen.models.diffusion import pipeline_settings

        return pipeline_settings(self.cfg, self.pipe, width=self.run_cfg.run.width, height=self.run_cfg.run.height)

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        if self.cfg.backend == "diffusers":
            return self._diffusers(samples)
        out: list[Sample | Rejected] = []
        for s in samples:
            scene = s.meta.get("truth", {}).get("scene")
            if scene is None:
                out.append(self.reject(s, "no_scene_for_procedural_t2i"))
                continue
            self._set_image(s, keep_truth_render(s, scene))
            out.append(s)
        return out

    def _diffusers(self, samples: list[Sample]) -> list[Sample | Rejected]:
        from datagen.models.diffusion import text_to_image

        if not samples:
            return []
        run = self.run_cfg.run
        seeds = [int(stage_rng(s.seed, self.name).integers(2**63)) for s in samples]
        images = text_to_image(self.pipe, self.cfg, [s.meta["prompt"]["full"] for s in samples], seeds, run.width, run.height, self.device)
        for s, image in zip(samples, images, strict=True):
            self._set_image(s, image)
            scene = s.meta.get("truth", {}).get("scene")
            if scene is not None:
                keep_truth_render(s, scene)
        return list(samples)

    def _set_image(self, s: Sample, image: np.ndarray) -> None:
        s.set_array("image", image)
        s.meta["width"], s.meta["height"] = int(image.shape[1]), int(image.shape[0])
