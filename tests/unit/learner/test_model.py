"""load_policy: PEFT LoRA on a tiny local Llama, the adapter-disabled reference, adapter state sync."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from learner.config.learner import LearnerConfig
from learner.policy.model import get_adapter_state, load_policy, resolve_dtype, set_adapter_state

LINEARS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(path: Path, **kw) -> LearnerConfig:
    return LearnerConfig(**{"base_model": str(path), "lora_rank": 4, **kw})


def _perturb_lora(model: torch.nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def test_all_linear_lora_is_the_only_trainable_part(tiny_dir: Path) -> None:
    model, tok = load_policy(_cfg(tiny_dir))
    assert isinstance(model, PeftModel) and tok.pad_token_id == 0
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    targeted = {n.split(".")[-4] for n in trainable if n.endswith("lora_A.default.weight")}
    assert targeted == LINEARS  # every decoder linear, not the LM head
    assert next(model.parameters()).dtype == torch.float32  # CPU: fp32
    assert model.training


def test_named_target_modules_and_rank(tiny_dir: Path) -> None:
    model, _ = load_policy(_cfg(tiny_dir, lora_target_modules=["q_proj", "v_proj"], lora_rank=2))
    state = get_adapter_state(model)
    assert {k.split(".")[-3] for k in state} == {"q_proj", "v_proj"}
    assert all(v.shape[0] == 2 for k, v in state.items() if "lora_A" in k)


def test_disabled_adapter_is_the_base_model(tiny_dir: Path) -> None:
    model, _ = load_policy(_cfg(tiny_dir, use_gradient_checkpointing=False))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_dir))
    ids = torch.tensor([[2, 5, 9, 13, 4]])
    _perturb_lora(model)
    model.eval()
    with torch.no_grad():
        with_adapter = model(input_ids=ids).logits
        with model.disable_adapter():
            reference = model(input_ids=ids).logits
        after = model(input_ids=ids).logits
        expected = base(input_ids=ids).logits
    torch.testing.assert_close(reference, expected, atol=1e-5, rtol=1e-5)
    assert (with_adapter - reference).abs().max() > 1e-3  # the adapter does change the policy
    torch.testing.assert_close(after, with_adapter)  # and is active again after the context


def test_adapter_state_round_trip_between_two_policies(tiny_dir: Path) -> None:
    a, _ = load_policy(_cfg(tiny_dir))
    b, _ = load_policy(_cfg(tiny_dir, seed=7))
    _perturb_lora(a)
    state = get_adapter_state(a)
    assert state and all("lora_" in k for k in state)
    assert all(v.device.type == "cpu" and not v.requires_grad for v in state.values())
    next(iter(state.values())).add_(1.0)  # a copy: editing it leaves the model alone
    state = get_adapter_state(a)
    set_adapter_state(b, state)
    ids = torch.tensor([[3, 4, 5, 6]])
    a.eval()
    b.eval()
    with torch.no_grad():
        torch.testing.assert_close(a(input_ids=ids).logits, b(input_ids=ids).logits)


def test_set_adapter_state_rejects_foreign_keys(tiny_dir: Path) -> None:
    model, _ = load_policy(_cfg(tiny_dir))
    state = get_adapter_state(model)
    state["base_model.model.lm_head.lora_A.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="unexpected"):
        set_adapter_state(model, state)


def test_existing_adapter_is_loaded_trainable(tiny_dir: Path, tmp_path: Path) -> None:
    first, _ = load_policy(_cfg(tiny_dir))
    _perturb_lora(first, seed=3)
    first.save_pretrained(str(tmp_path / "sft_adapter"))
    second, _ = load_policy(_cfg(tiny_dir, adapter_path=str(tmp_path / "sft_adapter")))
    for key, value in get_adapter_state(first).items():
        torch.testing.assert_close(get_adapter_state(second)[key], value)
    assert any(p.requires_grad for p in second.parameters())


def test_4bit_is_skipped_on_cpu_with_a_log_line(tiny_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with caplog.at_level(logging.INFO, logger="learner.policy.model"):
        model, _ = load_policy(_cfg(tiny_dir, load_in_4bit=True))
    assert "load_in_4bit skipped" in caplog.text
    assert next(model.parameters()).dtype == torch.float32


def test_placeholder_tiny_is_rejected() -> None:
    with pytest.raises(ValueError, match="build the tiny model first"):
        load_policy(LearnerConfig(base_model="tiny"))


def test_resolve_dtype_cpu_and_named() -> None:
    assert resolve_dtype("auto", cuda=False) == torch.float32
    assert resolve_dtype("bfloat16", cuda=False) == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype("int8", cuda=False)


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_resolve_dtype_mocked_gpu(monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: torch.dtype) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert resolve_dtype("auto", cuda=True) == expected


@pytest.mark.gpu
def test_4bit_load_on_gpu(tiny_dir: Path) -> None:
    pytest.importorskip("bitsandbytes")
    model, _ = load_policy(_cfg(tiny_dir, load_in_4bit=True, use_unsloth=False))
    assert next(p for p in model.parameters() if p.requires_grad).is_cuda
    assert any("4bit" in type(m).__name__ for m in model.modules())
