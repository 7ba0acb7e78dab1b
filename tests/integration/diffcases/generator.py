"""Seeded generator of differential cases: small problems of the five fixture domains, constraint variants
of every PDDL3 kind, and plans that are valid, truncated, broken at a known step, random, or badly formed;
plus constraints built to break at a known state (mid-plan safety of every kind, end-only kinds)."""

from __future__ import annotations

import itertools
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from reward_service.pddl import Grounder, Problem, load_domain, parse_problem
from reward_service.pddl.ground import holds

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "pddl"
DOMAINS = ("blocksworld", "ferry", "grippers", "spanner", "delivery")


@dataclass(frozen=True)
class DiffCase:
    """One plan to judge on one (domain, problem)."""

    case_id: str
    domain: str
    problem_text: str
    plan_text: str
    kind: str
    expected_failed_step: int | None = None  # a precondition break with no constraints, or a built case, fails here
    timestamps: bool = False  # plan text is `t: (a ...) [1]` with t = 0, 1, ...
    # built constraint cases (kind "built-..."): the verdict both validators must give
    expected_label: str | None = None
    expected_state_index: int | None = None  # safety: the state that breaks it; failed_step is this + 1


def _atoms(pairs) -> str:
    return " ".join(f"({' '.join(a)})" for a in pairs)


def _blocksworld(rng: random.Random) -> tuple[str, str, str]:
    blocks = [f"b{i}" for i in range(rng.randint(3, 4))]

    def towers() -> list[tuple[str, ...]]:
        order = rng.sample(blocks, len(blocks))
        atoms, below = [], None
        for b in order:
            if below is None or rng.random() < 0.4:
                atoms.append(("on-table", b))
            else:
                atoms.append(("on", b, below))
            below = b
        tops = set(blocks) - {a[2] for a in atoms if a[0] == "on"}
        return atoms + [("clear", b) for b in sorted(tops)]

    goal = [a for a in towers() if a[0] == "on"] or [("on", blocks[0], blocks[1])]
    return " ".join(blocks), _atoms([("arm-empty",), *towers()]), _atoms(goal)


def _ferry(rng: random.Random) -> tuple[str, str, str]:
    locs = [f"l{i}" for i in range(rng.randint(2, 3))]
    cars = [f"c{i}" for i in range(rng.randint(1, 2))]
    init = [("location", x) for x in locs] + [("car", c) for c in cars]
    init += [("not-eq", a, b) for a, b in itertools.permutations(locs, 2)]
    init += [("at-ferry", rng.choice(locs)), ("empty-ferry",)] + [("at", c, rng.choice(locs)) for c in cars]
    goal = [("at", c, rng.choice(locs)) for c in cars]
    return " ".join(locs + cars), _atoms(init), _atoms(goal)


def _grippers(rng: random.Random) -> tuple[str, str, str]:
    rooms = [f"room{i}" for i in range(rng.randint(2, 3))]
    balls = [f"ball{i}" for i in range(rng.randint(1, 3))]
    objects = f"robot1 - robot {' '.join(rooms)} - room {' '.join(balls)} - ball left right - gripper"
    init = [("at-robby", "robot1", rng.choice(rooms)), ("free", "robot1", "left"), ("free", "robot1", "right")]
    init += [("at", b, rng.choice(rooms)) for b in balls]
    return objects, _atoms(init), _atoms([("at", b, rng.choice(rooms)) for b in balls])


def _spanner(rng: random.Random) -> tuple[str, str, str]:
    corridor = [f"location{i}" for i in range(1, rng.randint(2, 3) + 1)]
    spanners = [f"spanner{i}" for i in range(1, rng.randint(1, 2) + 1)]
    nuts = [f"nut{i}" for i in range(1, rng.randint(1, len(spanners)) + 1)]
    path = ["shed", *corridor, "gate"]
    objects = f"bob - man {' '.join(spanners)} - spanner {' '.join(nuts)} - nut {' '.join(path)} - location"
    init = [("at", "bob", "shed")] + [("link", a, b) for a, b in itertools.pairwise(path)]
    init += [p for s in spanners for p in (("at", s, rng.choice(corridor)), ("useable", s))]
    init += [p for n in nuts for p in (("at", n, "gate"), ("loose", n))]
    return objects, _atoms(init), _atoms([("tightened", n) for n in nuts])


