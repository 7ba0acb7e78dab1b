"""The TRL reward function: string and chat completions, the meta column, and one real GRPOTrainer step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reward_service.config import RewardConfig
from reward_service.trl import ENV_DATA_ROOT, completion_text, make_trl_reward

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pddl"
META = {"problem_file": "ferry/p01.pddl", "domain_file": "ferry/domain.pddl"}
VALID = (FIXTURES / "ferry" / "p01.valid.plan").read_text()
PRECOND = (FIXTURES / "ferry" / "p01.precond.plan").read_text()


def test_string_completions_get_table_rewards() -> None:
    reward = make_trl_reward(FIXTURES, RewardConfig(validator="native"))
    out = reward(["p"] * 3, [VALID, PRECOND, "no idea"], meta=[META] * 3)
    assert out[0] == 1.0 and out[2] == -1.0
    assert out[1] == pytest.approx(-0.6 + 0.3 * 3 / 4)
    assert [s.label.value for s in reward.last_scores] == ["success_plans", "precondition_violation", "empty_plan"]


def test_chat_completions_and_json_meta() -> None:
    reward = make_trl_reward(FIXTURES, RewardConfig(validator="val"))
    chat = [[{"role": "assistant", "content": "Here it is:\n" + VALID}], [{"role": "assistant", "content": ""}]]
    out = reward([[{"role": "user", "content": "plan"}]] * 2, chat, meta=[json.dumps(META)] * 2)
    assert out == [1.0, -1.0]


def test_completion_text_joins_assistant_messages_only() -> None:
    msgs = [{"role": "system", "content": "(x)"}, {"role": "assistant", "content": [{"type": "text", "text": "(a)"}]}]
    assert completion_text(msgs) == "(a)"
    assert completion_text("(b)") == "(b)"


def test_missing_meta_column_is_an_exact_error() -> None:
    reward = make_trl_reward(FIXTURES)
    with pytest.raises(ValueError, match="the dataset has no `meta` column"):
        reward(["p"], [VALID])
    with pytest.raises(ValueError, match="sample_id 's' has two different meta"):
        other = {**META, "problem_file": "grippers/p01.pddl"}
        reward(["p", "p"], [VALID, VALID], meta=[META, other], sample_id=["s", "s"])


def test_default_function_reads_the_data_root_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from reward_service import trl_reward

    monkeypatch.setenv(ENV_DATA_ROOT, str(FIXTURES))
    assert trl_reward(["p"], [VALID], meta=[META]) == [1.0]
    monkeypatch.delenv(ENV_DATA_ROOT)
    with pytest.raises(ValueError, match=f"no data root: pass data_root or set \\${ENV_DATA_ROOT}"):
        make_trl_reward()


@pytest.mark.parametrize("first", ["", "import reward_service.trl", "from reward_service.trl import make_trl_reward"])
def test_the_package_name_is_the_function_whatever_was_imported_first(first: str) -> None:
    # it was a module made callable by swapping its class; now a plain function, in a fresh interpreter
    code = (f"{first}\nimport types\nfrom reward_service import trl_reward\n"
            "assert isinstance(trl_reward, types.FunctionType), type(trl_reward)\n"
            "import reward_service, reward_service.trl\n"
            "assert reward_service.trl_reward is reward_service.trl.trl_reward\nprint(trl_reward.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "trl_reward"


def test_logs_metrics_and_the_debug_log(tmp_path: Path) -> None:
    class State:
        global_step = 5

    logged: dict[str, float] = {}
    reward = make_trl_reward(FIXTURES, RewardConfig(validator="native"), debug_log=tmp_path / "reward_debug.log")
    reward(["p", "p"], [VALID, VALID], meta=[META] * 2, trainer_state=State(), log_metric=logged.__setitem__)
    assert logged == {"reward/none_fraction": 0.0, "reward/success_fraction": 1.0}
    text = (tmp_path / "reward_debug.log").read_text()
    assert text.count("step=5\t") == 3 and "WARNING reward std = 0 in 1/1 groups: ferry/p01.pddl" in text


def _tiny_model_and_tokenizer(tmp_path: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>", "(", ")", "board", "sail", "debark", "c0", "c1", "l0", "l1", "l2"]
    words += ["plan", "ferry", "cars", "goal", ":", "at"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    return LlamaForCausalLM(config), tokenizer


@pytest.mark.slow
def test_one_grpo_trainer_step_uses_the_reward(tmp_path: Path) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = _tiny_model_and_tokenizer(tmp_path)
    rows = [{"prompt": "ferry plan : c0 at l1", "meta": META, "sample_id": "ferry:1", "domain": "ferry"}] * 4
    reward = make_trl_reward(FIXTURES, RewardConfig(validator="native"), debug_log=tmp_path / "reward_debug.log")
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=4, max_completion_length=12,
        max_steps=1, learning_rate=1e-3, logging_steps=1, report_to=[], use_cpu=True, bf16=False, save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=model, reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    trainer.train()
    assert len(reward.last_scores) == 4
    assert all(s.sample_id == "ferry:1" and s.reward is not None for s in reward.last_scores)
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert "rewards/pddl_reward/mean" in logged
    assert (tmp_path / "reward_debug.log").read_text().count("sample_id=ferry:1") == 4
