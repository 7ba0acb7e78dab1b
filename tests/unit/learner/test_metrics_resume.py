"""metrics.jsonl across a crash and a resume (issue 19 item 4): a torn last line never fatal, no step twice."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from learner.driver.step_metrics import MetricsWriter, read_metrics, truncate_metrics


def _write(run_dir: Path, steps: range) -> None:
    writer = MetricsWriter(run_dir)
    for step in steps:
        writer.write({"step": step, "reward/mean": 0.5 * step, "learner/kl": float("nan")})


def test_a_torn_last_line_is_dropped_with_a_warning_naming_file_and_line(tmp_path: Path, caplog) -> None:
    _write(tmp_path, range(3))
    with (tmp_path / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 3, "reward/me')  # a crash mid-write
    with caplog.at_level(logging.WARNING):
        records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [0, 1, 2]
    assert f"{tmp_path / 'metrics.jsonl'}:4: dropped (the last line, cut by a crash mid-write?" in caplog.text


def test_resume_truncates_the_steps_after_the_checkpoint_and_the_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    _write(tmp_path, range(5))
    with path.open("a") as fh:
        fh.write('{"step": 5, "rew')
    kept = path.read_text().splitlines()[:2]
    assert truncate_metrics(path, start_step=2) == 4  # steps 2, 3, 4 and the torn line
    assert path.read_text().splitlines() == kept  # copied as written (NaN included), not re-serialised
    _write(tmp_path, range(2, 4))
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2, 3]
    assert not list(tmp_path.glob(".metrics.jsonl.tmp"))


def test_a_bad_middle_line_and_a_non_object_are_dropped_not_fatal(tmp_path: Path, caplog) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0}\nnot json\n[1, 2]\n{"step": 1}\n')
    with caplog.at_level(logging.WARNING):
        assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1]
    assert ":2: dropped (not JSON" in caplog.text and ":3: dropped (a list, not a JSON object)" in caplog.text
    assert truncate_metrics(path, 5) == 2 and [json.loads(x)["step"] for x in path.read_text().splitlines()] == [0, 1]