def _delivery(rng: random.Random) -> tuple[str, str, str]:
    rows, cols = 2, rng.randint(2, 3)
    name = {(r, c): f"c{r}{c}" for r in range(rows) for c in range(cols)}
    name[(rows - 1, cols - 1)] = "depot"
    cells = [v for v in name.values() if v != "depot"]
    packages = [f"p{i}" for i in range(1, rng.randint(1, 2) + 1)]
    init = [("adjacent", name[a], name[b]) for a in name for b in name if abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1]
    init += [("at", "t1", rng.choice(cells))] + [("pkg-at", p, rng.choice(cells)) for p in packages]
    objects = f"{' '.join(cells)} - cell t1 - truck {' '.join(packages)} - package"
    goal = "(forall (?p - package) (pkg-at ?p depot))" if rng.random() < 0.5 else _atoms(
        [("pkg-at", p, "depot") for p in packages])
    return objects, _atoms(init), goal


_MAKERS = {"blocksworld": _blocksworld, "ferry": _ferry, "grippers": _grippers, "spanner": _spanner,
           "delivery": _delivery}
# Quantified templates per domain: `{o}` is a random object, `?x` ranges over the type given.
_FORALL = {
    "blocksworld": ["(forall (?x) (at-most-once (holding ?x)))",
                    "(forall (?x) (always (imply (holding ?x) (clear {o}))))"],
    "ferry": ["(forall (?c) (at-most-once (on ?c)))", "(forall (?l) (always (imply (at-ferry ?l) (not (at {o} ?l)))))"],
    "grippers": ["(forall (?b - ball) (always (not (carry robot1 ?b right))))",
                 "(forall (?r - room) (sometime-after (at-robby robot1 ?r) (at {o} ?r)))"],
    "spanner": ["(forall (?s - spanner) (always (imply (carrying bob ?s) (not (at bob gate)))))",
                "(forall (?n - nut) (sometime-before (tightened ?n) (at bob {o})))"],
    "delivery": ["(forall (?p - package) (at-most-once (in ?p t1)))",
                 "(forall (?c - cell) (always (imply (at t1 ?c) (not (pkg-at {o} ?c)))))"],
}


def problem_text(domain: str, index: int, objects: str, init: str, goal: str, constraints: str) -> str:
    goal = goal if goal.startswith("(forall") else f"(and {goal})"
    cons = f"\n  (:constraints {constraints})" if constraints else ""
    return (f"(define (problem {domain}-g{index})\n  (:domain {domain})\n  (:objects {objects})\n"
            f"  (:init {init})\n  (:goal {goal}){cons})\n")


def _ground_actions(grounder: Grounder) -> list:
    out = []
    for action in grounder.domain.actions:
        for args in itertools.product(*(grounder.objects_of(p.type) for p in action.params)):
            out.append(grounder.action(action, tuple(args)))
    return out


def _bfs(grounder: Grounder, actions: list, goal, limit: int = 20000) -> list | None:
    start = grounder.init
    parent = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if holds(goal, state):
            plan = []
            while parent[state] is not None:
                state, act = parent[state]
                plan.append(act)
            return plan[::-1]
        for act in actions:
            if act.applicable(state):
                nxt = act.apply(state)
                if nxt not in parent:
                    parent[nxt] = (state, act)
                    queue.append(nxt)
                    if len(parent) > limit:
                        return None
    return None


def _text(acts, upper: bool = False, stamps: bool = False, comments: bool = False) -> str:
    lines = []
    for i, a in enumerate(acts):
        step = "(" + " ".join((a.name, *a.args)) + ")"
        step = step.upper() if upper else step
        lines.append(f"{i}: {step} [1]" if stamps else step)
        if comments:
            lines[-1] += " ; step"
            lines.insert(len(lines) - 1, f"; next is step {i + 1}")
    return "\n".join(lines) + "\n"


_O_PREFIX = {"blocksworld": ("b",), "ferry": ("c",), "grippers": ("ball",), "spanner": ("location", "shed", "gate"),
             "delivery": ("p",)}


