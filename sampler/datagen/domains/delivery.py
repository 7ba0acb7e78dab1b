"""Delivery (typed; a square grid, one truck of capacity one, packages to goal cells); `always (not ...)` cells."""

from __future__ import annotations

import random
import re

from reward_service.pddl.model import Atom, Modal, Not, Problem
from sampler.datagen.domains.base import (
    DomainGenerator,
    DomainSizeError,
    Params,
    action,
    domain,
    lit,
    problem,
)

T, FROM, TO, P, C = "?t", "?from", "?to", "?p", "?c"

DOMAIN = domain(
    name="delivery",
    requirements=(":strips", ":typing", ":negative-preconditions", ":equality", ":constraints"),
    types=(("cell", "object"), ("package", "object"), ("truck", "object")),
    predicates=(
        ("adjacent", (("?c1", "cell"), ("?c2", "cell"))),
        ("truck-at", ((T, "truck"), (C, "cell"))),
        ("at", ((P, "package"), (C, "cell"))),
        ("in", ((P, "package"), (T, "truck"))),
        ("loaded", ((T, "truck"),)),
    ),
    actions=(
        action("move", ((T, "truck"), (FROM, "cell"), (TO, "cell")),
               pre=(lit("truck-at", T, FROM), lit("adjacent", FROM, TO)),
               add=(lit("truck-at", T, TO),), delete=(lit("truck-at", T, FROM),), neq=((FROM, TO),)),
        action("pick-up", ((T, "truck"), (P, "package"), (C, "cell")),
               pre=(lit("truck-at", T, C), lit("at", P, C)), pre_neg=(lit("loaded", T),),
               add=(lit("in", P, T), lit("loaded", T)), delete=(lit("at", P, C),)),
        action("drop", ((T, "truck"), (P, "package"), (C, "cell")),
               pre=(lit("truck-at", T, C), lit("in", P, T)),
               add=(lit("at", P, C),), delete=(lit("in", P, T), lit("loaded", T))),
    ),
)
TRUCK = "truck1"


def cell(x: int, y: int) -> str:
    return f"c-{x}-{y}"


class Delivery(DomainGenerator):
    name = "delivery"
    domain = DOMAIN
    param_names = ("s", "p")
    name_pattern = re.compile(r"delivery-s(?P<s>\d+)-p(?P<p>\d+)-seed(?P<seed>\d+)")
    families = ("always-not",)
    compact_omit = frozenset({"adjacent"})

    def problem_name(self, params: Params, seed: int) -> str:
        return f"delivery-s{params['s']}-p{params['p']}-seed{seed}"

    def check_params(self, params: Params) -> None:
        self._check_keys(params)
        s, p = params["s"], params["p"]
        if s < 2:
            raise DomainSizeError(f"delivery: grid side s={s} must be at least 2 (the truck must be able to move)")
        if p < 1:
            raise DomainSizeError(f"delivery: packages p={p} must be at least 1")
        if 2 * p > s * s:
            raise DomainSizeError(
                f"delivery: grid side s={s} has {s * s} cells, fewer than the {2 * p} that {p} packages need "
                "(distinct start and goal cells)"
            )

    def sample(self, rng: random.Random, params: Params, constrained: bool) -> Problem:
        s, p = params["s"], params["p"]
        cells = [cell(x, y) for x in range(s) for y in range(s)]
        pkgs = [f"p{i}" for i in range(1, p + 1)]
        spots = rng.sample(cells, 2 * p)
        start, dest = dict(zip(pkgs, spots[:p], strict=True)), dict(zip(pkgs, spots[p:], strict=True))
        truck = rng.choice(cells)
        init = [("truck-at", TRUCK, truck)] + [("at", q, start[q]) for q in pkgs]
        for x in range(s):
            for y in range(s):
                for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    if 0 <= x + dx < s and 0 <= y + dy < s:
                        init.append(("adjacent", cell(x, y), cell(x + dx, y + dy)))
        goal = [("at", q, dest[q]) for q in pkgs]
        cons: tuple = ()
        free = [c for c in cells if c not in spots and c != truck]
        if constrained and free:
            # cells the truck must never enter
            k = 1 if len(free) < 4 or rng.random() < 0.5 else 2
            cons = tuple(Modal("always", Not(Atom("truck-at", (TRUCK, c)))) for c in sorted(rng.sample(free, k)))
        objects = ((TRUCK, "truck"),) + tuple((c, "cell") for c in cells) + tuple((q, "package") for q in pkgs)
        return problem(DOMAIN, objects, tuple(init), tuple(goal), cons)
