"""prompt_lengths.txt: lengths as the engines encode prompts, per split and domain, over-limit counts and warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learner.driver.prompt_lengths import length_stats, write_prompt_lengths


def _write(path: Path, prompts: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"prompt": p, "response": "w1"}) + "\n" for p in prompts))


def test_table_counts_tokens_per_split_and_domain(tiny_dir: Path, tmp_path: Path, caplog) -> None:
    data = tmp_path / "data"
    _write(data / "ferry.jsonl", ["w1 w2 w3", "w4 w5", "w1 w2 w3 w4 w5 w6 w7"])
    _write(data / "spanner.jsonl", ["w1"] * 4)
    _write(data / "test" / "ferry.jsonl", ["w1 w2 w3 w4 w5 w6"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stats = write_prompt_lengths(run_dir, str(tiny_dir), data, None, limit=5)
    by_key = {(s.split, s.domain): s for s in stats}
    ferry = by_key[("train", "ferry")]  # the tiny tokenizer has no chat template: one token per word
    assert (ferry.count, ferry.min, ferry.max, ferry.p50, ferry.over_limit) == (3, 2, 7, 3, 1)
    assert ferry.mean == pytest.approx(4.0)
    assert by_key[("train", "spanner")].over_limit == 0 and by_key[("test", "ferry")].over_limit == 1
    text = (run_dir / "prompt_lengths.txt").read_text()
    assert "limit: 5" in text and len(text.splitlines()) == 2 + 3
    warned = [r.getMessage() for r in caplog.records if "longer than 5 tokens" in r.getMessage()]
    assert warned == ["train/ferry: 1 of 3 prompts are longer than 5 tokens and lose their start (longest 7)",
                      "test/ferry: 1 of 1 prompts are longer than 5 tokens and lose their start (longest 6)"]
    only = write_prompt_lengths(run_dir, str(tiny_dir), data, ["spanner"], limit=None, max_per_domain=2)
    assert [(s.split, s.domain, s.count) for s in only] == [("train", "spanner", 2)]


def test_bad_record_names_file_and_line(tiny_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write(data / "ferry.jsonl", ["w1"])
    with (data / "ferry.jsonl").open("a") as fh:
        fh.write('{"response": "w1"}\n')
    with pytest.raises(ValueError, match=r"ferry.jsonl:2: not a record with a 'prompt'"):
        write_prompt_lengths(tmp_path, str(tiny_dir), data, None, limit=None)
    with pytest.raises(ValueError, match="train/ferry: no prompts to measure"):
        length_stats("train", "ferry", [], None)
