"""The prompt writer's LLM engines: transformers (default) and vLLM (fast path), one interface.

`generate(requests)` takes chat requests, each with its own JSON schema and seed, and returns
the answers' raw text in order. Both engines constrain decoding to the schema and seed each
request on its own, so an answer does not depend on which other requests share its batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from datagen.config import PromptsConfig
from datagen.models.hub import load_model, pick_device, require, resolve_model, torch_dtype
from datagen.models.third_party import incompatible


@dataclass(frozen=True)
class LLMRequest:
    system: str
    user: str
    schema: dict
    seed: int

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


class LLMEngine(Protocol):
    def generate(self, requests: list[LLMRequest]) -> list[str]: ...


def mix_seed(*parts: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _seeded_sampler_class():
    torch = require("torch")
    transformers = require("transformers")

    class SeededSampler(transformers.LogitsProcessor):
        """Temperature, top-k and top-p, then Gumbel noise drawn from each row's own seed.

        With greedy decoding on top, argmax(logits / T + Gumbel) is a sample of softmax(logits / T):
        seeded sampling per row, unaffected by the other rows of the batch (HF's sampler draws
        every row from one generator, so a batch would change each answer).
        """

        def __init__(self, seeds: list[int], prompt_len: int, temperature: float, top_k: int, top_p: float):
            self.seeds, self.prompt_len = seeds, prompt_len
            self.temperature, self.top_k, self.top_p = temperature, top_k, top_p

        def __call__(self, input_ids, scores):
            scores = scores.float()
            if self.temperature == 0:
                return scores  # greedy
            scores = scores / self.temperature
            if 0 < self.top_k < scores.shape[-1]:
                kth = torch.topk(scores, self.top_k, dim=-1).values[:, -1:]
                scores = scores.masked_fill(scores < kth, float("-inf"))
            if self.top_p < 1.0:
                ordered, idx = torch.sort(scores, descending=True, dim=-1)
                cum = ordered.softmax(-1).cumsum(-1)
                drop = cum - ordered.softmax(-1) > self.top_p  # keeps the token that crosses top_p
                scores = scores.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))
            step = input_ids.shape[1] - self.prompt_len
            noise = torch.empty_like(scores)
            for row, seed in enumerate(self.seeds):
                gen = torch.Generator(device=scores.device).manual_seed(mix_seed(seed, step))
                u = torch.rand(scores.shape[-1], generator=gen, device=scores.device)
                noise[row] = -torch.log(-torch.log(u.clamp_(1e-20, 1.0)))
            return scores + noise

    return SeededSampler


def xgrammar_call(what: str, call: Any) -> Any:
    """Run one call into xgrammar's API; a changed API (or a schema pattern it no longer
    compiles: scene_spec bounds its repetitions for it) is one line naming xgrammar's version."""
    try:
        return call()
    except (AttributeError, TypeError, ValueError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise incompatible("xgrammar", "llm", f"{what} failed ({e.__class__.__name__}: {first})") from None


class GrammarEngine:
    """What the transformers engines share: stop and pad ids, xgrammar's compiler over the
    tokenizer, compiled JSON-schema grammars (cached), and the seeded sampler."""

    xgr: Any
    tokenizer: Any
    model: Any

    def setup_grammar(self, vocab_size: int, torch: Any) -> None:
        gen_eos = self.model.generation_config.eos_token_id
        eos = gen_eos if isinstance(gen_eos, list) else [gen_eos if gen_eos is not None else self.tokenizer.eos_token_id]
        self.eos_ids = [int(e) for e in eos]
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        # vocab_size: the model's rows, which may exceed the tokenizer's; xgrammar masks the rest.
        info = xgrammar_call("TokenizerInfo.from_huggingface", lambda: self.xgr.TokenizerInfo.from_huggingface(
            self.tokenizer, vocab_size=vocab_size, stop_token_ids=self.eos_ids
        ))
        self.compiler = xgrammar_call("GrammarCompiler", lambda: self.xgr.GrammarCompiler(info))
        self._grammars: dict[str, Any] = {}
        self._sampler = _seeded_sampler_class()
        self._torch = torch

    def _grammar(self, schema: dict) -> Any:
        text = json.dumps(schema, sort_keys=True)
        if text not in self._grammars:
            # No free whitespace: with random weights it could run on forever.
            self._grammars[text] = xgrammar_call(
                "compile_json_schema", lambda: self.compiler.compile_json_schema(text, any_whitespace=False)
            )
        return self._grammars[text]


class TransformersLLM(GrammarEngine):
    """Batched `generate` with the chat template (thinking off) and xgrammar JSON-schema masks."""

    def __init__(self, cfg: PromptsConfig, models_dir: str | None, stage: str = "prompts") -> None:
        self.cfg = cfg
        torch = require("torch")
        transformers = require("transformers")
        self.xgr = require("xgrammar")
        self._xgr_hf = require("xgrammar.contrib.hf", "llm")
        path = resolve_model(cfg.model, models_dir)
        kw = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
        self.tokenizer = load_model(stage, cfg.model, lambda: transformers.AutoTokenizer.from_pretrained(path, **kw))
        self.tokenizer.padding_side = "left"  # generation appends on the right
        self.device = pick_device(cfg.device)
        self.model = load_model(
            stage,
            cfg.model,
            lambda: transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(cfg.dtype), **kw),
        )
        self.model.to(self.device).eval()
        self.setup_grammar(self.model.config.vocab_size, torch)

    def chat_text(self, req: LLMRequest) -> str:
        return self.tokenizer.apply_chat_template(
            req.messages(), tokenize=False, add_generation_prompt=True, enable_thinking=False
        )

    def generate(self, requests: list[LLMRequest]) -> list[str]:
        if not requests:
            return []
        enc = self.tokenizer(
            [self.chat_text(r) for r in requests], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        return constrained_generate(self, enc, requests)


def constrained_generate(engine: Any, enc: Any, requests: list[Any]) -> list[str]:
    """`model.generate` on a padded batch, each row under its request's JSON-schema grammar and
    its own seed (the seeded sampler's noise, then greedy), decoded after the prompt. `engine`:
    a transformers engine (TransformersLLM, datagen.models.vlm.TransformersVLM)."""
    prompt_len = enc["input_ids"].shape[1]
    processors = [
        xgrammar_call(  # one use per generate()
            "contrib.hf.LogitsProcessor", lambda: engine._xgr_hf.LogitsProcessor([engine._grammar(r.schema) for r in requests])
        ),
        engine._sampler([r.seed for r in requests], prompt_len, engine.cfg.temperature, engine.cfg.top_k, engine.cfg.top_p),
    ]
    with engine._torch.inference_mode():
        out = engine.model.generate(
            **enc,
            logits_processor=processors,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            max_new_tokens=engine.cfg.max_new_tokens,
            eos_token_id=engine.eos_ids,
            pad_token_id=engine.pad_id,
        )
    return engine.tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)


