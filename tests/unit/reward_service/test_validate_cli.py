"""Tests of `python -m reward_service.validate`: text and JSON output, exit codes, bad PDDL and plan files, and the
scoring flags (reward, --progress-denominator, --reference-length, --from-completion) on the fixture PDDL with both
validators."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reward_service.val import ENV_BINARY
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


# ---- scoring: reward, --reference-length, --from-completion on tests/fixtures/pddl -------------------------------

FIXTURES = ROOT / "tests" / "fixtures" / "pddl"
BW = FIXTURES / "blocksworld"
BW_ARGS = [str(BW / "domain.pddl"), str(BW / "p01.pddl")]
VALIDATORS = ["val", "native"]


def _run_json(capsys, *argv: str) -> tuple[int, list[dict]]:
    code = main([*argv, "--json"])
    return code, _json_lines(capsys)


@pytest.mark.parametrize("validator", VALIDATORS)
def test_json_reward_follows_the_table_with_the_plans_own_length(capsys, validator):
    names = ["valid", "precond", "safety-amo", "safety", "goal", "empty", "format-action"]
    code, records = _run_json(capsys, *BW_ARGS, *(str(BW / f"p01.{n}.plan") for n in names), "--validator", validator)
    assert code == 1
    by = dict(zip(names, records, strict=True))
    assert all(r["reference_length"] is None for r in records)  # no .soln beside the fixture problem
    assert by["valid"]["reward"] == 1.0
    assert by["precond"]["failed_step"] == 2 and by["precond"]["reward"] == pytest.approx(-0.6 + 0.3 * 2 / 2)
    amo = by["safety-amo"]  # state 3 breaks at-most-once, VAL then runs step 4: the seed's step is 4
    assert (amo["failed_step"], amo["violation_state_index"]) == (4, 3)
    assert amo["reward"] == pytest.approx(-0.9 + 0.3 * 4 / 6)
    assert (by["safety"]["failed_step"], by["safety"]["violation_state_index"]) == (2, 1)
    assert by["safety"]["reward"] == pytest.approx(-0.9 + 0.3 * 2 / 8)
    assert by["precond"]["violation_state_index"] is None
    goal = by["goal"]
    assert goal["reward"] == pytest.approx(-0.3 + 0.3 * goal["goals_satisfied"] / goal["goals_total"])
    assert by["empty"]["reward"] == by["format-action"]["reward"] == -1.0


@pytest.mark.parametrize("validator", VALIDATORS)
def test_reference_length_flag_overrides_the_plans_length(capsys, validator):
    plans = [str(BW / "p01.precond.plan"), str(BW / "p01.safety-amo.plan")]
    _, records = _run_json(capsys, *BW_ARGS, *plans, "--validator", validator, "--reference-length", "4")
    assert [r["reference_length"] for r in records] == [4, 4]
    assert records[0]["reward"] == pytest.approx(-0.6 + 0.3 * 2 / 4)
    assert records[1]["reward"] == pytest.approx(-0.9 + 0.3 * 4 / 4)
    _, [capped] = _run_json(capsys, *BW_ARGS, plans[1], "--validator", validator, "--reference-length", "1")
    assert capped["reward"] == pytest.approx(-0.9 + 0.3)  # p = min(1, 4 / 1)


def test_reference_length_with_plan_size_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([*BW_ARGS, str(BW / "p01.valid.plan"), "--reference-length", "4", "--progress-denominator", "plan_size"])
    assert info.value.code == 2
    assert "--reference-length needs --progress-denominator reference_length" in capsys.readouterr().err


@pytest.fixture
def bw_copy(tmp_path: Path) -> Path:
    """The blocksworld fixture in a fresh folder, so a test can put a .soln beside its problem."""
    for name in ("domain.pddl", "p01.pddl", "p01.precond.plan", "p01.valid.plan"):
        shutil.copy(BW / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("validator", VALIDATORS)
def test_soln_beside_the_problem_is_the_reference_unless_overridden(capsys, bw_copy, validator):
    (bw_copy / "p01.soln").write_text((BW / "p01.valid.plan").read_text())  # 6 actions
    args = [str(bw_copy / "domain.pddl"), str(bw_copy / "p01.pddl"), str(bw_copy / "p01.precond.plan")]
    _, [rec] = _run_json(capsys, *args, "--validator", validator)  # plan_size: the .soln is not read
    assert rec["reference_length"] is None and rec["reward"] == pytest.approx(-0.6 + 0.3 * 2 / 2)
    _, [rec] = _run_json(capsys, *args, "--validator", validator, "--progress-denominator", "reference_length")
    assert rec["reference_length"] == 6 and rec["reward"] == pytest.approx(-0.6 + 0.3 * 2 / 6)
    _, [rec] = _run_json(capsys, *args, "--validator", validator, "--reference-length", "8")
    assert rec["reference_length"] == 8 and rec["reward"] == pytest.approx(-0.6 + 0.3 * 2 / 8)


@pytest.mark.parametrize("bad", ["-1", "two"])
def test_bad_reference_length_is_a_usage_error(capsys, bad):
    with pytest.raises(SystemExit) as info:
        main([*BW_ARGS, str(BW / "p01.valid.plan"), "--reference-length", bad])
    assert info.value.code == 2
    assert "must be a non-negative integer" in capsys.readouterr().err


@pytest.mark.parametrize("domain", sorted(p.name for p in FIXTURES.iterdir() if (p / "domain.pddl").exists()))
def test_both_validators_give_equal_goal_counts_and_rewards_for_every_label(capsys, domain):
    args = [str(FIXTURES / domain / "domain.pddl"), str(FIXTURES / domain / "p01.pddl"),
            *map(str, sorted((FIXTURES / domain).glob("p01.*.plan")))]
    keys = ("label", "failed_step", "goals_satisfied", "goals_total", "reward")
    _, val = _run_json(capsys, *args, "--validator", "val")
    _, native = _run_json(capsys, *args, "--validator", "native")
    assert [{k: r[k] for k in keys} for r in native] == [{k: r[k] for k in keys} for r in val]
    assert all(r["goals_total"] > 0 for r in val)  # format errors included


@pytest.fixture
def broken_val(tmp_path: Path, monkeypatch) -> None:
    """A real executable in VAL's place that prints no verdict: every VAL call is a validator error."""
    fake = tmp_path / "Validate"
    fake.write_text("#!/bin/sh\necho 'segmentation fault, no verdict'\n")
    fake.chmod(0o755)
    monkeypatch.setenv(ENV_BINARY, str(fake))


