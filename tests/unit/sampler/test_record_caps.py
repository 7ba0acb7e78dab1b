"""Size caps on records (issue 19 item 2): an oversized line or prompt fails at load with file:line, or is skipped."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from sampler.config import SamplerConfig
from sampler.records import MAX_PROMPT_CHARS, MAX_RECORD_BYTES, RecordError, load_records


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "ferry.pddl").write_text("(define (domain ferry))\n")
    (tmp_path / "p").mkdir()
    for i in range(3):
        (tmp_path / "p" / f"ferry-l3-c2-s{i}.pddl").write_text("(define (problem p) (:domain ferry) (:goal (and)))\n")
    return tmp_path


def _rec(i: int, prompt: str | None = None, **extra: object) -> str:
    meta = {"problem_file": f"p/ferry-l3-c2-s{i}.pddl", "domain_file": "d/ferry.pddl"}
    return json.dumps({"prompt": prompt or f"ferry task {i}", "meta": meta, **extra})


def _write(root: Path, lines: list[str]) -> Path:
    path = root / "ferry.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_a_prompt_over_the_cap_fails_with_file_and_line(root: Path) -> None:
    path = _write(root, [_rec(0), _rec(1, "x" * (MAX_PROMPT_CHARS + 1))])
    with pytest.raises(RecordError, match=rf"^{path}:2: prompt is 200,001 characters, over the cap of 200,000"):
        load_records(SamplerConfig(data_root=str(root)))


def test_a_line_over_the_byte_cap_fails_and_is_not_read_whole(root: Path) -> None:
    long_line = _rec(1, response="(a)" * (MAX_RECORD_BYTES // 3 + 10))  # a short prompt, a huge gold plan
    path = _write(root, [_rec(0), long_line, _rec(2)])
    with pytest.raises(RecordError, match=rf"^{path}:2: record is {len(long_line) + 1:,} bytes with its newline, "
                                          rf"over the cap of {MAX_RECORD_BYTES:,} bytes per line"):
        load_records(SamplerConfig(data_root=str(root)))


def test_oversized_records_are_skipped_under_skip_and_the_rest_read_back(root: Path, caplog) -> None:
    huge = _rec(1, response="y" * (3 * MAX_RECORD_BYTES))
    _write(root, [_rec(0), huge, _rec(1, "z" * (MAX_PROMPT_CHARS + 5)), _rec(2)])
    with caplog.at_level(logging.WARNING):
        index = load_records(SamplerConfig(data_root=str(root), on_bad_record="skip"))
    ferry = index.domains["ferry"]
    assert index.skipped == {"ferry": 2} and ferry.line_index.tolist() == [0, 3]
    assert [ferry.record(i)["prompt"] for i in range(2)] == ["ferry task 0", "ferry task 2"]  # offsets stay right
    assert "skipped 2 bad records ({'record': 1, 'prompt': 1})" in caplog.text
    ferry.close()


def test_a_record_just_under_both_caps_loads(root: Path) -> None:
    prompt = "p" * MAX_PROMPT_CHARS
    line = _rec(0, prompt)
    line = line[:-1] + ', "pad": "' + "q" * (MAX_RECORD_BYTES - len(line) - 11) + '"}'
    assert len(line.encode()) == MAX_RECORD_BYTES
    _write(root, [line])
    index = load_records(SamplerConfig(data_root=str(root)))
    assert index.domains["ferry"].record(0)["prompt"] == prompt
    index.domains["ferry"].close()