def _constraint(rng: random.Random, domain: str, seen: list[str], pool: list[str], objects: list[str]) -> str:
    """One random constraint of a random kind over atoms seen along the valid plan (or any atom)."""
    a, b = rng.choice(seen), rng.choice(pool if rng.random() < 0.3 else seen)
    kind = rng.choice(["always", "always-or", "sometime", "at-most-once", "before", "after", "at-end", "forall"])
    if kind == "always":
        return f"(always (not {a}))"
    if kind == "always-or":
        return f"(always (or (not {a}) {b}))"
    if kind == "sometime":
        return f"(sometime {rng.choice(pool)})"
    if kind == "at-most-once":
        return f"(at-most-once {a})"
    if kind == "before":
        return f"(sometime-before {a} {b})"
    if kind == "after":
        return f"(sometime-after {a} {b})"
    if kind == "at-end":
        return f"(at end {rng.choice(pool)})"
    choices = [o for o in objects if o.startswith(_O_PREFIX[domain])]
    return rng.choice(_FORALL[domain]).format(o=rng.choice(choices))


def _atom_pool(grounder: Grounder) -> list[str]:
    pool = []
    for pred in grounder.domain.predicates:
        for args in itertools.product(*(grounder.objects_of(p.type) for p in pred.params)):
            pool.append("(" + " ".join((pred.name, *args)) + ")")
    return pool


def _plans(rng: random.Random, sim_states: list, valid: list, actions: list, init) -> list[tuple]:
    """(kind, steps, expected failed step) for the plan mutations of one task."""
    out: list[tuple[str, list, int | None]] = [("valid", valid, None)]
    if len(valid) >= 2:
        out.append(("truncated", valid[: rng.randint(1, len(valid) - 1)], None))
    k = rng.randrange(len(valid) + 1)
    bad = [a for a in actions if not a.applicable(sim_states[k])]
    if bad:
        out.append(("precondition", valid[:k] + [rng.choice(bad)] + valid[k:], k + 1))
    extra = [a for a in actions if a.applicable(sim_states[-1])]
    if extra:
        out.append(("extended", valid + [rng.choice(extra)], None))
    walk, state = [], init
    for _ in range(rng.randint(1, 10)):
        ok = [a for a in actions if a.applicable(state)]
        act = rng.choice(ok if ok and rng.random() < 0.85 else actions)
        walk.append(act)
        if not act.applicable(state):
            break
        state = act.apply(state)
    out.append(("random-walk", walk, None))
    return out


def generate_cases(seed: int = 0, problems_per_domain: int = 6, variants: int = 3) -> list[DiffCase]:
    """Cases over the five fixture domains; deterministic for a seed."""
    rng = random.Random(seed)
    cases: list[DiffCase] = []
    for domain_name in DOMAINS:
        domain = load_domain(FIXTURES / domain_name / "domain.pddl")
        made = 0
        for index in itertools.count():
            if made == problems_per_domain or index > 20 * problems_per_domain:
                break
            objects, init, goal = _MAKERS[domain_name](rng)
            base = problem_text(domain_name, index, objects, init, goal, "")
            problem: Problem = parse_problem(base, domain, f"{domain_name}-g{index}")
            grounder = Grounder(domain, problem)
            actions = _ground_actions(grounder)
            goal_prop = grounder.ground(problem.goal, {})
            valid = _bfs(grounder, actions, goal_prop)
            if not valid:  # unsolvable or already solved: draw another problem
                continue
            made += 1
            states = [grounder.init]
            for act in valid:
                states.append(act.apply(states[-1]))
            seen = sorted({"(" + " ".join(t) + ")" for s in states for t in s})
            pool, names = _atom_pool(grounder), sorted(problem.all_objects)
            tasks = [("plain", base)]
            for v in range(variants):
                parts = [_constraint(rng, domain_name, seen, pool, names) for _ in range(rng.randint(1, 3))]
                body = parts[0] if len(parts) == 1 else "(and " + " ".join(parts) + ")"
                tasks.append((f"c{v}", problem_text(domain_name, index, objects, init, goal, body)))
            for tag, ptext in tasks:
                for kind, steps, failed in _plans(rng, states, valid, actions, grounder.init):
                    cid = f"{domain_name}-g{index}-{tag}-{kind}"
                    cases.append(DiffCase(cid, domain_name, ptext, _text(steps), kind,
                                          failed if tag == "plain" else None))
            cases.extend(_malformed(rng, domain_name, index, base, valid, names))
            built = [_built(rng, domain_name, grounder, valid, states, pool)]
            detour = _detour(grounder.init, actions, valid)
            if detour is not None:  # makes an atom true, false, true again: what at-most-once needs
                built.append(_built(rng, domain_name, grounder, detour, _states(grounder.init, detour), pool,
                                    kinds=("at-most-once",)))
            for n_built, made_cases in enumerate(built):
                for kind, cons, label, state_index, acts in made_cases:
                    cases.append(DiffCase(
                        f"{domain_name}-g{index}-built{n_built}-{kind}", domain_name,
                        problem_text(domain_name, index, objects, init, goal, cons), _text(acts), f"built-{kind}",
                        None if state_index is None else state_index + 1, expected_label=label,
                        expected_state_index=state_index))
    return cases


