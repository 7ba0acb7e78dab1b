"""HFEngine: grouping, behaviour logprobs against a plain forward pass, finish reasons, seeds, weight updates."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model_state_dict

from actors.engines.base import PolicyVersionMismatch
from actors.engines.config import RolloutConfig
from actors.engines.hf import HFEngine
from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer
from reward_service.contracts import LoraSpec

TEXTS = ["Goal: on a b\nPlan:\n", "Blocks: a b c d\nGoal: on c d, on d a\nPlan:\n", "(unstack a b)\n(putdown a)"]
PROMPTS = TEXTS[:2] + ["Plan:\n"]  # different lengths: left padding is exercised
IDS = ["bw:0", "bw:1", "bw:2"]
LORA = {"lora": LoraSpec(rank=4, alpha=8.0, target_modules=("q_proj", "v_proj"))}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    tok = build_tiny_tokenizer(TEXTS)
    return build_tiny_model(tok, tmp_path_factory.mktemp("tiny"), layers=2, hidden=64, ffn=128, seed=3)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # faster than two contended threads on the shared box
    yield
    torch.set_num_threads(before)


def _engine(model_path, **cfg) -> HFEngine:
    base = {"max_new_tokens": 10, "num_generations": 3, "temperature": 1.0, "top_p": 1.0, "top_k": 0}
    return HFEngine(model_path, RolloutConfig(**{**base, **cfg}), **LORA)


def _perturbed_lora(engine: HFEngine, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.5 for k, v in get_peft_model_state_dict(engine.model).items()}


def _forward_logprobs(engine: HFEngine, prompt_ids, token_ids) -> torch.Tensor:
    ids = torch.tensor([list(prompt_ids) + list(token_ids)])
    with torch.no_grad():
        logits = engine.model(input_ids=ids).logits[0].float()
    n = len(prompt_ids)
    return torch.log_softmax(logits, -1)[n - 1 : -1].gather(-1, torch.tensor(token_ids)[:, None]).squeeze(-1)


def test_g_completions_per_prompt_grouped_in_prompt_order(model_path) -> None:
    engine = _engine(model_path)
    out = engine.generate(PROMPTS, IDS)
    assert [c.sample_id for c in out] == [s for s in IDS for _ in range(3)]
    for c, prompt in zip(out, [p for p in PROMPTS for _ in range(3)], strict=True):
        assert c.prompt_token_ids == tuple(engine.tokenizer(prompt).input_ids)
        assert len(c.token_ids) == len(c.logprobs) >= 1
        assert all(lp <= 0 for lp in c.logprobs)
        assert c.policy_version == 0
    assert len(engine.generate(PROMPTS[:1], IDS[:1], num_generations=5)) == 5


def test_logprobs_match_a_forward_pass_of_prompt_plus_completion(model_path) -> None:
    engine = _engine(model_path, max_new_tokens=12, batch_size=4)  # several batches, mixed padding
    engine.update_weights(_perturbed_lora(engine, 0), 1)  # the LoRA path must be in the numbers too
    out = engine.generate(PROMPTS, IDS)
    for c in out:
        expected = _forward_logprobs(engine, c.prompt_token_ids, c.token_ids)
        assert torch.allclose(torch.tensor(c.logprobs), expected, atol=1e-4), c


def test_finish_reasons_eos_and_length(model_path) -> None:
    engine = _engine(model_path, max_new_tokens=4, num_generations=8)
    out = engine.generate(PROMPTS, IDS)
    eos = engine.tokenizer.eos_token_id
    reasons = {c.finish_reason for c in out}
    assert "length" in reasons  # a random 2-layer model rarely says EOS within 4 tokens
    for c in out:
        if c.finish_reason == "length":
            assert len(c.token_ids) == 4 and eos not in c.token_ids
        else:
            assert c.token_ids[-1] == eos and eos not in c.token_ids[:-1]
            assert "<eos>" not in c.text


def test_stop_string_ends_the_completion_and_is_left_out_of_the_text(model_path) -> None:
    engine = _engine(model_path, max_new_tokens=30, num_generations=6, stop=[")"])
    out = engine.generate(PROMPTS, IDS)
    stopped = [c for c in out if c.finish_reason == "stop" and c.token_ids[-1] != engine.tokenizer.eos_token_id]
    assert stopped, "a random model over a 20-word vocabulary emits ')' within 30 tokens"
    for c in stopped:
        full = engine.tokenizer.decode(c.token_ids, skip_special_tokens=True)
        assert full.endswith(")") and ")" not in full[:-1]
        assert ")" not in c.text and full.startswith(c.text)
        assert len(c.logprobs) == len(c.token_ids)


def test_greedy_is_batch_independent_and_same_across_generations(model_path) -> None:
    batched = _engine(model_path, temperature=0, batch_size=64).generate(PROMPTS, IDS)
    single = _engine(model_path, temperature=0, batch_size=1).generate(PROMPTS, IDS)
    assert [c.token_ids for c in batched] == [c.token_ids for c in single]  # left padding changes nothing
    for i in range(0, len(batched), 3):
        assert len({c.token_ids for c in batched[i : i + 3]}) == 1


def test_sampling_is_deterministic_for_a_seed(model_path) -> None:
    a = _engine(model_path, seed=7).generate(PROMPTS, IDS)
    b = _engine(model_path, seed=7).generate(PROMPTS, IDS)
    c = _engine(model_path, seed=8).generate(PROMPTS, IDS)
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]
    engine = _engine(model_path)
    rng_before = torch.get_rng_state()
    engine.generate(PROMPTS, IDS)
    assert torch.equal(rng_before, torch.get_rng_state())  # the caller's RNG is left alone


def test_token_id_prompts_and_prompt_truncation(model_path) -> None:
    engine = _engine(model_path, temperature=0, max_prompt_tokens=4)
    ids = engine.tokenizer(PROMPTS[1]).input_ids
    from_ids = engine.generate([ids], ["x"], num_generations=1)[0]
    from_tail = engine.generate([ids[-4:]], ["x"], num_generations=1)[0]
    assert from_ids.prompt_token_ids == tuple(ids[-4:])
    assert from_ids.token_ids == from_tail.token_ids


def test_update_weights_changes_outputs_and_version(model_path) -> None:
    engine = _engine(model_path, temperature=0)
    before = engine.generate(PROMPTS, IDS, num_generations=1)
    engine.update_weights(_perturbed_lora(engine, 1), 1)
    after = engine.generate(PROMPTS, IDS, num_generations=1, policy_version=1)
    assert engine.version == 1 and all(c.policy_version == 1 for c in after)
    assert [c.token_ids for c in before] != [c.token_ids for c in after]
    assert any(
        not torch.allclose(torch.tensor(a.logprobs[:1]), torch.tensor(b.logprobs[:1]))
        for a, b in zip(before, after, strict=True)
    )


def test_update_weights_rejects_bad_states(model_path) -> None:
    engine = _engine(model_path)
    state = _perturbed_lora(engine, 2)
    with pytest.raises(ValueError, match="unknown tensors"):
        engine.update_weights({**state, "base_model.model.nope.lora_A.weight": torch.zeros(1)}, 1)
    with pytest.raises(ValueError, match="left LoRA tensors unset"):
        engine.update_weights(dict(list(state.items())[1:]), 1)
    key = next(iter(state))
    with pytest.raises(RuntimeError, match="size mismatch"):
        engine.update_weights({**state, key: torch.zeros(3, 3)}, 1)
    engine.update_weights(state, 2)
    with pytest.raises(ValueError, match="policy version 1 is older than the version held \\(2\\)"):
        engine.update_weights(state, 1)


def test_generate_input_checks(model_path) -> None:
    engine = _engine(model_path)
    with pytest.raises(ValueError, match="got 3 prompts but 2 sample_ids"):
        engine.generate(PROMPTS, IDS[:2])
    with pytest.raises(ValueError, match="num_generations must be >= 1, got 0"):
        engine.generate(PROMPTS, IDS, num_generations=0)
    with pytest.raises(PolicyVersionMismatch, match="engine holds policy version 0, asked to generate with 3"):
        engine.generate(PROMPTS, IDS, policy_version=3)
    with pytest.raises(ValueError, match="empty prompt"):
        engine.generate([[]], ["x"])


def test_text_prompts_go_through_the_chat_template_when_the_tokenizer_has_one(model_path) -> None:
    plain = _engine(model_path, temperature=0)
    tok = plain.tokenizer
    tok.chat_template = (
        "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}Plan:{% endif %}"
    )
    templated = HFEngine(plain.model, plain.config, tokenizer=tok)
    got = templated.generate(["Goal: on a b\n"], ["x"], num_generations=1)[0]
    # apply_chat_template adds no special tokens: a chat template writes its own BOS
    assert got.prompt_token_ids == tuple(tok("Goal: on a b\nPlan:", add_special_tokens=False).input_ids)
    off = HFEngine(plain.model, plain.config, tokenizer=tok, use_chat_template=False)
    assert off.generate(["Goal: on a b\n"], ["x"], num_generations=1)[0].prompt_token_ids == tuple(
        tok("Goal: on a b\n").input_ids
    )


def test_auto_dtype_follows_the_learners_rule_cpu_and_stand_in_gpu(model_path, monkeypatch) -> None:
    from learner.policy.model import resolve_dtype

    engine = _engine(model_path)
    assert engine._dtype() == resolve_dtype("auto", cuda=False) == torch.float32
    assert next(engine.model.parameters()).dtype == torch.float32
    # on a GPU without bf16 both sides fall back to fp16 (stand-in for CUDA: no GPU here)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    engine.device = torch.device("cuda")
    assert engine._dtype() == resolve_dtype("auto", cuda=True) == torch.float16
    engine.config = engine.config.model_copy(update={"dtype": "bfloat16"})
    assert engine._dtype() == torch.bfloat16


def test_default_batch_size_runs_a_call_in_one_token_loop_whatever_b_times_g(model_path, monkeypatch) -> None:
    """batch_size null: all of a call's B x G rows go to one generate batch (a fixed 64 split 80 rows in two);
    the samples equal an explicit batch of exactly that size."""
    engine = _engine(model_path, num_generations=8)
    assert engine.config.batch_size is None
    sizes: list[int] = []
    original = HFEngine._generate_batch

    def spy(self, rows, gen_config):
        sizes.append(len(rows))
        return original(self, rows, gen_config)

    monkeypatch.setattr(HFEngine, "_generate_batch", spy)
    prompts, ids = PROMPTS * 4, [f"s:{i}" for i in range(len(PROMPTS) * 4)]
    out = engine.generate(prompts, ids)
    assert sizes == [len(prompts) * 8] and sizes[0] > 64
    explicit = _engine(model_path, num_generations=8, batch_size=len(prompts) * 8).generate(prompts, ids)
    assert [c.token_ids for c in out] == [c.token_ids for c in explicit]


# --- per-prompt temperatures (rollout.bucket_temperatures) ---------------------------------------


def test_an_equal_temperature_list_samples_exactly_as_the_scalar(model_path) -> None:
    scalar = _engine(model_path, seed=5, top_k=5, top_p=0.9).generate(PROMPTS, IDS, temperature=0.7)
    listed = _engine(model_path, seed=5, top_k=5, top_p=0.9).generate(PROMPTS, IDS, temperature=[0.7] * 3)
    assert [(c.token_ids, c.logprobs) for c in listed] == [(c.token_ids, c.logprobs) for c in scalar]


def test_each_prompt_samples_at_its_own_temperature_before_top_k_and_top_p(model_path) -> None:
    """Row draws do not depend on the other rows' scores, so prompt i's rows of a mixed call equal the rows of
    a scalar call at prompt i's temperature (same seed, same batch): per-row tempering is the scalar's
    arithmetic at the scalar's place, before the top-p cutoff (which does depend on the order)."""
    temps = [1.3, 0.5, 1.0]
    mixed = _engine(model_path, seed=9, top_k=8, top_p=0.8, max_new_tokens=12).generate(PROMPTS, IDS,
                                                                                          temperature=temps)
    for i, t in enumerate(temps):
        scalar = _engine(model_path, seed=9, top_k=8, top_p=0.8, max_new_tokens=12).generate(PROMPTS, IDS,
                                                                                              temperature=t)
        assert [c.token_ids for c in mixed[3 * i : 3 * i + 3]] == [c.token_ids for c in scalar[3 * i : 3 * i + 3]]
    assert len({c.token_ids for c in mixed[:3]}) > 1  # the hot prompt still samples


