"""Prompt templates (full, compact, symbolized) and the consistent renaming behind the symbolized style."""

from __future__ import annotations

import random

from reward_service.pddl.model import Domain, Problem
from reward_service.pddl.printer import constraint_text
from sampler.datagen.generate import constraint_parts
from sampler.datagen.grounding import goal_atoms, init_atoms

DOMAIN_KEY = ":domain"  # renaming key of the domain's own name (its own namespace: spanner is also a type)

PROMPT_STYLES = ("full", "compact", "symbolized")

FULL_TEMPLATE = """You are a planning assistant. Solve the planning problem below.

Write a sequential plan that starts in the problem's initial state, applies only actions whose preconditions \
hold, reaches every goal, and never violates the problem's safety constraints (:constraints) in any state \
along the way.

Domain:
{domain}
Problem:
{problem}
Output format: one action per line, written as (action-name arg1 arg2 ...), in execution order. \
Write nothing else: no numbering, no explanations.
"""


def _words(text: str) -> str:
    """PDDL without parentheses or type dashes, as space-separated words."""
    return " ".join(w for w in text.replace("(", " ").replace(")", " ").split() if w != "-")


def compact_prompt(scenario: str, problem: Problem, omit: frozenset[str]) -> str:
    """`domain X init ... goal ... [constraints ...] plan`: short and regular, for word-level tokenizers."""
    init = " ".join(" ".join(a) for a in init_atoms(problem) if a[0] not in omit)
    goal = " ".join(" ".join(a) for a in goal_atoms(problem))
    parts = [f"domain {scenario}", f"init {init}", f"goal {goal}"]
    if problem.constraints is not None:
        parts.append("constraints " + " ".join(_words(constraint_text(c)) for c in constraint_parts(problem)))
    return " ".join(parts) + " plan"


def full_prompt(domain_text: str, problem_text: str) -> str:
    return FULL_TEMPLATE.format(domain=domain_text, problem=problem_text)


def domain_renaming(domain: Domain, index: int) -> dict[str, str]:
    """Predicates, actions, types and the domain name to neutral symbols; fixed per domain (shared domain file)."""
    rng = random.Random(f"symbolize|{domain.name}")
    preds, acts = [p.name for p in domain.predicates], [a.name for a in domain.actions]
    types = [t for t, _ in domain.types]
    if len(set(preds + acts + types)) != len(preds + acts + types):
        raise ValueError(f"{domain.name}: a name is both a predicate, action or type; renaming would be ambiguous")
    out: dict[str, str] = {DOMAIN_KEY: f"dom{index}"}
    for prefix, names in (("pred", preds), ("act", acts), ("type", types)):
        order = list(range(1, len(names) + 1))
        rng.shuffle(order)
        out.update({n: f"{prefix}{k}" for n, k in zip(names, order, strict=True)})
    return out


def problem_renaming(problem: Problem, domain_map: dict[str, str], seed: int) -> dict[str, str]:
    """The domain's map plus objects to `obj<k>` in a seeded order."""
    rng = random.Random(f"symbolize|{problem.name}|{seed}")
    order = list(range(1, len(problem.objects) + 1))
    rng.shuffle(order)
    out = dict(domain_map)
    clash = [o for o, _ in problem.objects if o in out]
    if clash:
        raise ValueError(f"{problem.name}: objects {clash} share names with predicates, actions or types")
    out.update({o: f"obj{k}" for (o, _), k in zip(problem.objects, order, strict=True)})
    return out


def rename_plan(plan: tuple[str, ...], rename: dict[str, str]) -> tuple[str, ...]:
    out = []
    for step in plan:
        words = step.strip("()").split()
        out.append("(" + " ".join(rename.get(w, w) for w in words) + ")")
    return tuple(out)
