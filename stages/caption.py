"""caption: an ingest run's names, captions and prompt, where the source leaves them out.

Backend `source`: the source's own text. A subject without a name rejects the sample
(`no_name`: grounding and the trainer's routing need one); a missing caption is the name; a
missing prompt is the captions joined; the background prompt is the full prompt (a dataset
image's background has no separate description).

Backend `transformers`: Qwen2.5-VL looks at the image (and each subject's reference, when the
source gives one) and writes what the prompts stage writes for a generated scene, decoding
constrained to the same JSON schema with exactly the image's subject count; the answer is
validated the same way and redrafted with a new seed up to `validation_retries` times. Names the
source gives are kept; the VLM's fill the rest.

Backend `auto`: `source` for a row that names every subject, `transformers` for the others.
"""

from __future__ import annotations

import json

from datagen.models.llm import mix_seed, validated_answers
from datagen.recipe.scene_spec import Invalid, SceneSpec, json_schema, parse_scene
from datagen.stages.base import Backend, BackendAttribute, BackendStage
from datagen.stages.source import GIVEN, given
from datagen.store.inflight import Rejected, Sample

CAPTION_SYSTEM = (
    "You describe photographs for a multi-subject image dataset. Answer with one JSON object and "
    "nothing else: the scene as a text-to-image prompt, its background, and each subject's short "
    "name and one-line caption."
)
CAPTION_REQUEST = (
    "The image shows exactly {n} subject(s){hint}. Describe it as a scene: a full prompt, its "
    "background, and for each subject, in the order given, a short name and a caption."
)


def fill_from_source(s: Sample) -> Sample | str:
    """The source's own text, completed; or the reason the sample cannot have it."""
    for subj in s.subjects:
        if not subj.get("name"):
            return "no_name"
        subj["caption"] = subj.get("caption") or subj["name"]
    prompt = s.meta.setdefault("prompt", {})
    prompt["full"] = prompt.get("full") or "; ".join(subj["caption"] for subj in s.subjects)
    prompt["background"] = prompt.get("background") or prompt["full"]
    return s


class SourceCaptions(Backend):
    def write(self, samples: list[Sample]) -> list[Sample | Rejected]:
        out: list[Sample | Rejected] = []
        for s in samples:
            done = fill_from_source(s)
            out.append(done if isinstance(done, Sample) else self.stage.reject(s, done))
        return out


class VLMCaptions(Backend):
    """Qwen2.5-VL through transformers (datagen.models.vlm)."""

    engine = None

    def load(self) -> None:
        from datagen.models.vlm import TransformersVLM

        self.engine = TransformersVLM(self.cfg, self.stage.run_cfg.models_dir)

    def generation_settings(self) -> dict | None:
        c = self.cfg
        return {"backend": c.backend, "model": c.model, "revision": c.revision, "dtype": c.dtype,
                "temperature": c.temperature, "top_p": c.top_p, "top_k": c.top_k, "constrained": "json_schema"}  # fmt: skip

    def request(self, s: Sample, attempt: int):
        from datagen.models.vlm import VLMRequest

        n = len(s.subjects)
        names = [subj.get("name") for subj in s.subjects]
        hint = f" (named, in order: {json.dumps(names)})" if all(names) else ""
        images = [s.array("image", self.stage.name)]
        if given(s, "identity"):  # every subject's reference, in subject order
            images += list(s.arrays["identity"])
        return VLMRequest(CAPTION_SYSTEM, CAPTION_REQUEST.format(n=n, hint=hint), images, json_schema(n, self.cfg.limits), mix_seed(s.seed, attempt))

    def write(self, samples: list[Sample]) -> list[Sample | Rejected]:
        if self.engine is None:
            self.load()
        by_key = {s.key: s for s in samples}
        answers: dict[str, SceneSpec | Invalid] = validated_answers(
            list(by_key), lambda key, attempt: self.request(by_key[key], attempt), self.engine.generate,
            lambda key, text: parse_scene(text, len(by_key[key].subjects), self.cfg.limits), self.cfg.validation_retries,
        )  # fmt: skip
        out: list[Sample | Rejected] = []
        for s in samples:
            spec = answers[s.key]
            if isinstance(spec, Invalid):
                out.append(self.stage.reject(s, f"invalid_vlm_output:{spec.reason}"))
                continue
            for subj, said in zip(s.subjects, spec.subjects, strict=True):
                subj["name"] = subj.get("name") or said.name
                subj["caption"] = subj.get("caption") or said.caption
            s.meta["prompt"] = {"full": s.meta.get("prompt", {}).get("full") or spec.prompt, "background": spec.background}
            out.append(s)
        return out


class AutoCaptions(VLMCaptions):
    """The source's text for a row that names every subject; Qwen2.5-VL for the others, loaded
    on the first that needs it. A row the source names records no VLM (`given.captions`)."""

    def load(self) -> None:
        """Nothing yet: `write` loads the VLM when a row needs it."""

    def write(self, samples: list[Sample]) -> list[Sample | Rejected]:
        named = {s.key for s in samples if s.subjects and all(subj.get("name") for subj in s.subjects)}
        done: dict[str, Sample | Rejected] = {}
        for s in samples:
            if s.key in named:
                s.meta.setdefault(GIVEN, {})["captions"] = True
                filled = fill_from_source(s)
                done[s.key] = filled if isinstance(filled, Sample) else self.stage.reject(s, filled)
        rest = [s for s in samples if s.key not in named]
        if rest:
            if self.engine is None:
                super().load()
            done.update((s.key, r) for s, r in zip(rest, super().write(rest), strict=True))
        return [done[s.key] for s in samples]


class CaptionStage(BackendStage):
    name = "caption"
    requires = ("source",)
    backend_types = {"source": SourceCaptions, "transformers": VLMCaptions, "auto": AutoCaptions}
    backends = tuple(backend_types)

    engine = BackendAttribute()

    def passes_over(self, sample: Sample) -> bool:
        return given(sample, "captions")  # auto: the source's own text, no VLM

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        return self.backend.write(samples)
