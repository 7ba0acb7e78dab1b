"""The TRL view: a real GRPOTrainer on a tiny local model sees one balanced stream batch per optimizer step."""

from __future__ import annotations

import logging
import string
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from sampler.config import SamplerConfig
from sampler.stream import BalancedBatchStream
from sampler.synthetic import write_synthetic_dataset
from sampler.torch_dataset import SamplerIterableDataset, check_trl_args, trl_steps_per_generation

DOMAINS = ["delivery", "ferry", "grippers", "spanner"]


@pytest.fixture
def data_root(tmp_path):
    write_synthetic_dataset(tmp_path, dict.fromkeys(DOMAINS, 40), seed=3, prompt_chars=12)
    return tmp_path


def _stream(root, batch_size=4, **kw) -> BalancedBatchStream:
    return BalancedBatchStream.from_config(
        SamplerConfig(data_root=str(root), batch_size=batch_size, max_steps=10, seed=5, **kw)
    )


def test_torch_view_yields_stream_batches_in_step_order(data_root):
    view = SamplerIterableDataset(_stream(data_root), start_step=2, stop_step=8, stride=3)
    got = [s["sample_id"] for s in view]
    ref = _stream(data_root)
    assert got == [s["sample_id"] for t in (2, 5) for s in ref.batch(t)]
    loader = torch.utils.data.DataLoader(SamplerIterableDataset(_stream(data_root), stop_step=3),
                                         batch_size=4, collate_fn=list)
    for batch in loader:
        assert sorted(Counter(s["domain"] for s in batch).values()) == [1, 1, 1, 1]


def _args(**kw):
    base = dict(shuffle_dataset=False, generation_batch_size=8, num_generations=2, world_size=1,
                steps_per_generation=2, num_iterations=1, gradient_accumulation_steps=2)
    return SimpleNamespace(**{**base, **kw})


def test_trl_args_are_checked_against_the_stream(data_root):
    stream = _stream(data_root)
    assert check_trl_args(stream, _args()) == 1
    assert trl_steps_per_generation(_args(num_iterations=2)) == 2
    with pytest.raises(ValueError, match="shuffle_dataset must be False"):
        check_trl_args(stream, _args(shuffle_dataset=True))
    with pytest.raises(ValueError, match=r"batch_size \(4\) must equal .* = 8; TRL counts"):
        check_trl_args(stream, _args(generation_batch_size=16))
    with pytest.raises(ValueError, match="data_parallel_size"):
        check_trl_args(stream, _args(world_size=2))
    with pytest.raises(ValueError, match="multiple of gradient_accumulation_steps"):
        trl_steps_per_generation(_args(steps_per_generation=3))


def _tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>"]
    chars = [c for c in string.printable if c not in "\r\x0b\x0c"]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


@pytest.mark.slow
def test_grpo_trainer_sees_one_balanced_batch_per_optimizer_step(data_root, tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    from sampler.torch_dataset import trl_train_dataset

    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.manual_seed(0)
    tokenizer = _tiny_tokenizer()
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    ))
    # 4 prompts x 2 generations = 8 completions per optimizer step: 4 completions per device
    # step x 2 accumulation steps. TRL counts per_device_train_batch_size in completions.
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=4, gradient_accumulation_steps=2,
        num_generations=2, max_completion_length=4, shuffle_dataset=False, learning_rate=1e-4,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=0, dataloader_num_workers=0,
        disable_tqdm=True,
    )
    seen: list[tuple[int, list[str], list[str]]] = []

    def record_reward(prompts, completions, sample_id, domain, trainer_state, **_):
        seen.append((trainer_state.global_step, list(sample_id), list(domain)))
        return [float(len(c)) for c in completions]

    trainer = GRPOTrainer(model=model, reward_funcs=record_reward, args=args, processing_class=tokenizer,
                          train_dataset=trl_train_dataset(_stream(data_root), args))
    trainer.train()

    ref = _stream(data_root)
    assert [step for step, _, _ in seen] == [0, 1, 2]
    for step, ids, domains in seen:
        # every prompt of the learner step's batch, each with its group of 2 completions
        assert Counter(ids) == Counter({s["sample_id"]: 2 for s in ref.batch(step)})
        assert Counter(domains) == Counter(dict.fromkeys(DOMAINS, 2))
