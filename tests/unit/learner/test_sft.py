"""Supervised warm start: plan-only loss, loss goes down, greedy plans come out right, the CLI and its data."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer
from learner.sft import encode_pair, load_sft_records, main, run_sft


def _records() -> list[dict]:
    # A blocksworld-like copy task: the plan repeats the goal's objects in a fixed pattern.
    return [
        {"prompt": f"Goal: on {x} {y}\nPlan:\n", "response": f"(pickup {x})\n(stack {x} {y})"}
        for x, y in itertools.permutations("abcdef", 2)
    ]


@pytest.fixture()
def one_thread():
    # On the shared 2-core box one torch thread is several times faster than two fighting for it.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tiny(tmp_path, one_thread):
    recs = _records()
    tok = build_tiny_tokenizer([t for r in recs for t in (r["prompt"], r["response"])])
    path = build_tiny_model(tok, tmp_path / "m", layers=2, hidden=64, ffn=128, seed=0)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_encode_pair_masks_the_prompt_and_ends_with_eos(tiny) -> None:
    _, tok = tiny
    ids, labels = encode_pair(tok, "Goal: on a b\nPlan:\n", "(pickup a)")
    n_prompt = len(tok("Goal: on a b\nPlan:\n").input_ids)
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids[n_prompt:-1]) == "(pickup a)"


def test_encode_pair_encodes_the_prompt_as_the_engines_do(tiny) -> None:
    from actors.engines.base import encode_prompt

    _, tok = tiny
    tok.chat_template = ("{% for m in messages %}Goal: {{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %} Plan:{% endif %}")
    engine_ids = encode_prompt(tok, "on a b", use_chat_template=True, max_prompt_tokens=None)
    ids, labels = encode_pair(tok, "on a b", "(pickup a)")
    assert ids[: len(engine_ids)] == engine_ids and labels[: len(engine_ids)] == [-100] * len(engine_ids)
    assert tok.decode(engine_ids).split()[0] == "Goal:" and engine_ids != tok("on a b").input_ids
    assert tok.decode(ids[len(engine_ids):-1]) == "(pickup a)"


def test_encode_pair_truncates_the_prompt_not_the_plan(tiny) -> None:
    _, tok = tiny
    ids, labels = encode_pair(tok, "Goal: on a b\nPlan:\n", "(pickup a)", max_length=7)
    assert len(ids) == 7
    assert labels[-5:] == ids[-5:]  # ( pickup a ) and EOS: the plan is whole
    assert labels[:2] == [-100, -100]  # the last two prompt tokens are kept
    assert tok.decode(ids[-5:-1]) == "(pickup a)"


def test_sft_lowers_loss_and_greedy_plans_are_right_on_held_out_goals(tiny) -> None:
    from actors.engines.config import RolloutConfig
    from actors.engines.hf import HFEngine

    model, tok = tiny
    recs = _records()
    held_out = recs[::6]  # 5 of 30 goals never trained on
    train = [r for r in recs if r not in held_out]
    torch.manual_seed(0)
    metrics = run_sft(model, tok, train, steps=150, lr=3e-3, batch_size=16, log_every=10, progress=False)
    assert metrics.steps == 150
    assert metrics.final_loss < 0.1 * metrics.first_loss
    assert metrics.loss_history[-1][1] < metrics.loss_history[0][1]
    assert metrics.tokens > 0 and metrics.tokens_per_second > 0
    engine = HFEngine(model, RolloutConfig(temperature=0, max_new_tokens=16, num_generations=1), tokenizer=tok)
    out = engine.generate([r["prompt"] for r in recs], [str(i) for i in range(len(recs))])
    right = [c.text == r["response"] for c, r in zip(out, recs, strict=True)]
    assert sum(right) >= 0.9 * len(recs)
    assert sum(c.text == r["response"] for c, r in zip(out[::6], held_out, strict=True)) >= 4


def test_run_sft_needs_a_budget_and_records(tiny) -> None:
    model, tok = tiny
    with pytest.raises(ValueError, match="run_sft needs a budget"):
        run_sft(model, tok, _records())
    with pytest.raises(ValueError, match="run_sft got no records"):
        run_sft(model, tok, [], steps=1)


def test_minutes_budget_stops_training(tiny) -> None:
    model, tok = tiny
    metrics = run_sft(model, tok, _records(), minutes=0.02, batch_size=4, progress=False)
    assert 1 <= metrics.steps and metrics.seconds < 10


def _write(root, name, lines) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


def test_load_sft_records_skips_records_without_plan_and_names_bad_lines(tmp_path) -> None:
    good = json.dumps({"prompt": "p", "response": "(a)", "meta": {}})
    _write(tmp_path, "ferry", [good, json.dumps({"prompt": "q", "meta": {}}), ""])
    assert [r["prompt"] for r in load_sft_records(tmp_path)] == ["p"]
    _write(tmp_path, "rovers", [good, "{not json"])
    with pytest.raises(ValueError, match=r"rovers.jsonl:2: malformed JSON"):
        load_sft_records(tmp_path)
    with pytest.raises(FileNotFoundError, match="depots.jsonl does not exist"):
        load_sft_records(tmp_path, ["depots"])
    _write(tmp_path / "none", "x", [json.dumps({"prompt": "q"})])
    with pytest.raises(ValueError, match="has a gold plan"):
        load_sft_records(tmp_path / "none")


def test_cli_builds_trains_and_saves_a_loadable_model(tmp_path, one_thread) -> None:
    _write(tmp_path / "data", "blocks", [json.dumps(r) for r in _records()])
    out = tmp_path / "out"
    metrics = main(["--model", "tiny", "--data-root", str(tmp_path / "data"), "--out", str(out),
                    "--steps", "3", "--batch-size", "8", "--threads", "1"])
    assert metrics.steps == 3
    saved = json.loads((out / "sft_metrics.json").read_text())
    assert saved["steps"] == 3
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tok)


def test_lr_factor_warms_up_then_holds_or_decays_to_zero() -> None:
    from learner.sft import _lr_factor

    assert _lr_factor(0, 10, "constant", 100, None, 0.0) == pytest.approx(0.1)
    assert _lr_factor(50, 10, "constant", 100, None, 0.0) == 1.0
    assert _lr_factor(50, 10, "cosine", 100, None, 0.0) == pytest.approx(0.5)
    assert _lr_factor(99, 10, "cosine", 100, None, 0.0) < 0.01
    # with a time budget the larger fraction used decides: 3 of 4 minutes gone at step 10 of 100
    assert _lr_factor(10, 10, "cosine", 100, 4.0, 180.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    with pytest.raises(ValueError, match="lr_schedule must be 'constant' or 'cosine', got 'linear'"):
        run_sft(None, None, [], steps=1, lr_schedule="linear")
