"""LearnerActor on a local Ray cluster: a train step moves the LoRA weights; adapter state, save and load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from learner.learner_config import LearnerConfig
from learner.train_step import TrainSample

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration

SAMPLES = [TrainSample((2, 3, 4), (5, 6, 7, 1), 1.0, behaviour_logprobs=(-3.9, -3.8, -3.9, -3.7)),
           TrainSample((2, 3), (8, 9, 1), -1.0)]


def _tiny_model_dir(out: Path) -> Path:
    words = ["<pad>", "<eos>"] + [f"w{i}" for i in range(46)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(words), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                         pad_token_id=0, eos_token_id=1)
    LlamaForCausalLM(config).save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def learner(cluster, tmp_path_factory):
    from actors.learner import create_learner_actor

    path = _tiny_model_dir(tmp_path_factory.mktemp("tiny_actor"))
    cfg = LearnerConfig(base_model=str(path), lora_rank=4, learning_rate=1e-2, use_gradient_checkpointing=False)
    actor = create_learner_actor(cfg, num_cpus=1, num_training_steps=10)
    yield actor
    ray.kill(actor)


def test_named_actor_with_passive_threads(learner) -> None:
    assert ray.get_actor("learner") is not None
    env = ray.get(learner.__ray_call__.remote(lambda self: (self.num_threads, __import__("os").environ.get(
        "OMP_WAIT_POLICY"), __import__("torch").get_num_threads())))
    assert env == (1, "PASSIVE", 1)


def test_train_step_changes_lora_weights_only(learner) -> None:
    version0, before = ray.get(learner.get_adapter_state.remote())
    assert before and all("lora_" in k for k in before)
    metrics = ray.get(learner.train_step.remote(SAMPLES))
    version1, after = ray.get(learner.get_adapter_state.remote())
    assert version1 == version0 + 1 == ray.get(learner.version.remote())
    assert set(after) == set(before)
    assert any(not torch.equal(after[k], before[k]) for k in after)
    assert metrics["tokens"] == 7 and metrics["grad_norm"] > 0 and "is_weight/mean" in metrics


def test_save_and_load_restore_version_and_extra(learner, tmp_path: Path) -> None:
    path = ray.get(learner.save.remote(str(tmp_path), 5, {"sampler": {"cursor": 7}, "step": 5}, 2))
    version, state = ray.get(learner.get_adapter_state.remote())
    ray.get(learner.train_step.remote(SAMPLES))
    restored = ray.get(learner.load.remote(path))
    assert restored["sampler"] == {"cursor": 7} and restored["step"] == 5 and restored["version"] == version
    version2, state2 = ray.get(learner.get_adapter_state.remote())
    assert version2 == version
    assert all(torch.equal(state2[k], state[k]) for k in state)
    assert ray.get(learner.load.remote("auto", str(tmp_path / "elsewhere"))) is None
