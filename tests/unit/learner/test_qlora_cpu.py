"""The project's `load_in_4bit: true` learner path (bitsandbytes NF4 + LoRA) on CPU: step, push, resume.

bitsandbytes is a [gpu] extra, not a main dependency: without it these tests skip. bitsandbytes 0.50
runs NF4 4-bit matmuls, their backward into LoRA and the quantisation itself on CPU, so the code that
a GPU runs (BitsAndBytesConfig, prepare_model_for_kbit_training, PEFT on Linear4bit) runs here too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from actors.engines.config import RolloutConfig
from actors.engines.hf import HFEngine
from learner.config.learner import LearnerConfig
from learner.grpo.train_step import GRPOTrainerCore, TrainSample, collate, completion_logprobs
from learner.policy.checkpoint import load_checkpoint, save_checkpoint
from learner.policy.model import get_adapter_state, load_policy
from reward_service.contracts import LoraSpec

bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes (the [gpu] extra) is not installed: "
                          "pip install 'bitsandbytes==0.50.*' runs the 4-bit learner path on CPU")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SAMPLES = [
    TrainSample((2, 3, 4), (5, 6, 7, 1), 1.0),
    TrainSample((2, 3), (8, 9, 1), -1.0),
    TrainSample((2, 10, 11, 12), (13, 1), 0.5),
    TrainSample((2,), (14, 15, 16, 17, 1), -0.5),
]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _core(tiny_dir: Path, four_bit: bool = True, seed: int = 3407) -> GRPOTrainerCore:
    cfg = LearnerConfig(base_model=str(tiny_dir), load_in_4bit=four_bit, load_in_4bit_on_cpu=four_bit,
                        use_unsloth=False, lora_rank=4, lora_alpha=8, lora_target_modules=TARGETS,
                        use_gradient_checkpointing=False, learning_rate=1e-2, beta=0.05, seed=seed,
                        lr_scheduler="cosine")
    model, tok = load_policy(cfg)
    return GRPOTrainerCore(model, tok, cfg, num_training_steps=10)


def _frozen_bytes(model: torch.nn.Module) -> dict[str, bytes]:
    return {n: p.detach().cpu().numpy().tobytes() for n, p in model.named_parameters() if not p.requires_grad}


def test_the_4bit_learner_takes_a_grpo_step_on_cpu(tiny_dir: Path) -> None:
    core = _core(tiny_dir)
    layers = [m for m in core.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 2 * 7 and all(m.weight.quant_type == "nf4" for m in layers)  # every block linear
    frozen, lora = _frozen_bytes(core.model), get_adapter_state(core.model)
    m = core.step(SAMPLES)  # with beta > 0: the reference pass runs with the adapter disabled
    assert m["nonfinite_grad"] == 0.0 and m["grad_norm"] > 0 and m["kl"] == pytest.approx(0.0, abs=1e-6)
    assert any(not torch.equal(v, lora[k]) for k, v in get_adapter_state(core.model).items())
    assert _frozen_bytes(core.model) == frozen  # NF4 base weights untouched
    assert core.step(SAMPLES)["kl"] > 0

    full = _core(tiny_dir, four_bit=False)  # same LoRA init (seed): only the base precision differs
    batch = collate(SAMPLES, 0)
    with torch.no_grad():
        q_lp = completion_logprobs(_core(tiny_dir).model.eval(), batch)[0]
        f_lp = completion_logprobs(full.model.eval(), batch)[0]
    gap = ((q_lp - f_lp).abs() * batch.completion_mask).sum() / batch.completion_mask.sum()
    assert 0 < gap < 0.15, gap  # NF4 is close to fp32, not equal


def test_the_4bit_adapter_pushes_to_the_hf_engine(tiny_dir: Path) -> None:
    core = _core(tiny_dir)
    core.step(SAMPLES)
    version, state = core.version, get_adapter_state(core.model)
    engine = HFEngine(str(tiny_dir), RolloutConfig(max_new_tokens=6, num_generations=2, temperature=1.0, top_k=0,
                                                   top_p=1.0),
                      lora=LoraSpec(rank=4, alpha=8, target_modules=tuple(TARGETS)), use_chat_template=False)
    engine.update_weights(state, version)
    assert engine.version == version == 1
    for key, value in get_adapter_state(engine.model).items():
        assert torch.equal(value, state[key]), key
    completions = engine.generate(["w1 w2 w3"], ["p:0"], policy_version=version)
    assert len(completions) == 2 and all(c.policy_version == 1 for c in completions)
    # the engine's fp32 base against the learner's NF4 base: the drift importance weights correct
    samples = [TrainSample(tuple(c.prompt_token_ids), tuple(c.token_ids), 1.0, tuple(c.logprobs))
               for c in completions]
    batch = collate(samples, 0)
    with torch.no_grad():
        learner_lp = completion_logprobs(core.model.eval(), batch)[0]
    mask = batch.completion_mask
    gap = ((learner_lp - batch.behaviour_logprobs).abs() * mask).nansum() / mask.sum()
    assert gap < 0.15, gap


def test_a_4bit_checkpoint_resumes_identically(tiny_dir: Path, tmp_path: Path) -> None:
    core = _core(tiny_dir)
    core.step(SAMPLES)
    path = save_checkpoint(tmp_path, 1, core.model, core.optimizer, core.scheduler, version=core.version)
    core.step(SAMPLES)
    continued = get_adapter_state(core.model)

    resumed = _core(tiny_dir, seed=99)  # another LoRA init: the checkpoint must replace it
    loaded = load_checkpoint(path, resumed.model, resumed.optimizer, resumed.scheduler)
    resumed.version = loaded.version
    resumed.step(SAMPLES)
    assert resumed.version == 2
    for key, value in get_adapter_state(resumed.model).items():
        torch.testing.assert_close(value, continued[key], atol=1e-7, rtol=0)
