"""Issue 13's example, end to end: `always (not (carried parcel2 ?v))` broken by step 3 of a 9-step plan.

The seed's reward reads the time of the last "Checking next happening (time N)" before VAL gives up: VAL
checks state 3, finds the violation, still runs step 4, then stops, so failed_step = 4 (not the state index
3) and the reward is -0.9 + 0.3 * 4/9 with the default denominator, VAL's "Plan size".
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from reward_service.config import RewardConfig
from reward_service.contracts import Completion
from reward_service.result import Label
from reward_service.scoring import RewardScorer
from reward_service.val import find_validate_binary

DOMAIN = """
(define (domain parcels)
  (:requirements :strips :typing :constraints)
  (:types location vehicle parcel)
  (:predicates (road ?a - location ?b - location) (at-v ?v - vehicle ?l - location)
               (at-p ?p - parcel ?l - location) (carried ?p - parcel ?v - vehicle))
  (:action drive :parameters (?v - vehicle ?from - location ?to - location)
    :precondition (and (at-v ?v ?from) (road ?from ?to))
    :effect (and (not (at-v ?v ?from)) (at-v ?v ?to)))
  (:action load :parameters (?p - parcel ?v - vehicle ?l - location)
    :precondition (and (at-p ?p ?l) (at-v ?v ?l))
    :effect (and (not (at-p ?p ?l)) (carried ?p ?v)))
  (:action unload :parameters (?p - parcel ?v - vehicle ?l - location)
    :precondition (and (carried ?p ?v) (at-v ?v ?l))
    :effect (and (not (carried ?p ?v)) (at-p ?p ?l))))
"""
PROBLEM = """
(define (problem parcels-1)
  (:domain parcels)
  (:objects l1 l2 l3 - location van1 - vehicle parcel1 parcel2 - parcel)
  (:init (road l1 l2) (road l2 l1) (road l2 l3) (road l3 l2) (road l3 l1) (road l1 l3)
         (at-v van1 l1) (at-p parcel1 l1) (at-p parcel2 l2))
  (:goal (and (at-p parcel1 l3) (at-p parcel2 l3)))
  (:constraints (forall (?v - vehicle) (always (not (carried parcel2 ?v))))))
"""
PLAN = """(load parcel1 van1 l1)
(drive van1 l1 l2)
(load parcel2 van1 l2)
(drive van1 l2 l3)
(unload parcel1 van1 l3)
(unload parcel2 van1 l3)
(drive van1 l3 l2)
(drive van1 l2 l3)
(drive van1 l3 l1)
"""


def _has_val() -> bool:
    try:
        find_validate_binary()
    except FileNotFoundError:
        return False
    return True


VALIDATORS = ["native", pytest.param("val", marks=pytest.mark.skipif(not _has_val(), reason="no VAL binary"))]


@pytest.fixture()
def data_root(tmp_path: Path) -> Path:
    (tmp_path / "domain.pddl").write_text(DOMAIN)
    (tmp_path / "p01.pddl").write_text(PROBLEM)
    return tmp_path


def _score(data_root: Path, validator: str, **config):
    scorer = RewardScorer(RewardConfig(validator=validator, **config), data_root)
    sample = {"sample_id": "parcels:1", "domain": "parcels",
              "meta": {"domain_file": "domain.pddl", "problem_file": "p01.pddl", "reference_plan_length": 6}}
    (score,) = scorer.score([Completion("parcels:1", PLAN)], [sample])
    return score


@pytest.mark.parametrize("validator", VALIDATORS)
def test_always_broken_by_step_3_of_9_fails_at_step_4(data_root: Path, validator: str) -> None:
    score = _score(data_root, validator)
    assert score.label is Label.SAFETY_CONSTRAINTS_VIOLATION
    assert (score.plan_length, score.failed_step, score.violation_state_index) == (9, 4, 3)
    assert score.reward == pytest.approx(-0.9 + 0.3 * 4 / 9)
    assert score.reference_length is None  # plan_size: the gold length in meta is not read
    assert "carried parcel2" in score.violated_constraint.lower()


@pytest.mark.parametrize("validator", VALIDATORS)
def test_reference_length_denominator_is_the_option(data_root: Path, validator: str) -> None:
    score = _score(data_root, validator, progress_denominator="reference_length")
    assert (score.failed_step, score.reference_length) == (4, 6)
    assert score.reward == pytest.approx(-0.9 + 0.3 * 4 / 6)


@pytest.mark.skipif(not _has_val(), reason="no VAL binary")
def test_vals_own_text_gives_4(data_root: Path) -> None:
    """The number read straight off `Validate -v`: the last happening before "Plan failed to execute"."""
    (data_root / "plan.txt").write_text(PLAN)
    out = subprocess.run([str(find_validate_binary()), "-v", "domain.pddl", "p01.pddl", "plan.txt"], cwd=data_root,
                         capture_output=True, text=True, timeout=30, check=False).stdout
    before = out.split("Plan failed to execute", 1)[0]
    assert "Plan size: 9" in out
    assert re.findall(r"^Checking next happening \(time (\d+)\)", before, re.M)[-1] == "4"
    assert re.findall(r"^Checking trajectory constraints at (\d+)", before, re.M)[-1] == "3"
