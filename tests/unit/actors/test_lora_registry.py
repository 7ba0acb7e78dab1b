"""LoraRegistry: versioned adapter directories, one LoRA id per version, older versions removed and deleted."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from transformers import AutoModelForCausalLM

from actors.engines.lora_registry import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    AdapterVersion,
    LoraRegistry,
    lora_target_modules,
    vllm_max_lora_rank,
    write_adapter,
)
from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    tok = build_tiny_tokenizer(["(pick a b)\n(drop a b)"])
    return build_tiny_model(tok, tmp_path_factory.mktemp("tiny"), layers=1, hidden=32, ffn=64, seed=1)


def _peft(tiny_path, targets=("q_proj", "v_proj"), rank=4):
    base = AutoModelForCausalLM.from_pretrained(tiny_path)
    return get_peft_model(base, LoraConfig(r=rank, lora_alpha=8.0, target_modules=list(targets), task_type="CAUSAL_LM"))


@pytest.fixture(scope="module")
def shapes(tiny_path) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in get_peft_model_state_dict(_peft(tiny_path)).items()}


def _state(shapes, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) for k, shape in shapes.items()}


def test_v1_v2_v3_leave_only_the_newest_registered_and_on_disk(tmp_path, shapes) -> None:
    reg = LoraRegistry(tmp_path / "adapters")
    removed_ids = []
    for version in (1, 2, 3):
        entry = reg.register(_state(shapes, version), version, rank=4, alpha=8.0)
        assert reg.current == entry
        assert entry.lora_name == f"policy-v{version}" and entry.lora_int_id == version + 1
        for old in reg.to_remove:
            removed_ids.append(old.lora_int_id)
            reg.release(old)
        assert reg.to_remove == []
    assert removed_ids == [2, 3]  # v1 then v2, each once
    assert [e.version for e in reg.held] == [3]
    assert sorted(p.name for p in (tmp_path / "adapters").iterdir()) == ["policy-v3"]
    assert reg.current.request_args() == {
        "lora_name": "policy-v3", "lora_int_id": 4, "lora_path": str(tmp_path / "adapters" / "policy-v3"),
    }


def test_older_versions_pile_up_in_to_remove_until_released(tmp_path, shapes) -> None:
    reg = LoraRegistry(tmp_path)
    for version in (0, 1, 2):
        reg.register(_state(shapes, version), version, rank=4, alpha=8.0)
    assert [e.version for e in reg.to_remove] == [0, 1]
    with pytest.raises(ValueError, match="cannot release the current adapter"):
        reg.release(reg.current)
    reg.release(reg.to_remove[0])
    with pytest.raises(KeyError, match="version 0 is not registered"):
        reg.release(AdapterVersion(0, "policy-v0", 1, tmp_path / "policy-v0"))


def test_versions_only_move_forward(tmp_path, shapes) -> None:
    reg = LoraRegistry(tmp_path)
    reg.register(_state(shapes, 0), 5, rank=4, alpha=8.0)
    for stale in (5, 4):
        with pytest.raises(ValueError, match=f"adapter version {stale} is not newer than the registered version 5"):
            reg.register(_state(shapes, 0), stale, rank=4, alpha=8.0)
    with pytest.raises(ValueError, match="policy version must be >= 0"):
        LoraRegistry(tmp_path / "other").register(_state(shapes, 0), -1, rank=4, alpha=8.0)


def test_written_adapter_loads_back_with_peft_with_the_same_weights(tmp_path, tiny_path, shapes) -> None:
    state = _state(shapes, 7)
    directory = write_adapter(tmp_path / "a", state, rank=4, alpha=8.0, base_model=str(tiny_path))
    config = json.loads((directory / ADAPTER_CONFIG).read_text())
    assert (directory / ADAPTER_WEIGHTS).is_file()
    assert config["r"] == 4 and config["lora_alpha"] == 8.0 and config["target_modules"] == ["q_proj", "v_proj"]
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_path), str(directory))
    got = get_peft_model_state_dict(loaded)
    assert set(got) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(got[key], value)


def test_close_deletes_an_owned_temporary_root(shapes) -> None:
    reg = LoraRegistry()
    reg.register(_state(shapes, 0), 0, rank=4, alpha=8.0)
    root = reg.root
    assert (root / "policy-v0" / ADAPTER_WEIGHTS).is_file()
    reg.close()
    assert not root.exists() and reg.current is None


def test_target_modules_come_from_the_tensor_names() -> None:
    state = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(2, 4),
        "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight": torch.zeros(4, 2),
    }
    assert lora_target_modules(state) == ["down_proj", "q_proj"]
    with pytest.raises(ValueError, match="is not a LoRA A/B weight"):
        lora_target_modules({"model.embed_tokens.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"adapter tensors have LoRA rank \[2\], but rank 16 was declared"):
        write_adapter("/nonexistent-never-written", state, rank=16, alpha=32.0)
    with pytest.raises(ValueError, match="empty adapter state"):
        write_adapter("/nonexistent-never-written", {}, rank=4, alpha=8.0)


@pytest.mark.parametrize(("rank", "expected"), [(1, 8), (8, 8), (9, 16), (64, 64), (65, 128), (300, 320)])
def test_max_lora_rank_rounds_up_to_a_value_vllm_accepts(rank: int, expected: int) -> None:
    assert vllm_max_lora_rank(rank) == expected


def test_max_lora_rank_above_vllm_limit_is_an_error() -> None:
    with pytest.raises(ValueError, match="lora_rank 513 is above vLLM's largest max_lora_rank"):
        vllm_max_lora_rank(513)
