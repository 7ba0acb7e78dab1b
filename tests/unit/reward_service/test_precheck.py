"""precheck: the reason a plan is a format error (action, arity both ways, object, type), bounded in size."""

from __future__ import annotations

from pathlib import Path

import pytest

from reward_service.pddl import load_domain, load_problem
from reward_service.precheck import precheck
from reward_service.result import Plan, PlanStep

FIXTURES = Path(__file__).parents[2] / "fixtures" / "pddl"


@pytest.fixture(scope="module")
def grippers():
    domain = load_domain(FIXTURES / "grippers" / "domain.pddl")
    return domain, load_problem(FIXTURES / "grippers" / "p01.pddl", domain)


def plan(*steps: str) -> Plan:
    return Plan(tuple(PlanStep(s.split()[0], tuple(s.split()[1:])) for s in steps))


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        (["move robot1 rooma roomb"], None),
        (["MOVE Robot1 ROOMA roomb"], None),
        ([], None),
        (["move robot1 rooma roomb", "fly robot1"], "step 2: unknown action 'fly'"),
        (["move robot1 rooma roomb rooma"], "step 1: action 'move' takes 3 argument(s), got 4: "
                                           "(move robot1 rooma roomb rooma)"),
        (["move robot1 rooma"], "step 1: action 'move' takes 3 argument(s), got 2: (move robot1 rooma)"),
        (["move robot1 rooma roomc"], "step 1: unknown object 'roomc' in (move robot1 rooma roomc)"),
        (["pick robot1 rooma ball1 left"],
         "step 1: object 'rooma' of type 'room' does not fit parameter ?obj - ball of 'pick'"),
    ],
)
def test_precheck_reasons(grippers, steps, reason):
    assert precheck(*grippers, plan(*steps)) == reason


def test_subtypes_and_constants_are_accepted():
    domain = load_domain(FIXTURES / "delivery" / "domain.pddl")
    problem = load_problem(FIXTURES / "delivery" / "p01.pddl", domain)
    assert precheck(domain, problem, plan("move t1 c01 depot")) is None  # depot is a domain constant
    assert "does not fit parameter ?t - truck" in precheck(domain, problem, plan("move p1 c00 c01"))


def test_reason_quotes_are_bounded(grippers):
    reason = precheck(*grippers, Plan((PlanStep("x" * 10_000_000, ()),)))
    assert reason.startswith("step 1: unknown action 'xxx") and len(reason) < 120
