"""The planner's evaluator of a reward_service.pddl model: ground STRIPS actions and bit-set PDDL3 monitors.

Ground atoms are tuples `(predicate, arg, ...)`; a state is an int with one bit per atom that can hold.
Only what datagen's domains use is compiled: STRIPS preconditions with negative literals and `(not (= ..))`,
goals that are conjunctions of atoms, `always` / `sometime-before` / `at-most-once` under `and` / `forall`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from reward_service.pddl.model import (
    And,
    Atom,
    Constraint,
    ConstraintAnd,
    ConstraintForall,
    Domain,
    Equals,
    Forall,
    Formula,
    Imply,
    Modal,
    Not,
    Param,
    Problem,
)

GroundAtom = tuple[str, ...]
Objects = Mapping[str, tuple[str, ...]]  # type name -> objects of that type (subtypes included)
Binding = Mapping[str, str]
StateTest = Callable[[int], bool]


def ground_atom(a: Atom, binding: Binding = {}) -> GroundAtom:  # noqa: B006 - read-only default
    return (a.predicate, *(binding.get(x, x) for x in a.args))


def init_atoms(problem: Problem) -> tuple[GroundAtom, ...]:
    """The initial atoms in declaration order (sorted when the problem has none)."""
    init = problem.init_order or tuple(sorted(problem.init, key=lambda a: (a.predicate, a.args)))
    return tuple(map(ground_atom, init))


def goal_atoms(problem: Problem) -> tuple[GroundAtom, ...]:
    """The goal's atoms; TypeError unless the goal is a conjunction of atoms."""
    goal = problem.goal.args if isinstance(problem.goal, And) else (problem.goal,)
    if not all(isinstance(g, Atom) for g in goal):
        raise TypeError(f"{problem.name}: the datagen planner takes goals that are conjunctions of atoms")
    return tuple(map(ground_atom, goal))


def objects_by_type(domain: Domain, problem: Problem) -> dict[str, tuple[str, ...]]:
    """Every declared type (and `object`) -> its objects, subtypes included, in declaration order."""
    objects = tuple(problem.all_objects.items())
    below = {ot: {t for t, _ in domain.types if domain.is_subtype(ot, t)} for ot in {ot for _, ot in objects}}
    out = {"object": tuple(o for o, _ in objects)}
    for t, _ in domain.types:
        out[t] = tuple(o for o, ot in objects if t in below[ot])
    return out


def bindings(params: tuple[Param, ...], objects: Objects, outer: Binding = {}) -> Iterator[dict[str, str]]:  # noqa: B006
    """Every assignment of objects to `params` (first parameter slowest), on top of `outer`."""
    for combo in itertools.product(*(objects[p.type] for p in params)):
        yield {**outer, **dict(zip((p.name for p in params), combo, strict=True))}


@dataclass(frozen=True)
class GroundAction:
    name: str
    args: tuple[str, ...]
    pre: tuple[GroundAtom, ...]
    pre_neg: tuple[GroundAtom, ...]
    add: tuple[GroundAtom, ...]
    delete: tuple[GroundAtom, ...]

    def __str__(self) -> str:
        return "(" + " ".join((self.name, *self.args)) + ")"


def _strips_precondition(f: Formula, where: str) -> tuple[list[Atom], list[Atom], list[Equals]]:
    """Positive atoms, negated atoms and negated equalities of a conjunctive precondition."""
    pos: list[Atom] = []
    neg: list[Atom] = []
    neq: list[Equals] = []
    for part in f.args if isinstance(f, And) else (f,):
        if isinstance(part, Atom):
            pos.append(part)
        elif isinstance(part, Not) and isinstance(part.arg, Atom):
            neg.append(part.arg)
        elif isinstance(part, Not) and isinstance(part.arg, Equals):
            neq.append(part.arg)
        else:
            raise TypeError(f"{where}: the datagen planner grounds STRIPS preconditions only, got {part}")
    return pos, neg, neq


