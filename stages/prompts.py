"""prompts: a full prompt, a background caption and 3-10 subjects (name + caption) per sample.

The subject count N is drawn per sample from the configured distribution (datagen.recipe.diversity).

Backend `procedural`: a grammar over the procedural world's vocabulary. It also leaves the
3D scene it describes under `truth.scene`, which the procedural t2i renders.

Backends `transformers` and `vllm`: an LLM (Qwen3 by default) writes the scene from a seeded
theme and background, decoding constrained to a JSON schema with exactly N subjects; the
answer is validated (datagen.recipe.scene_spec), and redrafted with a new seed up to
`validation_retries` times before the sample is rejected with the last reason.

Near-duplicate prompts across the run are rejected (`dedup`): the first sample to claim a
normalised prompt keeps it.
"""

from __future__ import annotations

from datagen.config import sha256_json
from datagen.store.claims import PromptRegistry
from datagen.recipe.diversity import draw_theme, subject_count
from datagen.models.llm import LLMEngine, LLMRequest, mix_seed
from datagen.store.inflight import Rejected, Sample
from datagen.recipe.scene_spec import SYSTEM_PROMPT, Invalid, SceneSpec, json_schema, parse_scene, user_message
from datagen.seeds import stage_rng
from datagen.stages.base import Stage
from datagen.world import sample_scene, scene_prompt

LLM_BACKENDS = ("transformers", "vllm")


class PromptsStage(Stage):
    name = "prompts"
    reads = ("run", "world")
    version = 2
    backends = ("procedural", *LLM_BACKENDS)

    engine: LLMEngine | None = None
    registry: PromptRegistry | None = None

    def setup(self) -> None:
        if self.cfg.dedup and self.run_dir is not None:
            # Claims are per prompts recipe: a changed prompts config starts afresh.
            recipe = self.run_cfg.recipe_dict()
            scope = sha256_json([self.version, recipe["stages"]["prompts"], [recipe[r] for r in self.reads]])[:16]
            self.registry = PromptRegistry(self.run_dir / "dedup" / f"prompts-{scope}")
        if self.cfg.backend == "transformers":
            from datagen.models.llm import TransformersLLM

            self.engine = TransformersLLM(self.cfg, self.run_cfg.models_dir)
        elif self.cfg.backend == "vllm":
            from datagen.models.llm import VLLMEngine

            self.engine = VLLMEngine(self.cfg, self.run_cfg.models_dir, self.run_cfg.run.seed)

    def generation_settings(self) -> dict | None:
        if self.cfg.backend not in LLM_BACKENDS:
            return None
        c = self.cfg
        return {
            "backend": c.backend, "model": c.model, "revision": c.revision, "dtype": c.dtype,
            "temperature": c.temperature, "top_p": c.top_p, "top_k": c.top_k, "thinking": False,
            "constrained": "json_schema",
        }  # fmt: skip

    def process_batch(self, samples: list[Sample]) -> list[Sample | Rejected]:
        if self.cfg.backend == "procedural":
            out = [self._procedural(s) for s in samples]
        else:
            out = self._with_llm(samples)
        return [self._dedup(r) if isinstance(r, Sample) else r for r in out]

    # --- procedural ---------------------------------------------------------------------

    def _procedural(self, s: Sample) -> Sample:
        n = subject_count(self.cfg, s.seed)
        scene = sample_scene(stage_rng(s.seed, self.name), n, self.run_cfg.run.width, self.run_cfg.run.height, self.run_cfg.world)
        self._fill(s, n, scene_prompt(scene), [(o["name"], o["caption"]) for o in scene["subjects"]])
        s.meta["truth"] = {"scene": scene}
        return s

    # --- LLM ------------------------------------------------------------------------------

    def request(self, s: Sample, attempt: int) -> LLMRequest:
        n = subject_count(self.cfg, s.seed)
        theme, background = draw_theme(self.cfg, s.seed, attempt)
        return LLMRequest(
            SYSTEM_PROMPT, user_message(n, theme, background), json_schema(n, self.cfg.limits), mix_seed(s.seed, attempt)
        )

    def _with_llm(self, samples: list[Sample]) -> list[Sample | Rejected]:
        assert self.engine is not None, "setup() loads the engine"
        answers: dict[str, SceneSpec | Invalid] = {}
        pending = list(samples)
        for attempt in range(self.cfg.validation_retries + 1):
            texts = self.engine.generate([self.request(s, attempt) for s in pending])
            for s, text in zip(pending, texts, strict=True):
                answers[s.key] = parse_scene(text, subject_count(self.cfg, s.seed), self.cfg.limits)
            pending = [s for s in pending if isinstance(answers[s.key], Invalid)]
            if not pending:
                break
        out: list[Sample | Rejected] = []
        for s in samples:
            spec = answers[s.key]
            if isinstance(spec, Invalid):
                out.append(self.reject(s, f"invalid_llm_output:{spec.reason}"))
                continue
            n = len(spec.subjects)
            self._fill(s, n, {"full": spec.prompt, "background": spec.background}, [(x.name, x.caption) for x in spec.subjects])
            if self.cfg.layout == "procedural":
                s.meta["truth"] = {"scene": self._layout(s, spec)}
            out.append(s)
        return out

    def _layout(self, s: Sample, spec: SceneSpec) -> dict:
        """A procedural scene with the LLM's subjects, for oracle stages (a plumbing test)."""
        run = self.run_cfg.run
        scene = sample_scene(stage_rng(s.seed, self.name), len(spec.subjects), run.width, run.height, self.run_cfg.world)
        for obj, subj in zip(scene["subjects"], spec.subjects, strict=True):
            obj["name"], obj["caption"] = subj.name, subj.caption
        return scene

    # --- shared ---------------------------------------------------------------------------

    def _fill(self, s: Sample, n: int, prompt: dict, subjects: list[tuple[str, str]]) -> None:
        s.meta["prompt"] = prompt
        s.meta["requested_subjects"] = n
        # sid ties a subject to its scene object through later filtering.
        s.meta["subjects"] = [{"sid": i, "name": name, "caption": cap} for i, (name, cap) in enumerate(subjects)]

    def _dedup(self, s: Sample) -> Sample | Rejected:
        if self.registry is None:
            return s
        owner = self.registry.claim(s.meta["prompt"]["full"], s.key)
        return s if owner == s.key else self.reject(s, "duplicate_prompt")
