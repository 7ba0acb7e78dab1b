"""Tests of `python -m reward_service.validate`: text and JSON output, exit codes, bad PDDL and plan files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reward_service.validate import main
from reward_service.validators import make_validator

ROOT = Path(__file__).resolve().parents[3]
DOMAIN = """
(define (domain bw)
  (:requirements :strips :typing)
  (:types block)
  (:predicates (on ?x - block ?y - block) (ontable ?x - block) (clear ?x - block) (handempty)
               (holding ?x - block))
  (:action pick-up :parameters (?x - block)
    :precondition (and (clear ?x) (ontable ?x) (handempty))
    :effect (and (not (ontable ?x)) (not (clear ?x)) (not (handempty)) (holding ?x)))
  (:action stack :parameters (?x - block ?y - block)
    :precondition (and (holding ?x) (clear ?y))
    :effect (and (not (holding ?x)) (not (clear ?y)) (clear ?x) (handempty) (on ?x ?y))))
"""
PROBLEM = """
(define (problem bw3) (:domain bw)
  (:objects a b c - block)
  (:init (ontable a) (ontable b) (ontable c) (clear a) (clear b) (clear c) (handempty))
  (:goal (and (on a b) (on b c))))
"""
PLANS = {
    "good.plan": "0: (PICK-UP B) [1]\n1: (stack b c) [1]\n; comment\n2: (pick-up a) [1]\n3: (stack a b) [1]\n",
    "short.plan": "(pick-up b)\n(stack b c)\n",
    "pre.plan": "(pick-up b)\n(pick-up a)\n",
    "junk.plan": "(pick-up b)\nthis is junk\n(stack b c)\n",
    "arity.plan": "(pick-up b c)\n",
}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, text in {"domain.pddl": DOMAIN, "problem.pddl": PROBLEM, **PLANS}.items():
        (tmp_path / name).write_text(text)
        out[name] = str(tmp_path / name)
    return out


def _json_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize("validator", ["val", "native"])
def test_json_output_has_one_record_per_plan(files, capsys, validator):
    names = list(PLANS)
    code = main([files["domain.pddl"], files["problem.pddl"], *(files[n] for n in names), "--json",
                 "--validator", validator])
    assert code == 1
    records = _json_lines(capsys)
    assert [r["plan"] for r in records] == [files[n] for n in names]
    assert [r["label"] for r in records] == [
        "success_plans", "goal_not_satisfied", "precondition_violation", "plan_format_error", "plan_format_error"]
    assert {r["validator"] for r in records} == {validator}
    good, short, pre, junk, arity = records
    assert (good["valid"], good["plan_length"], good["goals_satisfied"], good["goals_total"]) == (True, 4, 2, 2)
    assert (short["goals_satisfied"], short["goals_total"], short["failed_step"]) == (1, 2, None)
    assert (pre["failed_step"], pre["valid"]) == (2, False)
    assert f"{files['junk.plan']}:2:" in junk["messages"][0]
    assert "takes 1 argument(s), got 2" in arity["messages"][0]
    required = {"plan", "label", "valid", "plan_length", "failed_step", "goals_satisfied", "goals_total",
                "violated_constraint", "validator"}
    assert all(required <= set(r) for r in records)


def test_exit_zero_when_every_plan_is_valid_and_text_reads_like_val(files, capsys):
    assert main([files["domain.pddl"], files["problem.pddl"], files["good.plan"]]) == 0
    out = capsys.readouterr().out
    assert f"Checking plan: {files['good.plan']}\nPlan size: 4\nPlan valid\n" in out
    assert f"Successful plans: {files['good.plan']}\n" in out


def test_text_output_of_a_failed_plan(files, capsys):
    assert main([files["domain.pddl"], files["problem.pddl"], files["pre.plan"]]) == 1
    out = capsys.readouterr().out
    assert "Plan invalid: precondition_violation at step 2" in out
    assert "Unsatisfied precondition: (handempty)" in out
    assert f"Failed plans: {files['pre.plan']}\n" in out


def test_pddl_that_does_not_parse_exits_2_naming_file_and_line(files, tmp_path, capsys):
    broken = tmp_path / "broken.pddl"
    broken.write_text(PROBLEM.replace("(handempty))", "(handempty)"))
    assert main([files["domain.pddl"], str(broken), files["good.plan"]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {broken}:")


def test_missing_file_and_bad_option_are_usage_errors(files, capsys):
    assert main([files["domain.pddl"], files["problem.pddl"], "nope.plan"]) == 2
    assert "nope.plan: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([files["domain.pddl"], files["problem.pddl"], files["good.plan"], "--validator", "other"])
    assert info.value.code == 2


def test_module_runs_as_a_command(files):
    proc = subprocess.run(
        [sys.executable, "-m", "reward_service.validate", files["domain.pddl"], files["problem.pddl"],
         files["short.plan"], "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["label"] == "goal_not_satisfied"


def test_make_validator_names():
    assert make_validator("val").name == "val"
    assert make_validator("native").name == "native"
    with pytest.raises(ValueError, match="unknown validator 'vall'"):
        make_validator("vall")