def ground_actions(domain: Domain, problem: Problem, objects: Objects | None = None) -> list[GroundAction]:
    """Every ground action whose static preconditions hold in init, in a fixed order."""
    fluent = {a.predicate for act in domain.actions for a in (*act.effect.adds, *act.effect.deletes)}
    init = set(init_atoms(problem))
    objects = objects_by_type(domain, problem) if objects is None else objects
    out: list[GroundAction] = []
    for act in domain.actions:
        if act.effect.whens or act.effect.foralls or act.effect.costs:
            raise TypeError(f"{act.name}: the datagen planner grounds STRIPS effects only")
        pos, neg, neq = _strips_precondition(act.precondition, act.name)
        names = tuple(p.name for p in act.params)
        lifted = lambda atoms: [(a.predicate, a.args) for a in atoms]  # noqa: E731
        pos_l, neg_l, add_l, del_l = lifted(pos), lifted(neg), lifted(act.effect.adds), lifted(act.effect.deletes)
        for combo in itertools.product(*(objects[p.type] for p in act.params)):
            sub = dict(zip(names, combo, strict=True))
            if any(sub.get(e.left, e.left) == sub.get(e.right, e.right) for e in neq):
                continue
            inst = lambda lits: [(p, *[sub.get(x, x) for x in xs]) for p, xs in lits]  # noqa: E731,B023
            pre, pre_neg = inst(pos_l), inst(neg_l)
            if any(p[0] not in fluent and p not in init for p in pre):
                continue
            if any(p[0] not in fluent and p in init for p in pre_neg):
                continue
            out.append(
                GroundAction(
                    act.name,
                    combo,
                    tuple(p for p in pre if p[0] in fluent),
                    tuple(p for p in pre_neg if p[0] in fluent),
                    tuple(inst(add_l)),
                    tuple(inst(del_l)),
                )
            )
    return out


def compile_formula(f: Formula, bits: Mapping[GroundAtom, int], objects: Objects, binding: Binding = {}) -> StateTest:  # noqa: B006
    """A test on a bit-set state; atoms that can never hold (no bit) are false."""
    if isinstance(f, Atom):
        key = ground_atom(f, binding)
        mask = 1 << bits[key] if key in bits else 0
        return lambda s: bool(s & mask)
    if isinstance(f, Not):
        inner = compile_formula(f.arg, bits, objects, binding)
        return lambda s: not inner(s)
    if isinstance(f, And):
        parts = [compile_formula(a, bits, objects, binding) for a in f.args]
        return lambda s: all(p(s) for p in parts)
    if isinstance(f, Imply):
        cond, then = compile_formula(f.left, bits, objects, binding), compile_formula(f.right, bits, objects, binding)
        return lambda s: (not cond(s)) or then(s)
    if isinstance(f, Forall):
        parts = [compile_formula(f.body, bits, objects, b) for b in bindings(f.params, objects, binding)]
        return lambda s: all(p(s) for p in parts)
    raise TypeError(f"the datagen planner does not compile {f}")


@dataclass(frozen=True)
class Monitor:
    """One ground constraint as an automaton: `step(mstate, state) -> mstate | None` (None = violated)."""

    kind: str
    test: StateTest
    test2: StateTest | None = None

    def start(self, s: int) -> int | None:
        return self.step(0, s)

    def step(self, m: int, s: int) -> int | None:
        if self.kind == "always":
            return 0 if self.test(s) else None
        if self.kind == "sometime-before":  # m = 1 once psi held in an earlier state
            if self.test(s) and not m:
                return None
            return 1 if (m or self.test2(s)) else 0
        # at-most-once: 0 never held, 1 holding now, 2 held and stopped
        if self.test(s):
            return None if m == 2 else 1
        return 2 if m == 1 else m


MONITORED = ("always", "sometime-before", "at-most-once")


def compile_constraints(c: Constraint | None, bits: Mapping[GroundAtom, int], objects: Objects,
                        binding: Binding = {}) -> list[Monitor]:  # noqa: B006
    """Ground a constraint (expanding `and` and `forall`) into monitors, in order."""
    if c is None:
        return []
    if isinstance(c, ConstraintAnd):
        return [m for a in c.args for m in compile_constraints(a, bits, objects, binding)]
    if isinstance(c, ConstraintForall):
        return [m for b in bindings(c.params, objects, binding) for m in compile_constraints(c.body, bits, objects, b)]
    if isinstance(c, Modal) and c.kind in MONITORED:
        test = compile_formula(c.first, bits, objects, binding)
        second = None if c.second is None else compile_formula(c.second, bits, objects, binding)
        return [Monitor(c.kind, test, second)]
    raise TypeError(f"the datagen planner monitors {', '.join(MONITORED)} under and/forall only, got {c}")
