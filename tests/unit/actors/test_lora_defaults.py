"""The LoRA shape has one set of defaults (issue 16 item 4): both engines' keyword defaults are the learner's,
so an engine built without alpha or target modules wraps the model as the learner does (was: HF alpha 16 and
PEFT's per-architecture targets, vLLM alpha 32, the learner alpha 32 and all-linear)."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from peft import PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from actors.engines.config import RolloutConfig
from actors.engines.hf import HFEngine
from actors.engines.vllm import VLLMEngine  # vllm itself is imported only when an engine starts
from learner.learner_config import LearnerConfig
from learner.model import lora_config

LORA_KEYS = ("lora_alpha", "lora_dropout", "lora_target_modules")


def _defaults(cls: type) -> dict[str, object]:
    params = inspect.signature(cls.__init__).parameters
    return {k: params[k].default for k in ("lora_rank", *LORA_KEYS)}


def test_both_engines_default_the_lora_shape_to_the_learners() -> None:
    learner = LearnerConfig()
    expected = {k: getattr(learner, k) for k in LORA_KEYS}
    assert {k: _defaults(HFEngine)[k] for k in LORA_KEYS} == expected
    assert _defaults(VLLMEngine) == {"lora_rank": learner.lora_rank, **expected}
    assert _defaults(HFEngine)["lora_rank"] is None  # no rank: the HF engine generates with the bare model


def test_an_hf_engine_given_only_the_rank_wraps_the_model_as_the_learner(tiny_dir: Path) -> None:
    torch.manual_seed(0)
    engine = HFEngine(str(tiny_dir), RolloutConfig(max_new_tokens=2, num_generations=2), lora_rank=4, device="cpu")
    assert isinstance(engine.model, PeftModel)
    got = engine.model.peft_config["default"]
    want = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_dir)),
                          lora_config(LearnerConfig(lora_rank=4))).peft_config["default"]
    assert (got.r, got.lora_alpha, got.lora_dropout) == (want.r, want.lora_alpha, want.lora_dropout) == (4, 32.0, 0.0)
    assert set(got.target_modules) == set(want.target_modules)
    leaves = {name.rsplit(".", 1)[-1] for name in got.target_modules}
    assert {"gate_proj", "up_proj", "down_proj", "o_proj"} <= leaves  # all-linear, not PEFT's q/v default
