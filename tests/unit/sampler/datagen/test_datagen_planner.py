"""Reference planner: shortest plans, PDDL3 monitors with VAL's semantics, unsolvability, best-effort fallback."""

from __future__ import annotations

from dataclasses import replace

from reward_service.pddl.model import Atom, ConstraintForall, Modal, Param, Problem
from reward_service.pddl.printer import problem_to_pddl
from sampler.datagen.build_one import domain_text
from sampler.datagen.domains.base import problem
from sampler.datagen.domains.blocksworld import DOMAIN as BW
from sampler.datagen.domains.ferry import DOMAIN as FERRY
from sampler.datagen.domains.ferry import Ferry
from sampler.datagen.generate import make_problem
from sampler.datagen.planner import plan
from sampler.datagen.valcheck import check_gold_plan

BLOCKS = (("a", None), ("b", None), ("c", None))
TOWER = (("on", "a", "b"), ("ontable", "b"), ("clear", "a"), ("ontable", "c"), ("clear", "c"), ("handempty",))


def _bw(goal, constraints=()) -> Problem:
    return problem(BW, BLOCKS, TOWER, goal, tuple(constraints), name="t")


def _sometime_before(phi: tuple[str, ...], psi: tuple[str, ...]) -> Modal:
    return Modal("sometime-before", Atom(phi[0], phi[1:]), Atom(psi[0], psi[1:]))


def test_shortest_plan_swap():
    result = plan(BW, _bw((("on", "b", "a"),)))
    assert result.optimal
    assert result.plan == ("(unstack a b)", "(put-down a)", "(pick-up b)", "(stack b a)")


def test_sometime_before_changes_the_plan_and_val_agrees():
    # b may be held only after c was held: the plan must touch c first
    cons = (_sometime_before(("holding", "b"), ("holding", "c")),)
    free = plan(BW, _bw((("on", "b", "a"),)))
    bound = plan(BW, _bw((("on", "b", "a"),), cons))
    assert bound.optimal and len(bound.plan) == len(free.plan) + 2
    assert bound.plan.index("(pick-up c)") < bound.plan.index("(pick-up b)")
    task = _bw((("on", "b", "a"),), cons)
    check_gold_plan(domain_text("blocksworld", "full"), problem_to_pddl(task), bound.plan, where="bw")


def test_sometime_before_is_strict_like_val():
    # psi and phi first hold in the same state: VAL rejects that, so no plan may rely on it
    cons = (_sometime_before(("holding", "a"), ("clear", "b")),)
    result = plan(BW, _bw((("on", "b", "a"),), cons))
    assert result.plan is None and result.proven_unsolvable


def test_phi_true_initially_is_unsolvable():
    cons = (_sometime_before(("ontable", "c"), ("holding", "a")),)
    assert plan(BW, _bw((("on", "b", "a"),), cons)).proven_unsolvable


def test_at_most_once_under_forall():
    # every block may be held during one interval at most
    cons = (ConstraintForall((Param("?x"),), Modal("at-most-once", Atom("holding", ("?x",)))),)
    # a on b on c needs a lifted twice (off b, then onto b): impossible under the constraint
    assert plan(BW, _bw((("on", "b", "c"), ("on", "a", "b")), cons)).proven_unsolvable
    goal = (("on", "c", "a"), ("on", "b", "c"))
    result = plan(BW, _bw(goal, cons))
    assert result.optimal
    lifts = [s.split()[1].rstrip(")") for s in result.plan if s.startswith(("(pick-up", "(unstack"))]
    assert sorted(lifts) == sorted(set(lifts))
    check_gold_plan(domain_text("blocksworld", "full"), problem_to_pddl(_bw(goal, cons)), result.plan, where="bw")


def test_node_limit_gives_a_flagged_best_effort_plan():
    gp = make_problem("ferry", {"l": 4, "c": 4}, 3, "off")
    result = plan(FERRY, gp.problem, node_limit=5)
    assert result.solved and not result.optimal
    assert len(result.plan) >= len(gp.plan)
    check_gold_plan(domain_text("ferry", "full"), problem_to_pddl(gp.problem), result.plan, where=gp.name)
    assert not make_problem("ferry", {"l": 4, "c": 4}, 3, "off", node_limit=5).optimal


def test_ferry_goal_ordering_constraint():
    gen = Ferry()
    task = make_problem("ferry", {"l": 3, "c": 2}, 0, "off").problem
    (c0_goal, c1_goal) = ((g.predicate, *g.args) for g in task.goal.args)
    bound = replace(task, constraints=_sometime_before(c0_goal, c1_goal))
    result = plan(FERRY, bound)
    assert result.optimal
    delivered = [s for s in result.plan if s.startswith("(debark")]
    first, second = f"(debark {c1_goal[1]} {c1_goal[2]})", f"(debark {c0_goal[1]} {c0_goal[2]})"
    assert delivered.index(first) < delivered.index(second)
    assert gen.parse_name(task.name)[0] == {"l": 3, "c": 2}
