"""Tiny tokenizer round trips and the tiny model loading through the Auto* classes."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer, count_parameters

PROMPT = "Blocks: a b c\nInit: on a b, on b table, clear a\nGoal: on b a\nPlan:\n"
PLAN = "(unstack a b)\n(putdown a)\n(pickup b)\n(stack b a)"
ACTION = re.compile(r"\(([^()]*)\)")


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer([PROMPT, PLAN, "(unstack c a)\n(putdown c)"])


def test_plan_round_trip_gives_back_the_same_text_and_actions(tokenizer) -> None:
    ids = tokenizer(PLAN, add_special_tokens=False).input_ids
    text = tokenizer.decode(ids)
    assert text == PLAN
    assert ACTION.findall(text) == ["unstack a b", "putdown a", "pickup b", "stack b a"]


def test_prompt_round_trip_keeps_lines(tokenizer) -> None:
    ids = tokenizer(PROMPT).input_ids
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == PROMPT


def test_parentheses_and_newlines_are_tokens(tokenizer) -> None:
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("(putdown a)\n(pickup b)", add_special_tokens=False).input_ids)
    assert tokens.count("(") == 2 and tokens.count(")") == 2 and tokens.count("\n") == 1
    assert len(tokens) == 9  # ( putdown a ) \n ( pickup b )


def test_spacing_is_normalized_and_unknown_words_map_to_unk(tokenizer) -> None:
    assert tokenizer.decode(tokenizer("(unstack   a b) \n(putdown a)", add_special_tokens=False).input_ids) == (
        "(unstack a b)\n(putdown a)"
    )
    ids = tokenizer("(fly a b)", add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id in ids


def test_saved_tokenizer_reloads_with_the_same_ids(tokenizer, tmp_path) -> None:
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(PROMPT).input_ids == tokenizer(PROMPT).input_ids
    assert again.decode(again(PLAN, add_special_tokens=False).input_ids) == PLAN
    assert (again.pad_token, again.eos_token, again.bos_token, again.unk_token) == ("<pad>", "<eos>", "<bos>", "<unk>")


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_model_loads_through_auto_classes(tokenizer, tmp_path, arch) -> None:
    path = build_tiny_model(tokenizer, tmp_path / arch, arch=arch, layers=2, hidden=64, ffn=128)
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == arch
    assert model.config.vocab_size == len(tok)
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    ids = torch.tensor([tok(PROMPT).input_ids])
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tok))
    assert model.generation_config.eos_token_id == tok.eos_token_id


def test_default_size_is_the_measured_point_and_seed_fixes_weights(tokenizer, tmp_path) -> None:
    a = AutoModelForCausalLM.from_pretrained(build_tiny_model(tokenizer, tmp_path / "a", seed=1))
    b = AutoModelForCausalLM.from_pretrained(build_tiny_model(tokenizer, tmp_path / "b", seed=1))
    n = count_parameters(a)
    assert 0.8e6 < n < 0.9e6  # 4 layers, hidden 128, FFN 384, tied: ~0.86 M
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_bad_arch_and_heads_are_rejected(tokenizer, tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown tiny model arch 'gpt9'"):
        build_tiny_model(tokenizer, tmp_path, arch="gpt9")
    with pytest.raises(ValueError, match=r"hidden \(100\) must be divisible by heads \(3\)"):
        build_tiny_model(tokenizer, tmp_path, hidden=100, heads=3)