def _states(init: frozenset, acts: list) -> list[frozenset]:
    states = [init]
    for act in acts:
        states.append(act.apply(states[-1]))
    return states


def _detour(init: frozenset, actions: list, valid: list) -> list | None:
    """valid[0], an action that undoes it, valid[0] again, then the rest of the valid plan; None without an undo."""
    first = valid[0]
    after = first.apply(init)
    undo = next((a for a in actions if a.applicable(after) and a.apply(after) == init), None)
    return None if undo is None else [first, undo, first, *valid[1:]]


def _forall_text(grounder: Grounder, atom: tuple, body: str) -> tuple[str, set[tuple]]:
    """`body` with `?x` for the atom's first argument, wrapped in a forall over its type; and the instances."""
    pred = next(p for p in grounder.domain.predicates if p.name == atom[0])
    typ = pred.params[0].type
    var = "(?x)" if typ == "object" else f"(?x - {typ})"
    lifted = "(" + " ".join((atom[0], "?x", *atom[2:])) + ")"
    instances = {(atom[0], o, *atom[2:]) for o in grounder.objects_of(typ)}
    return f"(forall {var} {body.format(a=lifted)})", instances


def _true_again(n: int, traces: dict[str, list[bool]]) -> list[tuple[int, str]]:
    """(k, formula) for each formula whose trace is true, false, then true again first in state k < n."""
    out = []
    for f, trace in traces.items():
        k = next((k for k in range(2, n) if trace[k] and not trace[k - 1] and any(trace[:k - 1])), None)
        if k is not None:
            out.append((k, f))
    return out


def _built(rng: random.Random, domain: str, grounder: Grounder, acts: list, states: list, pool: list[str],
           kinds: tuple[str, ...] = ("always", "forall-always", "sometime-before", "at-most-once", "sometime",
                                     "sometime-after", "at-end")) -> list[tuple]:
    """(kind, constraint, expected label, state index, plan) for constraints built to break in a known state.

    Mid-plan kinds break in a state k < len(acts): VAL runs step k+1 and stops, so the seed's failed_step is
    k+1 (the last "Checking next happening"). End kinds can only fail after the plan: goal_not_satisfied.
    """
    n = len(acts)
    true_in = [{"(" + " ".join(t) + ")" for t in st} for st in states]
    ever = set().union(*true_in)
    first_true = {a: next(i for i, st in enumerate(true_in) if a in st) for a in ever}
    out: list[tuple] = []
    mid = sorted({k for k in first_true.values() if k < n})
    for kind in kinds:
        if kind == "always" and mid:
            k = rng.choice(mid)
            a = rng.choice(sorted(x for x, i in first_true.items() if i == k))
            out.append((kind, f"(always (not {a}))", "safety_constraints_violation", k, acts))
        elif kind == "forall-always":
            atoms = sorted({t for st in states[:n] for t in st if len(t) > 1})
            if atoms:
                text, inst = _forall_text(grounder, rng.choice(atoms), "(always (not {a}))")
                k = next(i for i, st in enumerate(states) if inst & st)
                out.append((kind, text, "safety_constraints_violation", k, acts))
        elif kind == "sometime-before" and mid:
            k = rng.choice(mid)
            phi = rng.choice(sorted(x for x, i in first_true.items() if i == k))
            earlier = set().union(*true_in[:k])
            psis = sorted(x for x in pool if x not in earlier and x != phi)
            if psis:
                out.append((kind, f"(sometime-before {phi} {rng.choice(psis)})", "safety_constraints_violation", k,
                            acts))
        elif kind == "at-most-once":
            # (k, formula): true, then false, then true again first in state k < n; an `or` of two atoms where
            # no single atom comes back (spanner's one-way corridor)
            again = _true_again(n, {x: [x in st for st in true_in] for x in sorted(ever)})
            if not again:
                again = _true_again(n, {f"(or {x} {y})": [x in st or y in st for st in true_in]
                                        for x, y in itertools.combinations(sorted(ever), 2)})
            if again:
                k, f = rng.choice(again)
                out.append((kind, f"(at-most-once {f})", "safety_constraints_violation", k, acts))
        elif kind == "sometime":
            never = sorted(set(pool) - ever)
            if never:
                out.append((kind, f"(sometime {rng.choice(never)})", "goal_not_satisfied", None, acts))
        elif kind == "sometime-after":
            never = sorted(set(pool) - ever)
            if never:
                cons = f"(sometime-after {rng.choice(sorted(ever))} {rng.choice(never)})"
                out.append((kind, cons, "goal_not_satisfied", None, acts))
        elif kind == "at-end":
            false_at_end = sorted(set(pool) - true_in[-1])
            if false_at_end:
                out.append((kind, f"(at end {rng.choice(false_at_end)})", "goal_not_satisfied", None, acts))
    return out


