"""What every domain generator provides: file-name convention, parameter checks, seeded problem sampling."""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping

from sampler.datagen.formula import Lit
from sampler.datagen.task import DomainDef, Task

Params = Mapping[str, int]


class DomainSizeError(ValueError):
    """Sizes a generator cannot build a problem for (raised before any work)."""


class DomainGenerator(ABC):
    """One planning domain: its PDDL, its problem-name convention and a seeded problem sampler."""

    name: str
    domain: DomainDef
    param_names: tuple[str, ...]  # in file-name order
    name_pattern: re.Pattern[str]  # named groups: param names + "seed" (others, e.g. "ops", are ignored)
    families: tuple[str, ...]  # safety-constraint families this domain emits
    compact_omit: frozenset[str] = frozenset()  # static predicates left out of compact prompts

    @abstractmethod
    def problem_name(self, params: Params, seed: int) -> str:
        """File stem, e.g. `ferry-l3-c2-s17`."""

    def parse_name(self, stem: str) -> tuple[dict[str, int], int]:
        """Parameters and seed from a file stem (or file name); ValueError when it does not match."""
        stem = stem.rsplit("/", 1)[-1].removesuffix(".pddl")
        m = self.name_pattern.fullmatch(stem)
        if m is None:
            raise ValueError(f"{self.name}: problem name {stem!r} does not match {self.name_pattern.pattern}")
        return {k: int(m[k]) for k in self.param_names}, int(m["seed"])

    @abstractmethod
    def check_params(self, params: Params) -> None:
        """Raise DomainSizeError with a clear message when no problem has these sizes."""

    @abstractmethod
    def sample(self, rng: random.Random, params: Params, constrained: bool) -> Task:
        """One problem (not yet checked solvable); with `constrained`, it carries safety constraints."""

    def _check_keys(self, params: Params) -> None:
        if set(params) != set(self.param_names):
            raise DomainSizeError(
                f"{self.name}: sizes need exactly the parameters {list(self.param_names)}, got {sorted(params)}"
            )
        for k, v in params.items():
            if not isinstance(v, int) or isinstance(v, bool):
                raise DomainSizeError(f"{self.name}: size {k}={v!r} is not an integer")


def lit(*xs: str) -> Lit:
    return Lit(xs[0], tuple(xs[1:]))


def unsatisfied_goals(task_init: tuple, goal: tuple) -> bool:
    """True when at least one goal atom is false initially (a problem with something to do)."""
    init = set(task_init)
    return any(g not in init for g in goal)
