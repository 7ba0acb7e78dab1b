"""reward.validator: auto (issue 20): each task scored by the validator the pre-flight chose, or chosen on first use;
VAL scores a task the project's parser cannot read from its own output (durative actions)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from reward_service.config import RewardConfig
from reward_service.contracts import Completion
from reward_service.result import Label
from reward_service.scoring import RewardScorer
from reward_service.val import ValValidator, raw_goal_count
from reward_service.validators import choose_validator, task_key

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def root(tmp_path) -> Path:
    for src, name in (("pddl/ferry", "ferry"), ("pddl/roads-costs", "roads"), ("val_only/rovers-durative", "rovers")):
        shutil.copytree(FIXTURES / src, tmp_path / name)
    return tmp_path


def _sample(name: str) -> dict:
    return {"sample_id": f"{name}:1", "domain": name,
            "meta": {"domain_file": f"{name}/domain.pddl", "problem_file": f"{name}/p01.pddl"}}


def _plans(root: Path, name: str, *tags: str) -> list[Completion]:
    return [Completion(f"{name}:1", (root / name / f"p01.{t}.plan").read_text()) for t in tags]


def test_choose_validator_names_the_requirement(root):
    assert choose_validator(root / "roads/domain.pddl", root / "roads/p01.pddl").validator == "native"
    rovers = choose_validator(root / "rovers/domain.pddl", root / "rovers/p01.pddl")
    assert (rovers.validator, rovers.requirement) == ("val", ":durative-actions")
    assert rovers.reason.startswith(f"{root}/rovers/domain.pddl:3: ")


def test_auto_scores_each_task_with_its_validator_decided_on_first_use(root, caplog):
    caplog.set_level(logging.INFO, "reward_service.scoring")
    scorer = RewardScorer(RewardConfig(validator="auto"), root)
    samples = [_sample(n) for n in ("ferry", "roads", "rovers")]
    completions = (_plans(root, "ferry", "valid", "goal") + _plans(root, "roads", "valid", "precond")
                   + _plans(root, "rovers", "valid", "goal", "precond"))
    scores = scorer.score(completions, samples)
    assert [s.validator for s in scores] == ["native"] * 4 + ["val"] * 3
    assert [s.label for s in scores[4:]] == [Label.SUCCESS, Label.GOAL_NOT_SATISFIED, Label.PRECONDITION_VIOLATION]
    scorer.score(completions, samples)  # decided once per task: no second log line
    decided = [r.getMessage() for r in caplog.records if "not decided at pre-flight" in r.getMessage()]
    assert len(decided) == 3 and any("validator val" in m and ":durative-actions" in m for m in decided)


def test_auto_follows_the_pre_flight_map(root):
    # the map says VAL for roads (e.g. a pre-flight that found a problem-level feature): the workers follow it
    key = task_key("roads/domain.pddl", "roads/p01.pddl", root)
    scorer = RewardScorer(RewardConfig(validator="auto", task_validators={key: "val"}), root)
    (score,) = scorer.score(_plans(root, "roads", "valid"), [_sample("roads")])
    assert (score.validator, score.label) == ("val", Label.SUCCESS)


def test_cross_check_skips_tasks_only_val_can_judge(root):
    scorer = RewardScorer(RewardConfig(validator="auto", cross_check_fraction=1.0), root)
    scorer.score(_plans(root, "roads", "valid", "goal", "precond") + _plans(root, "rovers", "valid", "goal"),
                 [_sample("roads"), _sample("rovers")])
    assert scorer.stats.cross_checked == 3 and scorer.stats.disagreements == 0


def test_val_scores_a_durative_task_without_the_parser(root):
    val = ValValidator()
    d, p = root / "rovers/domain.pddl", root / "rovers/p01.pddl"
    from reward_service.extract import PlanExtractor

    plans = {t: PlanExtractor().extract((root / "rovers" / f"p01.{t}.plan").read_text()).plan
             for t in ("valid", "goal", "precond", "format-action")}
    batch = dict(zip(plans, val.validate_many(d, p, list(plans.values())), strict=True))
    for tag, plan in plans.items():  # one call per plan agrees with the batched call
        assert val.validate(d, p, plan).label is batch[tag].label
    assert (batch["valid"].label, batch["valid"].goals_satisfied, batch["valid"].goals_total) == (Label.SUCCESS, 3, 3)
    assert batch["valid"].metric_value == 4.0  # no :metric: VAL's "Final value" is the plan length
    goal = batch["goal"]  # VAL's advice: (sampled w3) and (at r1 w3) unsatisfied, of 3 goal conjuncts
    assert (goal.label, goal.goals_satisfied, goal.goals_total) == (Label.GOAL_NOT_SATISFIED, 1, 3)
    assert (batch["precond"].label, batch["precond"].failed_step) == (Label.PRECONDITION_VIOLATION, 2)
    assert batch["format-action"].label is Label.PLAN_FORMAT_ERROR  # VAL: "Bad plan description!"


def test_raw_goal_count_flattens_and_counts_quantified_goals_once():
    text = "(define (problem x) (:domain d) (:goal (and (a) (and (b) (c)) (forall (?x) (p ?x)) (or (d) (e)))))"
    assert raw_goal_count(text) == 5
    assert raw_goal_count("(define (problem x) (:domain d) (:goal (a)))") == 1
    assert raw_goal_count("(define (problem x") == 0
