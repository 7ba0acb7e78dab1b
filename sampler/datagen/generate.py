"""One seeded, solvable problem with its reference plan: sample, plan under the constraints, else resample."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from reward_service.pddl.model import (
    And,
    Constraint,
    ConstraintAnd,
    ConstraintForall,
    Forall,
    Formula,
    Imply,
    Modal,
    Not,
    Problem,
)
from sampler.datagen.domains import get_generator
from sampler.datagen.domains.base import Params
from sampler.datagen.planner import DEFAULT_NODE_LIMIT, plan

CONSTRAINT_MODES = ("on", "off", "mix")
MAX_ATTEMPTS = 200  # resamples before giving up on a (sizes, seed)


class UnsolvableSizesError(RuntimeError):
    """No solvable problem was found for a (domain, sizes, seed) within MAX_ATTEMPTS samples."""


def _shape(f: Formula) -> str:
    if isinstance(f, Not):
        return "-not" + _shape(f.arg)
    if isinstance(f, Imply):
        return "-imply"
    if isinstance(f, Forall):
        return "-forall" + _shape(f.body)
    if isinstance(f, And):
        return "-and"
    return ""


def constraint_family(c: Constraint) -> str:
    """The safety-constraint family a constraint belongs to: `always-not`, `forall-at-most-once`, ..."""
    if isinstance(c, ConstraintForall):
        return "forall-" + constraint_family(c.body)
    if isinstance(c, Modal):
        return c.kind + _shape(c.first)
    raise TypeError(f"no constraint family for {c}")


def constraint_parts(problem: Problem) -> tuple[Constraint, ...]:
    """The problem's top-level constraints (one, or the members of its `and`)."""
    if problem.constraints is None:
        return ()
    return problem.constraints.args if isinstance(problem.constraints, ConstraintAnd) else (problem.constraints,)


@dataclass(frozen=True)
class GeneratedProblem:
    """A problem named by its domain's convention, solvable under its constraints, with a reference plan."""

    domain: str
    name: str
    params: dict[str, int]
    seed: int
    problem: Problem
    plan: tuple[str, ...]
    optimal: bool
    attempts: int

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(map(constraint_family, constraint_parts(self.problem)))


def make_problem(
    domain: str,
    params: Params,
    seed: int,
    constraints: str = "mix",
    mix_ratio: float = 0.5,
    node_limit: int = DEFAULT_NODE_LIMIT,
    max_plan_length: int | None = None,
) -> GeneratedProblem:
    """Deterministic in (domain, params, seed, constraints, mix_ratio, max_plan_length): the name identifies it.

    With `max_plan_length`, a sample whose reference plan is longer is resampled like an unsolvable one.
    """
    if constraints not in CONSTRAINT_MODES:
        raise ValueError(f"constraints must be one of {CONSTRAINT_MODES}, got {constraints!r}")
    if max_plan_length is not None and max_plan_length < 1:
        raise ValueError(f"max_plan_length must be >= 1 action or None, got {max_plan_length}")
    gen = get_generator(domain)
    gen.check_params(params)
    # str seeds hash the same in every process (random.seed uses sha512 for str)
    rng = random.Random(f"{domain}|{sorted(params.items())}|{seed}")
    constrained = constraints == "on" or (constraints == "mix" and rng.random() < mix_ratio)
    name = gen.problem_name(params, seed)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        problem = replace(gen.sample(rng, params, constrained), name=name)
        result = plan(gen.domain, problem, node_limit=node_limit)
        if result.solved and result.plan and (max_plan_length is None or len(result.plan) <= max_plan_length):
            return GeneratedProblem(domain, name, dict(params), seed, problem, result.plan, result.optimal, attempt)
    raise UnsolvableSizesError(
        f"{domain}: no solvable problem with sizes {dict(params)} (seed {seed}) in {MAX_ATTEMPTS} samples; "
        "the sizes are too large for the planner's node limit, too tight for the constraints"
        + (f" or for plans of at most {max_plan_length} actions" if max_plan_length is not None else "")
    )
