"""prompts: a full prompt, a background caption and 3-10 subjects (name + caption) per sample.

The subject count N is drawn per sample from the configured distribution (datagen.recipe.diversity).

Backend `procedural`: a grammar over the procedural world's vocabulary. It also leaves the
3D scene it describes under `truth.scene`, which the procedural t2i renders.

Backends `transformers` and `vllm`: an LLM (Qwen3 by default) writes the scene from a seeded
theme and background, decoding constrained to a JSON schema with exactly N subjects; the
answer is validated (datagen.recipe.scene_spec), and redrafted with a new seed up to
`validation_retries` times before the sample is rejected with the last reason.

Near-duplicate prompts across the run are rejected (`dedup`): the sample with the lowest index
keeps a normalised prompt, whatever the worker count or the order shards finish in. Every
sample claims its prompt here (datagen.store.claims); one whose prompt a lower index already
claims is rejected at once, before any GPU stage sees it. A lower index that claims later
takes the prompt over, and the final stage rejects the one it displaced (datagen.pipeline.dedup).
"""

from __future__ import annotations

from pathlib import Path

from datagen.config import RunConfig, sha256_json
from datagen.models.llm import LLMEngine, LLMRequest, mix_seed, validated_answers
from datagen.recipe.diversity import draw_theme, subject_count
from datagen.recipe.scene_spec import SYSTEM_PROMPT, Invalid, SceneSpec, json_schema, parse_scene, user_message
from datagen.seeds import stage_rng
from datagen.stages.base import Backend, BackendAttribute, BackendStage
from datagen.store.claims import PromptRegistry
from datagen.store.inflight import Rejected, Sample
from datagen.world.scene import sample_scene, scene_prompt


def fill_prompt(s: Sample, n: int, prompt: dict, subjects: list[tuple[str, str]]) -> None:
    s.meta["prompt"] = prompt
    s.meta["requested_subjects"] = n
    # sid ties a subject to its scene object through later filtering.
    s.meta["subjects"] = [{"sid": i, "name": name, "caption": cap} for i, (name, cap) in enumerate(subjects)]


class ProceduralPrompts(Backend):
    """A grammar over the procedural world's vocabulary, and the scene it describes."""

    def write(self, samples: list[Sample]) -> list[Sample | Rejected]:
        return [self._one(s) for s in samples]

    def _one(self, s: Sample) -> Sample:
        cfg = self.stage.run_cfg
        n = subject_count(self.cfg, s.seed)
        scene = sample_scene(stage_rng(s.seed, self.stage.name), n, cfg.run.width, cfg.run.height, cfg.world)
        fill_prompt(s, n, scene_prompt(scene), [(o["name"], o["caption"]) for o in scene["subjects"]])
        s.meta["truth"] = {"scene": scene}
        return s


class LLMPrompts(Backend):
    """An LLM writes each scene under a JSON schema; invalid answers are redrafted with a new seed.

    Subclasses load the engine."""

    engine: LLMEngine | None = None

    def generation_settings(self) -> dict | None:
        c = self.cfg
        return {
            "backend": c.backend, "model": c.model, "revision": c.revision, "dtype": c.dtype,
            "temperature": c.temperature, "top_p": c.top_p, "top_k": c.top_k, "thinking": False,
            "constrained": "json_schema",
        }  # fmt: skip

    def request(self, s: Sample, attempt: int) -> LLMRequest:
        n = subject_count(self.cfg, s.seed)
        theme, background = draw_theme(self.cfg, s.seed, attempt)
        schema = json_schema(n, self.cfg.limits)
        return LLMRequest(SYSTEM_PROMPT, user_message(n, theme, background), schema, mix_seed(s.seed, attempt))

    def write(self, samples: list[Sample]) -> list[Sample | Rejected]:
        assert self.engine is not None, "setup() loads the engine"
        by_key = {s.key: s for s in samples}
        answers: dict[str, SceneSpec | Invalid] = validated_answers(
            list(by_key), lambda key, attempt: self.request(by_key[key], attempt), self.engine.generate,
            lambda key, text: parse_scene(text, subject_count(self.cfg, by_key[key].seed), self.cfg.limits),
            self.cfg.validation_retries,
        )  # fmt: skip
        out: list[Sample | Rejected] = []
        for s in samples:
            spec = answers[s.key]
            if isinstance(spec, Invalid):
                out.append(self.stage.reject(s, f"invalid_llm_output:{spec.reason}"))
                continue
            subjects = [(x.name, x.caption) for x in spec.subjects]
            fill_prompt(s, len(subjects), {"full": spec.prompt, "background": spec.background}, subjects)
            if self.cfg.layout == "procedural":
                s.meta["truth"] = {"scene": self._layout(s, spec)}
            out.append(s)
        return out

    def _layout(self, s: Sample, spec: SceneSpec) -> dict:
        """A procedural scene with the LLM's subjects, for oracle stages (a plumbing test)."""
        cfg, rng = self.stage.run_cfg, stage_rng(s.seed, self.stage.name)
        scene = sample_scene(rng, len(spec.subjects), cfg.run.width, cfg.run.height, cfg.world)
        for obj, subj in zip(scene["subjects"], spec.subjects, strict=True):
            obj["name"], obj["caption"] = subj.name, subj.caption
        return scene


class TransformersPrompts(LLMPrompts):
    def load(self) -> None:
        from datagen.models.llm import TransformersLLM

        self.engine = TransformersLLM(self.cfg, self.stage.run_cfg.models_dir)


class VLLMPrompts(LLMPrompts):
    def load(self) -> None:
        from datagen.models.llm import VLLMEngine

        self.engine = VLLMEngine(self.cfg, self.stage.run_cfg.models_dir, self.stage.run_cfg.run.seed)


class PromptsStage(BackendStage):
    name = "prompts"
    reads = ("run", "world")
    version = 3  # 3: the lowest index keeps a duplicated prompt (was: the first to claim it)
    backend_types = {"procedural": ProceduralPrompts, "transformers": TransformersPrompts, "vllm": VLLMPrompts}
    backends = tuple(backend_types)

    engine = BackendAttribute()  # the LLM, once loaded (or a stand-in a test sets)
    registry: PromptRegistry | None = None

    def setup(self) -> None:
        if self.cfg.dedup and self.run_dir is not None:
            self.registry = PromptRegistry(claims_root(self.run_cfg, self.run_dir))
        super().setup()

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        out = self.backend.write(samples)
        return [self._dedup(r) if isinstance(r, Sample) else r for r in out]

    def _dedup(self, s: Sample) -> Sample | Rejected:
        if self.registry is None:
            return s
        # An owner other than s has a lower index, which keeps the prompt whenever it claimed.
        owner = self.registry.claim(s.meta["prompt"]["full"], s.key)
        return s if owner == s.key else self.reject(s, "duplicate_prompt")


def claims_root(cfg: RunConfig, run_dir: Path) -> Path:
    """Where this run's prompt claims live. Claims are per prompts recipe: a changed prompts
    config (or stage version) starts afresh."""
    recipe = cfg.recipe_dict()
    scope = sha256_json([PromptsStage.version, recipe["stages"]["prompts"], [recipe[r] for r in PromptsStage.reads]])[:16]
    return run_dir / "dedup" / f"prompts-{scope}"