def test_a_near_zero_temperature_row_is_greedy_and_logprobs_stay_raw(model_path) -> None:
    greedy = _engine(model_path, temperature=0).generate(PROMPTS, IDS)
    cold = _engine(model_path).generate(PROMPTS, IDS, temperature=1e-5)  # the scalar path at that temperature
    mixed = _engine(model_path).generate(PROMPTS, IDS, temperature=[1.0, 1e-5, 1.0])
    assert [c.token_ids for c in cold] == [c.token_ids for c in greedy]
    assert [c.token_ids for c in mixed[3:6]] == [c.token_ids for c in greedy[3:6]]
    engine = _engine(model_path)
    for c in mixed:  # behaviour logprobs are the raw model's whatever the row's temperature
        expected = _forward_logprobs(engine, c.prompt_token_ids, c.token_ids)
        assert torch.allclose(torch.tensor(c.logprobs), expected, atol=1e-4), c


@pytest.mark.parametrize("temps, message", [
    ([1.0, 0.5], "got 2 temperatures for 3 prompts"),
    ([1.0, 0.0, 0.5], "must all be > 0 when they differ"),
])
def test_a_bad_temperature_list_is_refused(model_path, temps, message) -> None:
    with pytest.raises(ValueError, match=message):
        _engine(model_path).generate(PROMPTS, IDS, temperature=temps)
