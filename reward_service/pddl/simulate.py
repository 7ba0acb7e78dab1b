"""Plan simulation in VAL's order: constraints on state k, then step k+1, then the goal and end constraints."""

from __future__ import annotations

from dataclasses import dataclass

from reward_service.pddl.ground import GroundAction, Grounder, compile_prop, holds
from reward_service.pddl.model import Atom, Domain, MetricExpr, Problem
from reward_service.pddl.monitors import ConstraintMonitor, GroundModal, ground_constraints, ground_preferences


@dataclass(frozen=True)
class Outcome:
    """What happened to a plan. `kind`: success | precondition | safety | goal.

    failed_step: precondition -> the 1-based step whose precondition failed (VAL's time); safety -> the
    1-based step VAL ran after the state that broke the constraint (its last "Checking next happening (time
    N)"), i.e. state_index + 1, the number the seed's reward reads; goal -> None.
    state_index: safety only -> the state where the violation became certain (0 = initial state), VAL's
    "Checking trajectory constraints at K".
    """

    kind: str  # also "undefined": a step's cost function has no value (VAL prints no verdict)
    steps_executed: int
    failed_step: int | None = None
    state_index: int | None = None
    unsatisfied: tuple[str, ...] = ()
    violated: str | None = None
    goals_satisfied: int = 0
    goals_total: int = 0
    # success only, as VAL prints them: "Final value" (the metric, else the plan length) and "Violations:"
    metric_value: float | None = None
    preferences_violated: tuple[tuple[str, int], ...] = ()


