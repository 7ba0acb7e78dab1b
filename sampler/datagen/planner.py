"""Reference planner: breadth-first search over bit-set states with PDDL3 monitors (optimal), greedy fallback."""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

from reward_service.pddl.model import Domain, Problem
from sampler.datagen.grounding import (
    GroundAction,
    compile_constraints,
    goal_atoms,
    ground_actions,
    init_atoms,
    objects_by_type,
)

DEFAULT_NODE_LIMIT = 200_000  # BFS states before falling back to greedy search
GREEDY_NODE_LIMIT = 400_000


@dataclass(frozen=True)
class PlanResult:
    """A plan (None when none exists or none was found), whether it is proven optimal, states expanded."""

    plan: tuple[str, ...] | None
    optimal: bool
    expanded: int
    proven_unsolvable: bool = False

    @property
    def solved(self) -> bool:
        return self.plan is not None


class _Compiled:
    """The task as bit masks; actions indexed by one of their preconditions (the rarest)."""

    def __init__(self, domain: Domain, problem: Problem) -> None:
        objects = objects_by_type(domain, problem)
        actions = ground_actions(domain, problem, objects)
        init, goal = init_atoms(problem), goal_atoms(problem)
        atoms: dict = {}
        for a in init:
            atoms.setdefault(a, len(atoms))
        for act in actions:
            for a in act.add:
                atoms.setdefault(a, len(atoms))
        self.bits = atoms
        self.actions: list[GroundAction] = actions
        mask = lambda xs: sum(1 << atoms[x] for x in set(xs) if x in atoms)  # noqa: E731
        self.init = mask(init)
        self.goal_unreachable = any(g not in atoms for g in goal)
        self.goal = mask(goal)
        self.goal_atoms = [1 << atoms[g] for g in goal if g in atoms]
        # an action whose positive precondition can never hold is dropped
        usable = [(i, a) for i, a in enumerate(actions) if all(p in atoms for p in a.pre)]
        count: dict[int, int] = {}
        for _, a in usable:
            for p in a.pre:
                count[atoms[p]] = count.get(atoms[p], 0) + 1
        groups: dict[int, list] = {}
        free: list = []
        for i, a in usable:
            op = (mask(a.pre), mask(a.pre_neg), ~mask(a.delete), mask(a.add), i)
            if not a.pre:
                free.append(op)
                continue
            anchor = min((atoms[p] for p in a.pre), key=lambda b: (count[b], b))
            groups.setdefault(anchor, []).append(op)
        self.groups = [(1 << b, ops) for b, ops in sorted(groups.items())]
        self.free = free
        self.monitors = compile_constraints(problem.constraints, atoms, objects)

    def successors(self, s: int):
        for ops in [self.free] + [ops for bit, ops in self.groups if s & bit]:
            for pre, neg, keep, add, i in ops:
                if s & pre == pre and not s & neg:
                    yield (s & keep) | add, i

    def advance(self, mon: tuple[int, ...], s: int) -> tuple[int, ...] | None:
        out = []
        for m, v in zip(self.monitors, mon, strict=True):
            nv = m.step(v, s)
            if nv is None:
                return None
            out.append(nv)
        return tuple(out)


def _trace(parents: dict, key, c: _Compiled) -> tuple[str, ...]:
    steps = []
    while parents[key] is not None:
        key, i = parents[key]
        steps.append(str(c.actions[i]))
    return tuple(reversed(steps))


def plan(domain: Domain, problem: Problem, node_limit: int = DEFAULT_NODE_LIMIT) -> PlanResult:
    """Optimal (fewest actions) plan satisfying goals and constraints; greedy best-effort past `node_limit`."""
    c = _Compiled(domain, problem)
    if c.goal_unreachable:
        return PlanResult(None, False, 0, proven_unsolvable=True)
    mon0 = tuple(0 for _ in c.monitors)
    mon0 = c.advance(mon0, c.init) if c.monitors else mon0
    if mon0 is None:
        return PlanResult(None, False, 0, proven_unsolvable=True)
    start = (c.init, mon0)
    if c.init & c.goal == c.goal:
        return PlanResult((), True, 0)
    parents: dict = {start: None}
    queue = deque([start])
    while queue:
        if len(parents) > node_limit:
            return _greedy(c, start)
        key = queue.popleft()
        s, mon = key
        for t, i in c.successors(s):
            m2 = c.advance(mon, t) if c.monitors else mon
            if m2 is None:
                continue
            k2 = (t, m2)
            if k2 in parents:
                continue
            parents[k2] = (key, i)
            if t & c.goal == c.goal:  # every monitor here accepts at the end: none is pending
                return PlanResult(_trace(parents, k2, c), True, len(parents))
            queue.append(k2)
    return PlanResult(None, False, len(parents), proven_unsolvable=True)


def _greedy(c: _Compiled, start) -> PlanResult:
    """Greedy best-first on unsatisfied goal atoms: a plan, not a shortest one."""
    h = lambda s: sum(1 for g in c.goal_atoms if not s & g)  # noqa: E731
    parents: dict = {start: None}
    heap = [(h(start[0]), 0, start)]
    tick = 0
    while heap and len(parents) <= GREEDY_NODE_LIMIT:
        _, _, key = heapq.heappop(heap)
        s, mon = key
        for t, i in c.successors(s):
            m2 = c.advance(mon, t) if c.monitors else mon
            if m2 is None or (t, m2) in parents:
                continue
            parents[(t, m2)] = (key, i)
            if t & c.goal == c.goal:
                return PlanResult(_trace(parents, (t, m2), c), False, len(parents))
            tick += 1
            heapq.heappush(heap, (h(t), tick, (t, m2)))
    return PlanResult(None, False, len(parents), proven_unsolvable=not heap)
