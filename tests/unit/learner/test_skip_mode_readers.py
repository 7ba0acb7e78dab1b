"""Under sampler.on_bad_record: skip, the SFT and prompt-length readers skip the bad lines the pre-flight reported
(they used to stop the run on them); without skip they still fail with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learner.driver.prompt_lengths import measure
from learner.policy.tiny import build_tiny_tokenizer
from learner.sft import load_sft_records

GOOD = {"prompt": "Goal: on a b\nPlan:\n", "response": "(stack a b)", "meta": {}}


def _root(tmp_path: Path) -> Path:
    lines = [json.dumps(GOOD), "{not json", json.dumps({"no_prompt": 1}), json.dumps({**GOOD, "prompt": "Plan:\n"})]
    (tmp_path / "blocksworld.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_sft_reader_skips_bad_lines_in_skip_mode_and_names_them_otherwise(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert [r["prompt"] for r in load_sft_records(root, ["blocksworld"], skip_bad=True)] == [GOOD["prompt"], "Plan:\n"]
    with pytest.raises(ValueError, match=r"blocksworld.jsonl:2: malformed JSON"):
        load_sft_records(root, ["blocksworld"])


def test_prompt_lengths_skip_bad_lines_in_skip_mode_and_name_them_otherwise(tmp_path: Path) -> None:
    root = _root(tmp_path)
    tokenizer = build_tiny_tokenizer([GOOD["prompt"], GOOD["response"]])
    (stats,) = measure(tokenizer, root, ["blocksworld"], limit=None, use_chat_template=False, skip_bad=True)
    assert stats.count == 2
    with pytest.raises(ValueError, match=r"blocksworld.jsonl:2: not a record with a 'prompt'"):
        measure(tokenizer, root, ["blocksworld"], limit=None, use_chat_template=False)
