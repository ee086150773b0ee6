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

from datagen.seeds import stage_rng
from datagen.stages.base import Backend, BackendAttribute, BackendStage
from datagen.store.inflight import Rejected, Sample


def keep_truth_render(s: Sample, scene: dict) -> np.ndarray:
    """Render the scene and keep its truth on the sample; returns the rendered image."""
    from datagen.world.render import render_scene  # Open3D: loaded by the first render, not with the stage

    r = render_scene(scene)
    s.set_array("truth_instance", r.instance)
    s.set_array("truth_depth", r.depth.astype(np.float32))
    s.meta["truth"]["camera"] = {k: float(r.camera[k]) for k in ("fx", "fy", "cx", "cy")}
    for subject in s.subjects:
        subject["truth_box_3d"] = r.boxes[subject["sid"]]
    return r.image


def set_image(s: Sample, image: np.ndarray) -> None:
    s.set_array("image", image)
    s.meta["width"], s.meta["height"] = int(image.shape[1]), int(image.shape[0])


class ProceduralT2I(Backend):
    """The prompts stage's procedural scene, rendered."""

    def make_images(self, samples: list[Sample]) -> list[Sample | Rejected]:
        out: list[Sample | Rejected] = []
        for s in samples:
            scene = s.meta.get("truth", {}).get("scene")
            if scene is None:
                out.append(self.stage.reject(s, "no_scene_for_procedural_t2i"))
                continue
            set_image(s, keep_truth_render(s, scene))
            out.append(s)
        return out


class DiffusersT2I(Backend):
    """A diffusers text-to-image pipeline, one seeded generator per sample."""

    pipe: Any = None
    device = "cpu"

    def load(self) -> None:
        from datagen.models.diffusion import load_text_to_image, place

        self.pipe = load_text_to_image(self.cfg, self.stage.run_cfg.models_dir)
        self.device = place(self.pipe, self.cfg)

    def generation_settings(self) -> dict | None:
        from datagen.models.diffusion import pipeline_settings

        run = self.stage.run_cfg.run
        return pipeline_settings(self.cfg, self.pipe, width=run.width, height=run.height)

    def make_images(self, samples: list[Sample]) -> list[Sample | Rejected]:
        from datagen.models.diffusion import text_to_image

        if not samples:
            return []
        run = self.stage.run_cfg.run
        seeds = [int(stage_rng(s.seed, self.stage.name).integers(2**63)) for s in samples]
        prompts = [s.meta["prompt"]["full"] for s in samples]
        images = text_to_image(self.pipe, self.cfg, prompts, seeds, run.width, run.height, self.device)
        for s, image in zip(samples, images, strict=True):
            set_image(s, image)
            scene = s.meta.get("truth", {}).get("scene")
            if scene is not None:
                keep_truth_render(s, scene)
        return list(samples)


class T2IStage(BackendStage):
    name = "t2i"
    requires = ("prompts",)
    reads = ("run",)
    version = 2  # truth depth stored as log16 between stages
    backend_types = {"procedural": ProceduralT2I, "diffusers": DiffusersT2I}
    backends = tuple(backend_types)

    pipe = BackendAttribute()  # the diffusers pipeline, once loaded

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        return self.backend.make_images(samples)
