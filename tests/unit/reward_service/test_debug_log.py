"""reward_debug.log lines and the per-step summary that flags groups whose rewards are all equal."""

from __future__ import annotations

from pathlib import Path

import pytest

from reward_service.contracts import Score
from reward_service.debug_log import RewardDebugLog, format_score_line, summarize_step
from reward_service.result import Label


def score(sid: str, reward: float | None, label: Label = Label.GOAL_NOT_SATISFIED, **kw) -> Score:
    return Score(reward=reward, label=label, sample_id=sid, domain=sid.split(":")[0], **kw)


def test_line_has_the_fields_and_a_truncated_plan() -> None:
    s = score("ferry:3", -0.45, Label.PRECONDITION_VIOLATION, failed_step=2, plan="(board c0 l0)\n" * 30)
    line = format_score_line(7, s, plan_chars=40)
    fields = dict(f.split("=", 1) for f in line.split("\t"))
    assert fields["step"] == "7" and fields["sample_id"] == "ferry:3" and fields["domain"] == "ferry"
    assert fields["label"] == "precondition_violation" and fields["reward"] == "-0.4500"
    assert fields["failed_step"] == "2"
    assert len(fields["plan"]) == 40 and fields["plan"].startswith("(board c0 l0) | (board c0 l0)")
    assert fields["plan"].endswith("...")


def test_none_reward_and_dropped_text_are_shown() -> None:
    s = score("a:1", None, Label.VALIDATOR_ERROR, error="timeout: ran over 10 s", dropped_lines=2, trailing_text="ok")
    line = format_score_line(1, s)
    assert "reward=None" in line and "error=timeout: ran over 10 s" in line
    assert "dropped_lines=2" in line and "after=ok" in line


def test_summary_flags_groups_with_equal_rewards_only() -> None:
    scores = [
        score("a:1", -1.0, Label.PLAN_FORMAT_ERROR),
        score("a:1", -1.0, Label.EMPTY_PLAN),  # same reward, different labels: still zero std
        score("b:1", -0.3),
        score("b:1", 1.0, Label.SUCCESS),
        score("c:1", 0.0),
        score("c:1", None, Label.VALIDATOR_ERROR),  # one numeric reward left: not a group to judge
        score("d:1", 1.0, Label.SUCCESS),
        score("d:1", 1.0, Label.SUCCESS),
        score("d:1", None, Label.VALIDATOR_ERROR),
    ]
    summary = summarize_step(4, scores)
    assert summary.zero_std_groups == ("a:1", "d:1")
    assert summary.groups == 3 and summary.zero_std_fraction == 2 / 3
    assert summary.scored == 7 and summary.completions == 9
    assert summary.mean_reward == pytest.approx((-1 - 1 - 0.3 + 1 + 0 + 1 + 1) / 7)
    assert dict(summary.label_counts)["validator_error"] == 2
    assert "WARNING reward std = 0 in 2/3 groups: a:1, d:1" in summary.line()


def test_summary_without_equal_groups_has_no_warning() -> None:
    summary = summarize_step(0, [score("a:1", -0.3), score("a:1", 0.0)])
    assert summary.zero_std_groups == () and "WARNING" not in summary.line()


def test_writer_appends_lines_then_summary(tmp_path: Path) -> None:
    path = tmp_path / "run" / "reward_debug.log"
    with RewardDebugLog(path) as debug:
        debug.write_step(1, [score("a:1", -1.0), score("a:1", -1.0)])
        debug.write_step(2, [score("a:1", 1.0, Label.SUCCESS)])
    lines = path.read_text().splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("step=1\tsample_id=a:1") and "\tSUMMARY\t" in lines[2]
    assert "zero_std_groups=1" in lines[2] and "zero_std_groups=0" in lines[4]


def test_console_warns_only_when_half_the_groups_have_no_signal(tmp_path: Path, caplog) -> None:
    caplog.set_level("DEBUG", logger="reward_service.debug_log")
    minority = [score("a:1", -1.0), score("a:1", -1.0), score("b:1", 0.0), score("b:1", 1.0, Label.SUCCESS),
                score("c:1", 0.0), score("c:1", -0.3)]
    majority = [score("a:1", -1.0), score("a:1", -1.0), score("b:1", 0.5), score("b:1", 0.5)]
    with RewardDebugLog(tmp_path / "reward_debug.log") as debug:
        debug.write_step(0, minority)
        debug.write_step(1, majority)
    levels = {r.getMessage().split(":")[0]: r.levelname for r in caplog.records if "reward std = 0" in r.getMessage()}
    assert levels == {"step 0": "DEBUG", "step 1": "WARNING"}
