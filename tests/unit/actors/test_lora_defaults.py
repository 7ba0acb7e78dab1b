"""The LoRA shape has one set of defaults (issue 16 items 1 and 4): LoraSpec's. The learner's fields default to
them, the vLLM engine's `lora` defaults to LoraSpec(), and the driver hands every engine the learner's own spec,
so an engine wraps the model as the learner does (was: HF alpha 16 and PEFT's per-architecture targets, vLLM
alpha 32, the learner alpha 32 and all-linear)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from peft import PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from actors.engines.config import RolloutConfig
from actors.engines.hf import HFEngine
from actors.engines.vllm import VLLMEngine  # vllm itself is imported only when an engine starts
from learner.config.learner import LearnerConfig
from learner.policy.model import lora_config
from reward_service.contracts import LoraSpec


def _default(cls: type) -> object:
    return inspect.signature(cls.__init__).parameters["lora"].default


def test_the_learner_and_the_engines_share_lora_spec_defaults() -> None:
    assert LearnerConfig().lora_spec == LoraSpec() == _default(VLLMEngine)
    assert LoraSpec() == LoraSpec(rank=16, alpha=32.0, dropout=0.0, target_modules="all-linear")
    assert _default(HFEngine) is None  # no spec: the HF engine generates with the bare model


def test_the_learners_spec_carries_every_lora_field() -> None:
    cfg = LearnerConfig(lora_rank=4, lora_alpha=8.0, lora_dropout=0.1, lora_target_modules=["q_proj", "v_proj"])
    assert cfg.lora_spec == LoraSpec(rank=4, alpha=8.0, dropout=0.1, target_modules=("q_proj", "v_proj"))
    assert cfg.lora_spec.peft_target_modules() == ["q_proj", "v_proj"]


@pytest.mark.parametrize("bad", [dict(rank=0), dict(alpha=0.0), dict(dropout=1.0), dict(target_modules=())])
def test_a_spec_that_cannot_build_an_adapter_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="LoraSpec"):
        LoraSpec(**bad)


def test_an_hf_engine_given_only_the_rank_wraps_the_model_as_the_learner(tiny_dir: Path) -> None:
    torch.manual_seed(0)
    engine = HFEngine(str(tiny_dir), RolloutConfig(max_new_tokens=2, num_generations=2), lora=LoraSpec(rank=4),
                      device="cpu")
    assert isinstance(engine.model, PeftModel)
    got = engine.model.peft_config["default"]
    want = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_dir)),
                          lora_config(LearnerConfig(lora_rank=4))).peft_config["default"]
    assert (got.r, got.lora_alpha, got.lora_dropout) == (want.r, want.lora_alpha, want.lora_dropout) == (4, 32.0, 0.0)
    assert set(got.target_modules) == set(want.target_modules)
    leaves = {name.rsplit(".", 1)[-1] for name in got.target_modules}
    assert {"gate_proj", "up_proj", "down_proj", "o_proj"} <= leaves  # all-linear, not PEFT's q/v default