def _malformed(rng: random.Random, domain: str, index: int, ptext: str, valid: list, names: list[str]) -> list:
    """Unknown names, wrong arity, an empty plan, and VAL's other accepted formats, on the plain task."""
    k = rng.randrange(len(valid))
    first = valid[k]
    step = "(" + " ".join((first.name, *first.args)) + ")"
    prefix = _text(valid[:k])
    bad = {
        "unknown-action": prefix + "(teleport " + " ".join(first.args) + ")\n",
        "unknown-object": prefix + "(" + " ".join((first.name, *first.args[:-1], "nosuchthing")) + ")\n",
        "extra-arg": prefix + step[:-1] + f" {rng.choice(names)})\n",
        "few-args": prefix + "(" + " ".join((first.name, *first.args[:-1])) + ")\n",
        "empty": "",
        "upper-case": _text(valid, upper=True),
        "comments": _text(valid, comments=True),
    }
    cases = [DiffCase(f"{domain}-g{index}-{kind}", domain, ptext, text, kind) for kind, text in bad.items()]
    cases.append(DiffCase(f"{domain}-g{index}-timestamps", domain, ptext, _text(valid, stamps=True), "timestamps",
                          timestamps=True))
    broken = valid[:k] + valid[k + 1 :] if len(valid) > 1 else valid
    cases.append(DiffCase(f"{domain}-g{index}-timestamps-broken", domain, ptext, _text(broken, stamps=True),
                          "timestamps", timestamps=True))
    return cases


def walk_corpus(seed: int, steps: int = 20, problems_per_domain: int = 2, plans_per_problem: int = 10):
    """(domain name, problem text, plan texts) with plans of exactly `steps` applicable actions (benchmarks)."""
    rng = random.Random(seed)
    out = []
    for domain_name in DOMAINS:
        domain = load_domain(FIXTURES / domain_name / "domain.pddl")
        for index in range(problems_per_domain):
            objects, init, goal = _MAKERS[domain_name](rng)
            text = problem_text(domain_name, index, objects, init, goal, "")
            grounder = Grounder(domain, parse_problem(text, domain, f"{domain_name}-w{index}"))
            actions = _ground_actions(grounder)
            plans: list[str] = []
            for _ in range(50 * plans_per_problem):  # some domains dead-end early (spanner's one-way corridor)
                if len(plans) == plans_per_problem:
                    break
                state, walk = grounder.init, []
                while len(walk) < steps:
                    ok = [a for a in actions if a.applicable(state)]
                    if not ok:
                        break
                    walk.append(rng.choice(ok))
                    state = walk[-1].apply(state)
                if len(walk) == steps:
                    plans.append(_text(walk))
            if len(plans) == plans_per_problem:
                out.append((domain_name, text, plans))
    return out
