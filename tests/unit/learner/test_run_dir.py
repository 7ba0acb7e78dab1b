"""Run directories never overwrite a run; logging goes to console and run.log in one format."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from learner.driver.run_dir import RunDirError, create_run_dir, setup_logging


def test_run_dirs_are_unique(tmp_path: Path) -> None:
    a = create_run_dir(tmp_path, "exp")
    b = create_run_dir(tmp_path, "exp")
    assert a != b and a.name.startswith("exp-") and b.name.startswith("exp-")
    assert (a / "checkpoints").is_dir() and (a / "samples").is_dir()


def test_output_dir_holding_a_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    create_run_dir(tmp_path, "x", output_dir=out)
    (out / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(RunDirError, match="already holds a run"):
        create_run_dir(tmp_path, "x", output_dir=out)


def test_logging_writes_run_log_once(tmp_path: Path) -> None:
    setup_logging(tmp_path)
    setup_logging(tmp_path)  # a second setup must not duplicate lines
    logging.getLogger("pddl_grpo.test").info("hello run log")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = [line for line in (tmp_path / "run.log").read_text().splitlines() if "hello run log" in line]
    assert len(lines) == 1 and " INFO pddl_grpo.test: " in lines[0]
    setup_logging(None)