def test_reward_is_null_when_the_validator_fails(capsys, broken_val):
    code, [rec] = _run_json(capsys, *BW_ARGS, str(BW / "p01.valid.plan"))
    assert code == 1
    assert (rec["label"], rec["reward"], rec["goals_total"]) == ("validator_error", None, 2)
    main([*BW_ARGS, str(BW / "p01.valid.plan")])
    assert "Reward: None (validator failed)" in capsys.readouterr().out


@pytest.mark.parametrize("validator", VALIDATORS)
def test_text_output_shows_the_reward(capsys, validator):
    main([*BW_ARGS, str(BW / "p01.valid.plan"), str(BW / "p01.precond.plan"), "--validator", validator,
          "--reference-length", "4"])
    out = capsys.readouterr().out
    assert "Plan valid\nReward: 1\n" in out
    assert "Plan invalid: precondition_violation at step 2\nReward: -0.45\n" in out


def _completion(plan_file: Path, tmp_path: Path, template: str) -> str:
    """A realistic model answer around the fixture plan, written to a file."""
    plan = plan_file.read_text()
    text = template.format(plan=plan if plan.endswith("\n") else plan + "\n")
    out = tmp_path / (plan_file.name + ".txt")
    out.write_text(text)
    return str(out)


QWEN = ("<|im_start|>user\nSolve it.<|im_end|>\n<|im_start|>assistant\n<think>stack c first?</think>\n"
        "Here is my plan:\n```\n{plan}```\nThis works because b is clear.<|im_end|>")
MISTRAL = "<s>[INST] Solve it. [/INST] Plan:\n{plan}</s>"