def validated_answers(keys: list[str], request: Any, generate: Any, parse: Any, retries: int) -> dict[str, Any]:
    """key -> parsed answer, redrafting (a new seed per attempt) those `parse` refuses, up to
    `retries` times: request(key, attempt) -> a request, generate(requests) -> texts, parse(key,
    text) -> an answer or an `Invalid` (the last one stays when every draft fails)."""
    from datagen.recipe.scene_spec import Invalid

    answers: dict[str, Any] = {}
    pending = list(keys)
    for attempt in range(retries + 1):
        texts = generate([request(k, attempt) for k in pending])
        for key, text in zip(pending, texts, strict=True):
            answers[key] = parse(key, text)
        pending = [k for k in pending if isinstance(answers[k], Invalid)]
        if not pending:
            break
    return answers


# --- vLLM ---------------------------------------------------------------------------------


def vllm_sampling_kwargs(req: LLMRequest, cfg: PromptsConfig) -> dict[str, Any]:
    """SamplingParams fields for one request: its seed and its JSON schema."""
    return {
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "top_k": cfg.top_k if cfg.top_k > 0 else -1,
        "max_tokens": cfg.max_new_tokens,
        "seed": req.seed,
        "structured_outputs": {"json": req.schema},
    }


def vllm_engine_kwargs(cfg: PromptsConfig, model_path: str, seed: int) -> dict[str, Any]:
    return {
        "model": model_path,
        "revision": cfg.revision,
        "dtype": cfg.dtype,
        "trust_remote_code": cfg.trust_remote_code,
        "tensor_parallel_size": cfg.vllm.tensor_parallel_size,
        "gpu_memory_utilization": cfg.vllm.gpu_memory_utilization,
        "max_model_len": cfg.vllm.max_model_len,
        "seed": seed,
    }


def vllm_answers(outputs: list[Any]) -> list[str]:
    """The text of each vLLM RequestOutput, in request order ('' where none came back)."""
    return [o.outputs[0].text if getattr(o, "outputs", None) else "" for o in outputs]


class VLLMEngine:
    """`vllm.LLM.chat` with per-request seeds and structured outputs (extra `[vllm]`, CUDA only)."""

    def __init__(self, cfg: PromptsConfig, models_dir: str | None, seed: int, stage: str = "prompts") -> None:
        vllm = require("vllm", "vllm")
        self.cfg = cfg
        self._params = vllm.SamplingParams
        self._structured = vllm.sampling_params.StructuredOutputsParams
        path = resolve_model(cfg.model, models_dir)
        self.llm = load_model(stage, cfg.model, lambda: vllm.LLM(**vllm_engine_kwargs(cfg, path, seed)))

    def sampling_params(self, req: LLMRequest) -> Any:
        kw = vllm_sampling_kwargs(req, self.cfg)
        kw["structured_outputs"] = self._structured(**kw["structured_outputs"])
        return self._params(**kw)

    def generate(self, requests: list[LLMRequest]) -> list[str]:
        if not requests:
            return []
        outputs = self.llm.chat(
            [r.messages() for r in requests],
            sampling_params=[self.sampling_params(r) for r in requests],
            chat_template_kwargs={"enable_thinking": False},
            use_tqdm=False,
        )
        return vllm_answers(outputs)