class Simulator:
    """A (domain, problem) ready to run plans: grounder with its action cache, goal parts, constraints."""

    def __init__(self, domain: Domain, problem: Problem) -> None:
        self.domain = domain
        self.problem = problem
        self.grounder = Grounder(domain, problem)
        self.goal = self.grounder.ground(problem.goal, {})
        # goal atoms as VAL's advice lists them: the ground goal's top-level conjuncts (nested `and` and
        # `forall` flattened, static equalities dropped)
        g = self.goal
        self.goal_parts = () if g is True else g[1] if g is not False and g[0] == "and" else (g,)
        self.modals: tuple[GroundModal, ...] = ground_constraints(problem.constraints, self.grounder)
        self._checked = tuple((m, *m.checkers()) for m in self.modals)
        self._goal_test = compile_prop(self.goal)
        self.soft = ground_preferences(problem.constraints, self.grounder)
        self.goal_preferences = tuple(
            (pref.name, self.grounder.ground(pref.formula, b))
            for pref in problem.preferences for b in self.grounder.bindings(pref.params, {}))
        # plan steps exactly as written -> their ground action; a hit skips precheck and lower-casing
        self.step_cache: dict[tuple[str, tuple[str, ...]], GroundAction] = {}

    def cached_steps(self, steps) -> list[GroundAction] | None:
        """The ground actions of `steps` (objects with .name and .args) when all are cached, else None."""
        cache = self.step_cache
        out = []
        for s in steps:
            act = cache.get((s.name, s.args))
            if act is None:
                return None
            out.append(act)
        return out

    def ground_steps(self, steps) -> list[GroundAction]:
        """Ground prechecked steps (any case) and remember them; the cache is bounded."""
        if len(self.step_cache) > 100_000:  # distinct garbage must not grow memory without end
            self.step_cache.clear()
        actions = self.domain.action_index
        out = []
        for s in steps:
            act = self.grounder.action(actions[s.name.lower()], tuple(a.lower() for a in s.args))
            self.step_cache[(s.name, s.args)] = act
            out.append(act)
        return out

    def _goal_counts(self, state: frozenset) -> tuple[int, int]:
        return sum(1 for g in self.goal_parts if holds(g, state)), len(self.goal_parts)

    def run(self, steps: list[tuple[str, tuple[str, ...]]]) -> Outcome:
        """Simulate (name, args) steps that are known to pass precheck."""
        actions = self.domain.action_index
        return self.run_ground([self.grounder.action(actions[name], args) for name, args in steps])

    def run_ground(self, plan: list[GroundAction]) -> Outcome:
        """Simulate ground actions the way `Validate -v` does.

        VAL checks the constraints on state k, executes step k+1 even when state k violated one, and only
        then stops; a violation in the final state is reported as "Goal not satisfied" (VAL_NOTES.md).
        """
        monitor = ConstraintMonitor(self._checked) if self._checked else None
        state = self.grounder.init
        states = [state] if self.soft else None  # for the soft constraints of a valid plan's metric
        cost = 0.0
        for k, act in enumerate(plan):
            violated = monitor.observe(state) if monitor is not None else None
            if not act.applicable(state):
                bad = tuple(text for text, f in act.conjuncts if not holds(f, state))
                sat, total = self._goal_counts(state)
                return Outcome("precondition", k, failed_step=k + 1, unsatisfied=bad, goals_satisfied=sat,
                               goals_total=total)
            if act.cost is None:
                return Outcome("undefined", k, failed_step=k + 1)
            cost += act.cost
            state = act.apply(state)
            if states is not None:
                states.append(state)
            if violated is not None:
                # VAL has already run step k+1 ("Checking next happening (time k+1)") when it stops
                sat, total = self._goal_counts(state)
                return Outcome("safety", k + 1, failed_step=k + 1, state_index=k, violated=violated.text,
                               goals_satisfied=sat, goals_total=total)
        n = len(plan)
        sat, total = self._goal_counts(state)
        if not self._goal_test(state):
            return Outcome("goal", n, goals_satisfied=sat, goals_total=total)
        if monitor is not None:
            violated = monitor.observe(state) or monitor.finish(state)
            if violated is not None:
                return Outcome("goal", n, violated=violated.text, goals_satisfied=sat, goals_total=total)
        violations = self._preference_violations(states or [state])
        return Outcome("success", n, goals_satisfied=sat, goals_total=total,
                       metric_value=self.metric_value(n, cost, violations), preferences_violated=violations)

    def _preference_violations(self, states: list[frozenset]) -> tuple[tuple[str, int], ...]:
        """Violated instances per preference name over a whole trajectory (VAL's "Violations:" block)."""
        counts: dict[str, int] = {}
        for name, modal in self.soft:
            monitor = ConstraintMonitor(((modal, *modal.checkers()),))
            if any(monitor.observe(s) is not None for s in states) or monitor.finish(states[-1]) is not None:
                counts[name] = counts.get(name, 0) + 1
        for name, goal in self.goal_preferences:
            if not holds(goal, states[-1]):
                counts[name] = counts.get(name, 0) + 1
        return tuple(sorted(counts.items()))

    def metric_value(self, steps: int, cost: float, violations: tuple[tuple[str, int], ...]) -> float | None:
        """VAL's "Final value": the metric evaluated at the end, or the plan length without a metric."""
        metric = self.problem.metric
        if metric is None:
            return float(steps)
        values = dict(self.grounder.values)
        values[("total-cost",)] = values.get(("total-cost",), 0.0) + cost
        return _evaluate(metric.expr, values, dict(violations))


def _evaluate(expr: MetricExpr, values: dict, violated: dict[str, int]) -> float | None:
    """A metric expression's value; None where VAL's value is not computed here (total-time, undefined, x/0)."""
    op = expr[0]
    if op == "num":
        return expr[1]
    if op == "fn":
        atom: Atom = expr[1]
        return values.get((atom.predicate, *atom.args))
    if op == "is-violated":
        return float(violated.get(expr[1], 0))
    if op == "total-time":
        return None
    args = [_evaluate(e, values, violated) for e in expr[1:]]
    if None in args:
        return None
    if op == "+":
        return float(sum(args))
    if op == "*":
        out = 1.0
        for a in args:
            out *= a
        return out
    if op == "-":
        return -args[0] if len(args) == 1 else args[0] - sum(args[1:])
    if len(args) != 2 or args[1] == 0:
        return None
    return args[0] / args[1]