@pytest.mark.parametrize("validator", VALIDATORS)
def test_from_completion_extracts_then_scores(capsys, tmp_path, validator):
    valid = _completion(BW / "p01.valid.plan", tmp_path, QWEN)
    pre = _completion(BW / "p01.precond.plan", tmp_path, MISTRAL)
    code, (v, p) = _run_json(capsys, *BW_ARGS, valid, pre, "--from-completion", "--validator", validator)
    assert code == 1
    assert v["extracted_plan"] == (BW / "p01.valid.plan").read_text()
    assert (v["label"], v["reward"], v["validator"], v["goals_satisfied"]) == ("success_plans", 1.0, validator, 2)
    assert v["dropped"] == {"lines_before": 1, "after": "```\nThis works because b is clear.",
                            "think_chars": len("<think>stack c first?</think>")}
    assert p["extracted_plan"] == "(pick-up b)\n(stack b a)\n" and p["dropped"]["lines_before"] == 1
    assert (p["label"], p["failed_step"], p["validator"]) == ("precondition_violation", 2, validator)
    assert p["reward"] == pytest.approx(-0.6 + 0.3 * 2 / 2)
    assert p["unsatisfied_preconditions"]  # the validator's full result, not just the Score
    assert main([*BW_ARGS, valid, "--from-completion", "--validator", validator]) == 0
    out = capsys.readouterr().out
    assert "Extracted 6 action(s); dropped 1 line(s) before" in out and "Reward: 1\n" in out


@pytest.mark.parametrize("validator", VALIDATORS)
def test_from_completion_with_reference_length(capsys, tmp_path, validator):
    pre = _completion(BW / "p01.precond.plan", tmp_path, MISTRAL)
    _, [rec] = _run_json(capsys, *BW_ARGS, pre, "--from-completion", "--validator", validator,
                         "--reference-length", "4")
    assert rec["reference_length"] == 4 and rec["reward"] == pytest.approx(-0.6 + 0.3 * 2 / 4)


def test_extractor_decided_labels_need_no_validator(capsys, tmp_path, broken_val):
    """With VAL broken, extractor-decided labels still get their reward; a real plan gets None."""
    texts = {
        "noplan.txt": "<|im_start|>assistant\nNo plan exists.\n(NO-PLAN)<|im_end|>",
        "prose.txt": "I am not sure how to solve this.",
        "broken.txt": "(unstack c a)\n(put-down c\n(pick-up b)\n",
        "plan.txt": "(unstack c a)\n(put-down c)\n",
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    code, records = _run_json(capsys, *BW_ARGS, *(str(tmp_path / n) for n in texts), "--from-completion")
    assert code == 1
    noplan, prose, broken, plan = records
    for rec in (noplan, prose, broken):
        assert (rec["validator"], rec["reward"], rec["goals_satisfied"], rec["goals_total"]) == ("extract", -1.0, 0, 2)
        assert rec["extracted_plan"] == ""
    assert (noplan["label"], prose["label"], broken["label"]) == ("empty_plan", "empty_plan", "plan_format_error")
    assert noplan["messages"] == ["(NO-PLAN)"] and prose["dropped"]["lines_before"] == 1
    assert "line 2 is not a well-formed action" in broken["messages"][0]
    assert (plan["label"], plan["reward"], plan["validator"]) == ("validator_error", None, "val")
    assert plan["extracted_plan"] == "(unstack c a)\n(put-down c)\n" and plan["error"]


@pytest.mark.parametrize("validator", VALIDATORS)
def test_from_completion_format_error_from_precheck(capsys, tmp_path, validator):
    bad = tmp_path / "bad.txt"
    bad.write_text("Answer:\n(unstack c a)\n(teleport a)\n")
    _, [rec] = _run_json(capsys, *BW_ARGS, str(bad), "--from-completion", "--validator", validator)
    assert (rec["label"], rec["reward"], rec["validator"], rec["goals_total"]) == ("plan_format_error", -1.0,
                                                                                   validator, 2)
    assert "unknown action 'teleport'" in rec["messages"][0]


def test_from_completion_with_broken_pddl_exits_2(capsys, tmp_path):
    done = tmp_path / "c.txt"
    done.write_text("(pick-up b)\n")
    broken = FIXTURES / "broken" / "duplicate_object.pddl"
    assert main([str(BW / "domain.pddl"), str(broken), str(done), "--from-completion"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {broken}:5:")
