"""The prompts stage's LLM backends on a tiny random-weight Qwen3 (transformers), and the
vLLM path's request building and result parsing (vLLM itself needs CUDA)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from datagen.config import PromptsConfig
from datagen.errors import BackendUnavailable, UserError
from datagen.models.llm import (
    LLMRequest,
    TransformersLLM,
    VLLMEngine,
    vllm_answers,
    vllm_engine_kwargs,
    vllm_sampling_kwargs,
)
from datagen.store.inflight import Rejected, Sample
from datagen.recipe.scene_spec import SYSTEM_PROMPT, SceneSpec, json_schema, parse_scene, user_message
from datagen.seeds import sample_seed
from datagen.pipeline.preflight import build_stage

LIMITS = {"prompt_max_chars": 60, "background_max_chars": 20, "name_max_chars": 12, "caption_min_chars": 1, "caption_max_chars": 20}


@pytest.fixture(scope="module")
def llm(tiny_models):
    cfg = PromptsConfig(backend="transformers", dtype="float32", max_new_tokens=400, limits=LIMITS)
    return TransformersLLM(cfg, str(tiny_models))


def req(llm, n: int, seed: int) -> LLMRequest:
    return LLMRequest(SYSTEM_PROMPT, user_message(n, "a picnic", "a park"), json_schema(n, llm.cfg.limits), seed)


def test_chat_template_turns_thinking_off(llm):
    text = llm.chat_text(req(llm, 3, 0))
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert SYSTEM_PROMPT in text


def test_constrained_decoding_gives_schema_valid_json_from_random_weights(llm):
    schema_re = re.compile(json_schema(3, llm.cfg.limits)["properties"]["prompt"]["pattern"])
    requests = [req(llm, n, seed) for n, seed in [(3, 1), (4, 2), (5, 3), (3, 4), (6, 5), (4, 6)]]
    for r, text in zip(requests, llm.generate(requests), strict=True):
        data = json.loads(text)  # always parses
        n = r.schema["properties"]["subjects"]["minItems"]
        assert set(data) == {"prompt", "background", "subjects"}
        assert len(data["subjects"]) == n
        assert all(set(s) == {"name", "caption"} for s in data["subjects"])
        assert schema_re.match(data["prompt"])
        assert all(len(s["name"]) <= LIMITS["name_max_chars"] for s in data["subjects"])


def test_same_seed_same_answer_and_seeds_differ(llm):
    a = llm.generate([req(llm, 3, 11)])
    assert llm.generate([req(llm, 3, 11)]) == a
    assert llm.generate([req(llm, 3, 12)]) != a


def test_batching_equals_one_by_one(llm):
    requests = [req(llm, n, seed) for n, seed in [(3, 21), (5, 22), (4, 23), (3, 24)]]
    batched = llm.generate(requests)
    assert batched == [llm.generate([r])[0] for r in requests]


def test_prompts_stage_on_the_llm_retries_then_keeps_or_rejects_with_a_reason(tiny_cfg):
    tiny_cfg = tiny_cfg.model_copy(deep=True)
    tiny_cfg.stages.prompts.layout = "procedural"
    stage = build_stage("prompts", tiny_cfg)
    stage.setup()
    samples = [Sample(index=i, shard=0, seed=sample_seed(0, i)) for i in range(6)]
    out = stage.process_batch(samples)
    kept = [s for s in out if isinstance(s, Sample)]
    assert kept, "random weights under the schema still give valid answers"
    for s in kept:
        n = s.meta["requested_subjects"]
        assert len(s.subjects) == n and tiny_cfg.stages.prompts.num_subjects[0] <= n <= tiny_cfg.stages.prompts.num_subjects[1]
        assert s.meta["prompt"]["full"] and s.meta["prompt"]["background"]
        assert len(s.meta["truth"]["scene"]["subjects"]) == n  # layout: procedural
    for r in out:
        if isinstance(r, Rejected):
            assert r.reason.startswith("invalid_llm_output:")
    assert stage.generation_settings()["model"] == "Qwen/Qwen3-8B"


def test_a_sample_failing_every_draft_is_rejected_with_the_last_reason(tiny_cfg):
    cfg = tiny_cfg.model_copy(deep=True)
    cfg.stages.prompts.validation_retries = 1
    stage = build_stage("prompts", cfg)

    class Refuser:  # an engine whose every answer names a subject twice
        calls = 0

        def generate(self, requests):
            Refuser.calls += 1
            return [json.dumps({"prompt": "p", "background": "b", "subjects": [{"name": "x", "caption": "x"}] * 4})] * len(requests)

    stage.engine = Refuser()
    out = stage.process_batch([Sample(index=0, shard=0, seed=5)])
    assert isinstance(out[0], Rejected) and out[0].reason in ("invalid_llm_output:duplicate_names", "invalid_llm_output:wrong_count")
    assert Refuser.calls == 2  # one draft and one retry


def test_parse_scene_accepts_what_the_tiny_model_writes(llm):
    r = req(llm, 4, 31)
    got = parse_scene(llm.generate([r])[0], 4, llm.cfg.limits)
    assert isinstance(got, SceneSpec) or got.reason in {"bad_fields", "forbidden_text", "duplicate_names"}


def test_missing_model_is_one_line_naming_stage_and_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = PromptsConfig(backend="transformers", model="nobody/no-such-model")
    with pytest.raises(UserError) as e:
        TransformersLLM(cfg, str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("stages.prompts: cannot load model 'nobody/no-such-model'")


# --- vLLM: everything but the engine itself ---------------------------------------------


def test_vllm_requests_carry_seed_schema_and_sampling():
    cfg = PromptsConfig(backend="vllm", temperature=0.6, top_p=0.9, top_k=0, max_new_tokens=512)
    r = LLMRequest("sys", "user", json_schema(3, cfg.limits), seed=1234)
    kw = vllm_sampling_kwargs(r, cfg)
    assert kw == {
        "temperature": 0.6, "top_p": 0.9, "top_k": -1, "max_tokens": 512, "seed": 1234,
        "structured_outputs": {"json": r.schema},
    }  # fmt: skip
    assert r.messages() == [{"role": "system", "content": "sys"}, {"role": "user", "content": "user"}]
    eng = vllm_engine_kwargs(cfg, "/models/Qwen/Qwen3-8B", seed=7)
    assert eng["trust_remote_code"] is False and eng["model"] == "/models/Qwen/Qwen3-8B" and eng["seed"] == 7


def test_vllm_results_are_read_in_order_and_missing_ones_are_empty():
    outs = [SimpleNamespace(outputs=[SimpleNamespace(text='{"a": 1}')]), SimpleNamespace(outputs=[]), SimpleNamespace(outputs=[SimpleNamespace(text="x")])]
    assert vllm_answers(outs) == ['{"a": 1}', "", "x"]


def test_vllm_missing_names_its_extra():
    with pytest.raises(BackendUnavailable, match=r"datagen\[vllm\]"):
        VLLMEngine(PromptsConfig(backend="vllm"), None, seed=0)


def test_a_changed_xgrammar_api_is_one_line_naming_its_version(llm):
    from importlib.metadata import version

    from datagen.models.llm import xgrammar_call
    from datagen.models.third_party import IncompatibleDependency

    # A real call into the installed xgrammar in a shape it does not take (as a newer API might).
    with pytest.raises(IncompatibleDependency) as e:
        xgrammar_call("compile_json_schema", lambda: llm.compiler.compile_json_schema("{}", datagen_no_such_option=True))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"xgrammar {version('xgrammar')} ") and "pip install 'datagen[llm]'" in msg
    assert "TypeError" in msg and "compile_json_schema" in msg
