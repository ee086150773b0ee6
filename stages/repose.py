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

Repair before drop (`retries`, beyond the paper, which edits each subject once): a subject
whose identity image idcheck would reject (identity_lost, identity_copy) is edited again, up
to `retries` times, before idcheck drops it; many-subject samples, which lose a subject most
often, survive more. The loop lives here because only here are both models at hand: Kontext is
this stage's, and idcheck's check is small (DINOv2-B, 0.2 GB, or a colour histogram), so repose
borrows it (an IdcheckStage it holds, idcheck's own config) rather than idcheck loading a second
Kontext, or the run looping between stages that markers and resume would then have to track.
Idcheck still runs after as its own stage and stays the one verdict: it scores what repose
kept and drops what still fails (the last attempt's image); repose's check only decides
whether to try again. Attempt k of a subject (0 first) draws its seed from its own stream
stage_rng(sample seed, "repose", sid, k) and takes the template after attempt k-1's; attempt 0
is the draw repose always made, so `retries: 0` makes the same edits as before. Each round
edits every still-failing subject of the batch together: the same config gives the same bytes,
and a resumed shard redoes the whole loop. Repose's fingerprint holds idcheck's settings when
retries > 0 (reads_stages). Each subject's json keeps its count of edits (`repose.attempts`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datagen.config import RunConfig
from datagen.recipe.identity_input import identity_input
from datagen.seeds import stage_rng
from datagen.stages.base import PENDING, Backend, BackendAttribute, BackendStage
from datagen.stages.idcheck import IdcheckStage, identity_reason
from datagen.stages.source import given, has_reference
from datagen.store.inflight import Rejected, Sample

# One identity image to make: (sample, subject position, attempt: 0 first).
Job = tuple[Sample, int, int]


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

    def unusable(self, s: Sample) -> str | None:
        return None if s.meta.get("truth", {}).get("scene") is not None else "no_scene_for_procedural_repose"

    def make(self, jobs: list[Job]) -> list[np.ndarray]:
        from datagen.world.render import render_identity  # Open3D: loaded by the first render, not with the stage

        size, world = self.cfg.identity_size, self.stage.run_cfg.world
        return [
            render_identity(s.meta["truth"]["scene"]["subjects"][s.subjects[i]["sid"]], size,
                            self.stage.subject_rng(s, s.subjects[i], attempt), world)
            for s, i, attempt in jobs
        ]  # fmt: skip


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

    def unusable(self, s: Sample) -> str | None:
        return None

    def make(self, jobs: list[Job]) -> list[np.ndarray]:
        from datagen.models.diffusion import edit_images

        c, name = self.cfg, self.stage.name
        edits = []  # (input image, instruction, seed), in job order
        for s, i, attempt in jobs:
            subj, mask = s.subjects[i], s.array("masks", name)[i]
            inp = identity_input(s.array("image", name), mask, subj["box_2d"], c.identity_size, c.subject_fill, c.background_grey)
            edits.append((inp, *self.stage.instruction(s, subj, attempt)))
        edited: list[np.ndarray] = []
        for at in range(0, len(edits), c.subjects_per_call):
            images, instructions, seeds = zip(*edits[at : at + c.subjects_per_call], strict=True)
            edited.extend(edit_images(self.pipe, c, list(images), list(instructions), list(seeds), self.device))
        return edited


class ReposeStage(BackendStage):
    name = "repose"
    requires = ("segment",)
    loads_when_needed = True  # an ingest source may give every identity
    reads = ("world",)
    backend_types = {"procedural": ProceduralRepose, "diffusers": DiffusersRepose}
    backends = tuple(backend_types)

    pipe = BackendAttribute()  # the Kontext pipeline, once loaded

    def __init__(self, cfg: RunConfig) -> None:
        super().__init__(cfg)
        # idcheck's check, borrowed for repair (cheap to build: it loads in setup()).
        self.checker = IdcheckStage(cfg) if self.cfg.retries else None

    @classmethod
    def reads_stages(cls, cfg: RunConfig) -> tuple[str, ...]:
        return ("idcheck",) if cfg.stages.repose.retries else ()

    def setup(self) -> None:
        super().setup()
        if self.checker is not None:
            self.checker.setup()

    def load_if_pending(self) -> None:
        super().load_if_pending()
        if self.checker is not None:
            self.checker.load_if_pending()

    def passes_over(self, sample: Sample) -> bool:
        return given(sample, "identity")

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        # An ingested sample whose source gave reference identities keeps them (identity.source: reference).
        rest = [s for s in samples if not given(s, "identity")]
        if rest:
            self.load_if_pending()
        out: dict[str, Sample | Rejected] = {}
        for s in rest:
            reason = self.backend.unusable(s)
            if reason:
                out[s.key] = self.reject(s, reason)
        todo = [s for s in rest if s.key not in out]
        made = self.make_identities([(s, i) for s in todo for i, subj in enumerate(s.subjects) if not has_reference(subj)])
        size = self.cfg.identity_size
        for s in todo:
            set_identities(s, {i: made[s.key, i][0] for i in range(len(s.subjects)) if (s.key, i) in made}, size)
            for i, subj in enumerate(s.subjects):
                if (s.key, i) in made:
                    subj["repose"] = {"attempts": made[s.key, i][1]}
        return [out.get(s.key, s) for s in samples]

    def make_identities(self, subjects: list[tuple[Sample, int]]) -> dict[tuple[str, int], tuple[np.ndarray, int]]:
        """(sample key, position) -> (identity image, edits made): each subject edited once, and
        those idcheck would reject again, up to `retries` times; a subject that never passes
        keeps its last edit (idcheck drops it)."""
        made: dict[tuple[str, int], tuple[np.ndarray, int]] = {}
        todo = subjects
        for attempt in range(self.cfg.retries + 1):
            if not todo:
                break
            for (s, i), image in zip(todo, self.backend.make([(s, i, attempt) for s, i in todo]), strict=True):
                made[s.key, i] = (image, attempt + 1)
            if attempt < self.cfg.retries:  # after the last edit, idcheck's own run decides
                todo = self.failing(todo, made)
        return made

    def failing(self, subjects: list[tuple[Sample, int]], made: dict) -> list[tuple[Sample, int]]:
        """The subjects whose identity idcheck would reject; one an earlier stage already marked
        to drop (filters.apply: last) is doomed anyway, so not worth another edit."""
        live = [(s, i) for s, i in subjects if PENDING not in s.subjects[i]]
        sims = self.checker.backend.score([(s, i, made[s.key, i][0]) for s, i in live])
        return [(s, i) for (s, i), sim in zip(live, sims, strict=True) if identity_reason(sim, self.checker.cfg)]

    def subject_rng(self, s: Sample, subject: dict, attempt: int = 0) -> np.random.Generator:
        """Subject's stream for one attempt; attempt 0's is the one repose always drew from."""
        return stage_rng(s.seed, self.name, subject["sid"], *([attempt] if attempt else []))

    def instruction(self, s: Sample, subject: dict, attempt: int = 0) -> tuple[str, int]:
        """(edit instruction, seed) of one subject's attempt: the template after the previous
        attempt's (a new wording, not only new noise), the seed from the attempt's own stream."""
        rng = stage_rng(s.seed, self.name, subject["sid"])
        first = int(rng.integers(len(self.cfg.templates)))
        seed = int((rng if attempt == 0 else self.subject_rng(s, subject, attempt)).integers(2**63))
        template = self.cfg.templates[(first + attempt) % len(self.cfg.templates)]
        return template.format(name=subject["name"]), seed
