"""reward_debug.log across a crash and a resume (issue 19 item 4): torn lines dropped, no step logged twice."""

from __future__ import annotations

import logging
from pathlib import Path

from reward_service.contracts import Score
from reward_service.debug_log import RewardDebugLog, truncate_debug_log
from reward_service.result import Label


def _score(sid: str, reward: float) -> Score:
    return Score(reward=reward, label=Label.GOAL_NOT_SATISFIED, sample_id=sid, domain=sid.split(":")[0])


def _steps(path: Path) -> list[int]:
    return [int(line.split("\t", 1)[0].removeprefix("step=")) for line in path.read_text().splitlines()
            if "\tSUMMARY\t" in line]


def _log_steps(path: Path, steps: range) -> None:
    with RewardDebugLog(path) as debug:
        for step in steps:
            debug.write_step(step, [_score("a:1", -0.3), _score("a:1", 0.0)])


def test_resume_drops_the_lines_of_steps_after_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "reward_debug.log"
    _log_steps(path, range(5))  # a run that checkpointed step 1, logged steps 2-4, then crashed
    before = path.read_text().splitlines()
    assert truncate_debug_log(path, start_step=2) == 9  # 3 steps x (2 lines + SUMMARY)
    assert path.read_text().splitlines() == before[:6]  # the kept lines exactly as they were
    _log_steps(path, range(2, 5))  # the resumed run logs steps 2-4 again
    assert _steps(path) == [0, 1, 2, 3, 4]


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "reward_debug.log"
    _log_steps(path, range(2))
    with path.open("a") as fh:
        fh.write("step=2\tsample_id=a:1\tdomain=a\tlabel=succ")  # a crash mid-write: no newline
    with caplog.at_level(logging.WARNING):
        assert truncate_debug_log(path, start_step=2) == 1
    assert f"{path}:7: dropped (the last line has no newline" in caplog.text
    assert path.read_text().endswith("\n") and _steps(path) == [0, 1]


def test_a_torn_last_line_does_not_swallow_the_next_line_without_a_resume(tmp_path: Path) -> None:
    path = tmp_path / "reward_debug.log"
    _log_steps(path, range(1))
    with path.open("a") as fh:
        fh.write("step=1\tsample_id=a:1\tdom")
    _log_steps(path, range(1, 2))  # e.g. trl_reward appending to the file of an earlier process
    lines = path.read_text().splitlines()
    assert lines[3] == "step=1\tsample_id=a:1\tdom" and lines[4].startswith("step=1\tsample_id=a:1\tdomain=a\t")
    assert _steps(path) == [0, 1]


def test_truncating_a_missing_log_is_a_no_op(tmp_path: Path) -> None:
    assert truncate_debug_log(tmp_path / "reward_debug.log", 3) == 0
    assert not (tmp_path / "reward_debug.log").exists()
