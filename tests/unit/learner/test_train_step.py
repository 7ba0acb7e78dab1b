"""GRPOTrainerCore: batching, logprobs, micro-batch equivalence, masking, schedules, and a policy that learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from learner.config.learner import LearnerConfig
from learner.grpo.train_step import GRPOTrainerCore, TrainSample, collate, completion_logprobs
from learner.policy.model import get_adapter_state, load_policy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _core(tiny_dir: Path, steps: int = 10, **kw) -> GRPOTrainerCore:
    cfg = LearnerConfig(**{"base_model": str(tiny_dir), "lora_rank": 4, "use_gradient_checkpointing": False,
                           "beta": 0.0, **kw})
    model, tok = load_policy(cfg)
    return GRPOTrainerCore(model, tok, cfg, num_training_steps=steps)


SAMPLES = [
    TrainSample((2, 3, 4), (5, 6, 7, 1), 1.0),
    TrainSample((2, 3), (8, 9, 1), -1.0),
    TrainSample((2, 10, 11, 12), (13, 1), 0.5),
    TrainSample((2,), (14, 15, 16, 17, 1), -0.5),
]


def test_collate_lays_rows_out_right_padded() -> None:
    b = collate(SAMPLES[:2], pad_id=0, max_prompt_length=2)
    assert b.input_ids.tolist() == [[3, 4, 5, 6, 7, 1], [2, 3, 8, 9, 1, 0]]  # prompt 1 cut from the left
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]
    assert b.completion_start.tolist() == [2, 2] and b.completion_lengths() == [4, 3]
    assert b.completion_mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    b = collate([SAMPLES[1], SAMPLES[2]], pad_id=0)
    assert b.input_ids.tolist() == [[2, 3, 8, 9, 1, 0], [2, 10, 11, 12, 13, 1]]  # pads only after real tokens
    assert b.completion_start.tolist() == [2, 4] and b.completion_ids.tolist() == [[8, 9, 1], [13, 1, 0]]
    assert b.position_ids.tolist() == [list(range(6))] * 2
    assert torch.isnan(b.behaviour_logprobs).all()


def test_collate_masks_truncated_and_checks_behaviour_length() -> None:
    cut = TrainSample((2,), (5, 6), 1.0, finish_reason="length")
    assert collate([cut], 0, mask_truncated=True).completion_mask.sum() == 0
    assert collate([cut], 0, mask_truncated=False).completion_mask.sum() == 2
    with pytest.raises(ValueError, match="1 behaviour logprobs for 2 completion tokens"):
        collate([TrainSample((2,), (5, 6), 1.0, behaviour_logprobs=(-0.1,))], 0)


def _nonzero_adapter(core: GRPOTrainerCore) -> None:
    torch.manual_seed(1)
    with torch.no_grad():  # LoRA B starts at 0; a nonzero one puts the adapter in the forward too
        for name, p in core.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.3)


@pytest.mark.parametrize("use_attention_mask", [True, False], ids=["masked", "mask-less (Unsloth)"])
@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "train"])
def test_padded_rows_equal_rows_run_alone(tiny_dir: Path, use_attention_mask: bool, train_mode: bool) -> None:
    # Unsloth's training forward drops the attention mask: rows must be laid out so that is exact
    core = _core(tiny_dir)
    _nonzero_adapter(core)
    core.model.train(train_mode)
    with torch.no_grad():
        batched, entropy = completion_logprobs(core.model, collate(SAMPLES, 0), temperature=0.8,
                                               compute_entropy=True, use_attention_mask=use_attention_mask)
        for i, s in enumerate(SAMPLES):
            alone, alone_entropy = completion_logprobs(core.model, collate([s], 0), temperature=0.8,
                                                       compute_entropy=True)
            n = len(s.completion_token_ids)
            torch.testing.assert_close(batched[i, :n], alone[0, :n], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(entropy[i, :n], alone_entropy[0, :n], atol=1e-5, rtol=1e-5)
            assert (batched[i, n:] == 0).all()
    assert (entropy[:, :2] > 0).all() and (batched[:, :2] < 0).all()


def test_left_padding_without_a_mask_would_be_wrong(tiny_dir: Path) -> None:
    # the layout this replaced: left-padded prompts are exact only with the mask, so the test above has teeth
    core = _core(tiny_dir)
    _nonzero_adapter(core)
    short, long_ = SAMPLES[1], SAMPLES[2]  # prompts of 2 and 4 tokens
    ids = torch.tensor([[0, 0, *short.prompt_token_ids, *short.completion_token_ids],
                        [*long_.prompt_token_ids, *long_.completion_token_ids, 0]])
    with torch.no_grad():
        # no mask, positions 0..6 (pads first; position ids that restart at 0 would make transformers infer
        # packed sequences and hide the pads, Unsloth does not): row 0 attends to its two pads
        left = core.model(input_ids=ids, use_cache=False).logits[0, 3:5]
        alone = core.model(input_ids=ids[:1, 2:], position_ids=torch.arange(2, 7)[None], use_cache=False).logits[0, 1:3]
    assert (left - alone).abs().max() > 1e-3


def test_step_updates_lora_only_and_reports_metrics(tiny_dir: Path) -> None:
    core = _core(tiny_dir, learning_rate=1e-2, beta=0.1)
    base_before = {n: p.detach().clone() for n, p in core.model.named_parameters() if not p.requires_grad}
    lora_before = get_adapter_state(core.model)
    m = core.step(SAMPLES)
    for key in ("loss", "kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "entropy", "grad_norm", "lr", "tokens"):
        assert key in m, key
    assert m["tokens"] == 14 and m["kl"] == pytest.approx(0.0, abs=1e-6)  # B = 0: policy == reference at first
    assert m["memory/max_rss_gib"] > 0 and "memory/peak_allocated_gib" not in m  # CUDA peaks on CUDA only
    assert core.version == 1 and m["grad_norm"] > 0
    after = get_adapter_state(core.model)
    assert any(not torch.equal(after[k], lora_before[k]) for k in after)
    for n, p in core.model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, base_before[n]), n
    assert core.step(SAMPLES)["kl"] > 0  # the adapter moved away from the reference


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_micro_batches_give_the_full_batch_gradient(tiny_dir: Path, loss_type: str) -> None:
    def grads(**kw) -> dict[str, torch.Tensor]:
        core = _core(tiny_dir, loss_type=loss_type, max_completion_length=8, beta=0.05, **kw)
        metrics = core.accumulate_gradients(SAMPLES)
        return {n: p.grad.clone() for n, p in core.model.named_parameters() if p.grad is not None} | {
            "loss": torch.tensor(metrics["loss"])}

    full = grads()
    micro = grads(micro_batch_size=1)
    accum = grads(gradient_accumulation_steps=2)
    for name, g in full.items():
        torch.testing.assert_close(micro[name], g, atol=1e-6, rtol=1e-4, msg=name)
        torch.testing.assert_close(accum[name], g, atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_skipping_zero_advantage_completions_leaves_the_update_unchanged(tiny_dir: Path, loss_type: str) -> None:
    zero = [TrainSample((2, 3), (18, 19, 20, 1), 0.0), TrainSample((2, 4, 5), (21, 1), 0.0)]
    mixed = [zero[0], *SAMPLES[:2], zero[1], *SAMPLES[2:]]

    def step(skip: bool, samples: list[TrainSample], steps: int = 2) -> tuple[dict, dict]:
        core = _core(tiny_dir, loss_type=loss_type, max_completion_length=8, learning_rate=1e-2,
                     skip_zero_advantage=skip)
        for _ in range(steps):
            metrics = core.step(samples)
        return get_adapter_state(core.model), metrics

    for samples in (mixed, zero + [SAMPLES[0]], zero):  # the last: nothing to compute at all
        (full_w, full_m), (skip_w, skip_m) = step(False, samples), step(True, samples)
        for name, w in full_w.items():
            torch.testing.assert_close(skip_w[name], w, atol=1e-6, rtol=1e-5, msg=name)
        assert skip_m["loss"] == pytest.approx(full_m["loss"], abs=1e-7)
        assert skip_m["tokens"] == full_m["tokens"] and skip_m["num_sequences"] == full_m["num_sequences"]
    moved = step(True, mixed, steps=1)[0]
    start = get_adapter_state(_core(tiny_dir).model)
    assert any(not torch.equal(moved[k], start[k]) for k in moved)  # the skipped run did learn


def test_masked_truncated_completion_does_not_move_the_policy(tiny_dir: Path) -> None:
    core = _core(tiny_dir, mask_truncated_completions=True, learning_rate=1e-2)
    before = get_adapter_state(core.model)
    m = core.step([TrainSample((2, 3), (5, 6, 7), 1.0, finish_reason="length")])
    assert m["grad_norm"] == 0.0 and m["frac_masked_truncated"] == 1.0 and m["tokens"] == 0
    after = get_adapter_state(core.model)
    assert all(torch.equal(after[k], before[k]) for k in after)


def test_warmup_and_cosine_schedule(tiny_dir: Path) -> None:
    core = _core(tiny_dir, learning_rate=1e-3, warmup_steps=2, lr_scheduler="cosine", steps=4)
    lrs = [core.step(SAMPLES[:1])["lr"] for _ in range(4)]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(5e-4) and lrs[2] == pytest.approx(1e-3)
    assert 0 < lrs[3] < 1e-3


def test_config_errors_are_reported(tiny_dir: Path) -> None:
    with pytest.raises(ValueError, match="needs learner.max_completion_length"):
        _core(tiny_dir, loss_type="dr_grpo")
    core = _core(tiny_dir)
    with pytest.raises(ValueError, match="at least one sample"):
        core.step([])
    with pytest.raises(ValueError, match="needs num_training_steps"):
        GRPOTrainerCore(core.model, core.tokenizer, core.config.model_copy(update={"lr_scheduler": "linear"}))


def _sequence_logprob(core: GRPOTrainerCore, sample: TrainSample) -> float:
    core.model.eval()
    with torch.no_grad():
        lp, _ = completion_logprobs(core.model, collate([sample], 0))
    core.model.train()
    return float(lp.sum())


@pytest.mark.slow
def test_grpo_steps_make_the_rewarded_completion_more_likely(tiny_dir: Path) -> None:
    # one prompt, a group of two completions: the rewarded one has advantage +1, the other -1
    core = _core(tiny_dir, learning_rate=5e-3, lora_rank=8, beta=0.02, loss_type="grpo")
    good = TrainSample((2, 3, 4), (20, 21, 22, 1), 1.0)
    bad = TrainSample((2, 3, 4), (30, 31, 32, 1), -1.0)
    good_before, bad_before = _sequence_logprob(core, good), _sequence_logprob(core, bad)
    for _ in range(8):
        with torch.no_grad():
            behaviour = {s: tuple(completion_logprobs(core.model, collate([s], 0))[0][0].tolist()) for s in (good, bad)}
        batch = [TrainSample(s.prompt_token_ids, s.completion_token_ids, s.advantage, behaviour[s])
                 for s in (good, bad)]
        m = core.step(batch)
    assert m["is_weight/mean"] == pytest.approx(1.0, abs=1e-4)  # on-policy: behaviour == old policy
    good_after, bad_after = _sequence_logprob(core, good), _sequence_logprob(core, bad)
    assert good_after > good_before + 1.0
    assert bad_after < bad_before - 1.0


@pytest.mark.gpu
def test_step_on_gpu_in_half_precision(tiny_dir: Path) -> None:
    core = _core(tiny_dir, load_in_4bit=False, use_unsloth=False, beta=0.05)
    assert core.device.type == "cuda"
    assert next(p for p in core.model.parameters() if not p.requires_grad).dtype in (torch.bfloat16, torch.float16)
    m = core.step(SAMPLES)
    assert m["nonfinite_grad"] == 0.0 and m["grad_norm"] > 0
