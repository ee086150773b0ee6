"""repose: an identity image per subject, re-posed and re-lit, all at one size.

Backend `procedural`: re-render the subject alone from the scene, rotated, under a new light,
centred on a neutral background. Seeded per (sample, subject).

Backend `diffusers`: FLUX.1 Kontext edits the subject cut out with its mask on a neutral
background, padded square at the identity size (datagen.recipe.identity_input), with an
instruction drawn from `templates` and filled with the subject's name. Seeded per (sample,
subject); the subjects of all samples in a batch are edited together, `subjects_per_call`
at a time. The crop before editing is what the final writer keeps as crop_NN.png.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.recipe.identity_input import identity_input
from datagen.store.inflight import Rejected, Sample
from datagen.seeds import stage_rng
from datagen.stages.base import Stage
from datagen.world import render_identity


class ReposeStage(Stage):
    name = "repose"
    requires = ("segment",)
    reads = ("world",)
    backends = ("procedural", "diffusers")

    pipe: Any = None
    device = "cpu"

    def setup(self) -> None:
        if self.cfg.backend == "diffusers":
            from datagen.models.diffusion import load_kontext, place

            self.pipe = load_kontext(self.cfg, self.run_cfg.models_dir)
            self.device = place(self.pipe, self.cfg)

    def generation_settings(self) -> dict | None:
        if self.cfg.backend != "diffusers":
            return None
        from datagen.models.diffusion import pipeline_settings

        c = self.cfg
        return pipeline_settings(
            c, self.pipe, identity_size=c.identity_size, subject_fill=c.subject_fill, background_grey=c.background_grey
        )

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        if self.cfg.backend == "diffusers":
            return self._diffusers(samples)
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
            self._set_identities(s, ids)
            out.append(s)
        return out

    def instruction(self, s: Sample, subject: dict) -> tuple[str, int]:
        """(edit instruction, seed) of one subject: both drawn from its own stream."""
        rng = stage_rng(s.seed, self.name, subject["sid"])
        template = self.cfg.templates[int(rng.integers(len(self.cfg.templates)))]
        return template.format(name=subject["name"]), int(rng.integers(2**63))

    def _diffusers(self, samples: list[Sample]) -> list[Sample | Rejected]:
        from datagen.models.diffusion import edit_images

        c = self.cfg
        jobs = []  # (sample, input image, instruction, seed), subjects of every sample in order
        for s in samples:
            image, masks = s.array("image", self.name), s.array("masks", self.name)
            for subj, mask in zip(s.subjects, masks, strict=True):
                inp = identity_input(image, mask, subj["box_2d"], c.identity_size, c.subject_fill, c.background_grey)
                jobs.append((s, inp, *self.instruction(s, subj)))
        edited: list[np.ndarray] = []
        for at in range(0, len(jobs), c.subjects_per_call):
            chunk = jobs[at : at + c.subjects_per_call]
            edited.extend(edit_images(self.pipe, c, [j[1] for j in chunk], [j[2] for j in chunk], [j[3] for j in chunk], self.device))
        pos = 0
        for s in samples:
            self._set_identities(s, edited[pos : pos + len(s.subjects)])
            pos += len(s.subjects)
        return list(samples)

    def _set_identities(self, s: Sample, ids: list[np.ndarray]) -> None:
        size = self.cfg.identity_size
        s.set_array("identity", np.stack(ids) if ids else np.zeros((0, size, size, 3), np.uint8))
        for subj in s.subjects:
            subj["identity"] = {"width": size, "height": size}
