"""Evaluation maths: Wilson intervals, success per domain and bucket, pass@k, label mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from learner.eval.core import evaluate, format_table, load_test_samples, summarize, wilson_interval
from reward_service.contracts import Completion, Score
from reward_service.result import Label


def test_wilson_interval_contains_the_rate_and_stays_in_bounds() -> None:
    for successes, n in [(0, 10), (10, 10), (3, 7), (50, 100)]:
        lo, hi = wilson_interval(successes, n)
        assert 0.0 <= lo <= successes / n <= hi <= 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    narrow, wide = wilson_interval(50, 100), wilson_interval(5, 10)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def _score(label: Label, length: int = 3) -> Score:
    return Score(reward=1.0 if label is Label.SUCCESS else -1.0, label=label, plan_length=length)


def test_summarize_counts_per_domain_bucket_and_pass_at_k() -> None:
    samples = [
        {"sample_id": "a", "domain": "ferry", "bucket": "easy", "meta": {"reference_plan_length": 3}},
        {"sample_id": "b", "domain": "ferry", "bucket": "hard", "meta": {}},
        {"sample_id": "c", "domain": "spanner", "bucket": "easy", "meta": {}},
    ]
    scores = [_score(Label.SUCCESS), _score(Label.PRECONDITION_VIOLATION),  # a: 1 of 2
              _score(Label.GOAL_NOT_SATISFIED), _score(Label.GOAL_NOT_SATISFIED),  # b: 0 of 2
              _score(Label.SUCCESS, 5), _score(Label.SUCCESS, 5)]  # c: 2 of 2
    report = summarize(samples, [Completion("x", "")] * 6, scores, k=2)
    ferry = report["domains"]["ferry"]
    assert (ferry["n"], ferry["success_rate"], ferry["pass_at_k"]) == (4, 0.25, 0.5)
    assert ferry["labels"] == {"goal_not_satisfied": 2, "precondition_violation": 1, "success_plans": 1}
    assert report["domains"]["spanner"]["mean_plan_length"] == 5
    assert sum(b["n"] for b in report["buckets"].values()) == report["overall"]["n"] == 6
    assert report["overall"]["success_rate"] == pytest.approx(0.5)
    lo, hi = ferry["ci95"]
    assert lo <= 0.25 <= hi
    assert "ferry" in format_table(report, report) and "overall" in format_table(None, report)


def test_evaluate_repeats_each_problem_k_times(tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    rows = [{"prompt": f"p{i}", "meta": {"problem_file": "x", "domain_file": "y"}} for i in range(3)]
    (tmp_path / "test" / "ferry.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = load_test_samples(tmp_path)
    assert [s["sample_id"] for s in samples] == ["test:ferry:0", "test:ferry:1", "test:ferry:2"]
    calls = {}

    def generate(prompts, ids, k):
        calls["k"] = k
        return [Completion(i, "") for i in ids for _ in range(k)]

    def score(completions, repeated):
        assert [s["sample_id"] for s in repeated] == [c.sample_id for c in completions]
        return [_score(Label.SUCCESS if c.sample_id.endswith("0") else Label.EMPTY_PLAN) for c in completions]

    report = evaluate(generate, score, samples, k=3)
    assert calls["k"] == 3 and report["overall"]["n"] == 9
    assert report["overall"]["pass_at_k"] == pytest.approx(1 / 3)


def test_missing_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no 'test' split"):
        load_test_samples(tmp_path)
