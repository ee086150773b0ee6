"""repose: an identity image per subject, re-posed and re-lit, all at one size.

Backend `procedural`: re-render the subject alone from the scene, rotated, under a new light,
centred on a neutral background. Seeded per (sample, subject).

Backend `diffusers`: FLUX.1 Kontext edits the subject cut out with its mask on a neutral
background, padded square at the identity size (datagen.recipe.identity_input), with an
instruction drawn from `templates` and filled with the subject's name. Seeded per (sample,
subject); the subjects of all samples in a batch are edited together, `subjects_per_call`
at a time. The crop before editing is what the final writer keeps as crop_NN.png.

An ingested subject whose source gave a reference keeps it (`identity.source: reference`);
repose makes the others' only, and loads its model on the first it has to make.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.recipe.identity_input import identity_input
from datagen.seeds import stage_rng
from datagen.stages.base import Backend, BackendAttribute, BackendStage
from datagen.stages.source import given, has_reference
from datagen.store.inflight import Rejected, Sample


def set_identities(s: Sample, made: dict[int, np.ndarray], size: int) -> None:
    """The identities repose made (by subject position); a subject whose source gave its
    reference keeps it (identity.source: reference)."""
    ids = [s.arrays["identity"][i] if has_reference(subj) else made[i] for i, subj in enumerate(s.subjects)]
    s.set_array("identity", np.stack(ids) if ids else np.zeros((0, size, size, 3), np.uint8))
    for subj in s.subjects:
        if not has_reference(subj):
            subj["identity"] = {"width": size, "height": size}


class ProceduralRepose(Backend):
    """Each subject of the procedural scene, rendered alone."""

    def repose(self, samples: list[Sample]) -> list[Sample | Rejected]:
        from datagen.world.render import render_identity  # Open3D: loaded by the first render, not with the stage

        out: list[Sample | Rejected] = []
        size, name, world = self.cfg.identity_size, self.stage.name, self.stage.run_cfg.world
        for s in samples:
            scene = s.meta.get("truth", {}).get("scene")
            if scene is None:
                out.append(self.stage.reject(s, "no_scene_for_procedural_repose"))
                continue
            made = {
                i: render_identity(scene["subjects"][subj["sid"]], size, stage_rng(s.seed, name, subj["sid"]), world)
                for i, subj in enumerate(s.subjects) if not has_reference(subj)
            }  # fmt: skip
            set_identities(s, made, size)
            out.append(s)
        return out


class DiffusersRepose(Backend):
    """FLUX.1 Kontext edits of each subject's crop, the subjects of a batch together."""

    pipe: Any = None
    device = "cpu"

    def load(self) -> None:
        from datagen.models.diffusion import load_kontext, place

        self.pipe = load_kontext(self.cfg, self.stage.run_cfg.models_dir)
        self.device = place(self.pipe, self.cfg)

    def generation_settings(self) -> dict | None:
        from datagen.models.diffusion import pipeline_settings

        c = self.cfg
        return pipeline_settings(
            c, self.pipe, identity_size=c.identity_size, subject_fill=c.subject_fill, background_grey=c.background_grey
        )

    def repose(self, samples: list[Sample]) -> list[Sample | Rejected]:
        from datagen.models.diffusion import edit_images

        c = self.cfg
        jobs = []  # (sample key, subject position, input image, instruction, seed), in order
        for s in samples:
            image, masks = s.array("image", self.stage.name), s.array("masks", self.stage.name)
            for i, (subj, mask) in enumerate(zip(s.subjects, masks, strict=True)):
                if has_reference(subj):
                    continue
                inp = identity_input(image, mask, subj["box_2d"], c.identity_size, c.subject_fill, c.background_grey)
                jobs.append((s.key, i, inp, *self.stage.instruction(s, subj)))
        edited: list[np.ndarray] = []
        for at in range(0, len(jobs), c.subjects_per_call):
            _, _, images, instructions, seeds = zip(*jobs[at : at + c.subjects_per_call], strict=True)
            edited.extend(edit_images(self.pipe, c, list(images), list(instructions), list(seeds), self.device))
        made: dict[str, dict[int, np.ndarray]] = {s.key: {} for s in samples}
        for (key, i, *_), identity in zip(jobs, edited, strict=True):
            made[key][i] = identity
        for s in samples:
            set_identities(s, made[s.key], c.identity_size)
        return list(samples)


class ReposeStage(BackendStage):
    name = "repose"
    requires = ("segment",)
    loads_when_needed = True  # an ingest source may give every identity
    reads = ("world",)
    backend_types = {"procedural": ProceduralRepose, "diffusers": DiffusersRepose}
    backends = tuple(backend_types)

    pipe = BackendAttribute()  # the Kontext pipeline, once loaded

    def passes_over(self, sample: Sample) -> bool:
        return given(sample, "identity")

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        # An ingested sample whose source gave reference identities keeps them (identity.source: reference).
        rest = [s for s in samples if not given(s, "identity")]
        if rest:
            self.load_if_pending()
        made = dict(zip([s.key for s in rest], self.backend.repose(rest), strict=True)) if rest else {}
        return [made.get(s.key, s) for s in samples]

    def instruction(self, s: Sample, subject: dict) -> tuple[str, int]:
        """(edit instruction, seed) of one subject: both drawn from its own stream."""
        rng = stage_rng(s.seed, self.name, subject["sid"])
        template = self.cfg.templates[int(rng.integers(len(self.cfg.templates)))]
        return template.format(name=subject["name"]), int(rng.integers(2**63))
