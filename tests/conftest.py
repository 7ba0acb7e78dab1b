"""Shared pytest setup: passive OpenMP threads, `gpu` / `vllm` skips without CUDA / vLLM, tiny Llama fixtures."""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: test processes and Ray actors share 2 cores, and
# spinning threads of one process starved another (a 0.7 s test took 41 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests start their own local Ray clusters; never join a cluster another process left running.
os.environ.setdefault("RAY_ADDRESS", "local")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _vllm_installed() -> bool:
    # find_spec, not import: an installed but broken vLLM must fail its tests, not skip them
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = []
    if not _cuda_available():
        skips.append(("gpu", pytest.mark.skip(reason="needs a CUDA GPU")))
    if not _vllm_installed():
        skips.append(("vllm", pytest.mark.skip(reason="needs vllm (on CPU: bash .ci/vllm_cpu.sh builds .venv-vllm)")))
    for item in items:
        for keyword, skip in skips:
            if keyword in item.keywords:
                item.add_marker(skip)


def build_tiny_llama(out: Path) -> Path:
    """Save a 2-layer Llama (hidden 64) and its tokenizer into `out`: pad=0, eos=1, words w0..w45 = ids 2..47.

    Token ids are fixed, so tests can write samples as raw id tuples. Seeds torch's global RNG with 0
    before building, so the weights are the same in every module that builds one.
    """
    # imported here, not at module level: sampler/reward tests must collect without loading torch
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

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
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A fresh `build_tiny_llama` directory per test module (read-only by convention: tests save elsewhere)."""
    return build_tiny_llama(tmp_path_factory.mktemp(f"tiny_{request.module.__name__.rsplit('.', 1)[-1]}"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch uses one intra-op thread for the module; use via `pytest.mark.usefixtures("one_torch_thread")`."""
    # the suite shares 2 cores with other processes: spinning OpenMP threads would starve each other
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
