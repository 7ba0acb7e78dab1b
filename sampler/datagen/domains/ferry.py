"""Ferry (untyped; sail/board/debark): cars to random other locations; `sometime-before` safety constraints."""

from __future__ import annotations

import random
import re

from reward_service.pddl.model import Atom, Modal, Problem
from sampler.datagen.domains.base import (
    DomainGenerator,
    DomainSizeError,
    Params,
    action,
    domain,
    lit,
    problem,
)

FROM, TO, CAR, LOC = "?from", "?to", "?car", "?loc"

DOMAIN = domain(
    name="ferry",
    requirements=(":strips", ":constraints"),
    types=(),
    predicates=(
        ("not-eq", (("?x", None), ("?y", None))),
        ("car", (("?c", None),)),
        ("location", (("?l", None),)),
        ("at-ferry", (("?l", None),)),
        ("at", (("?c", None), ("?l", None))),
        ("empty-ferry", ()),
        ("on", (("?c", None),)),
    ),
    actions=(
        action("sail", ((FROM, None), (TO, None)),
               pre=(lit("not-eq", FROM, TO), lit("location", FROM), lit("location", TO), lit("at-ferry", FROM)),
               add=(lit("at-ferry", TO),), delete=(lit("at-ferry", FROM),)),
        action("board", ((CAR, None), (LOC, None)),
               pre=(lit("car", CAR), lit("location", LOC), lit("at", CAR, LOC), lit("at-ferry", LOC),
                    lit("empty-ferry")),
               add=(lit("on", CAR),), delete=(lit("at", CAR, LOC), lit("empty-ferry"))),
        action("debark", ((CAR, None), (LOC, None)),
               pre=(lit("car", CAR), lit("location", LOC), lit("on", CAR), lit("at-ferry", LOC)),
               add=(lit("at", CAR, LOC), lit("empty-ferry")), delete=(lit("on", CAR),)),
    ),
)


class Ferry(DomainGenerator):
    name = "ferry"
    domain = DOMAIN
    param_names = ("l", "c")
    name_pattern = re.compile(r"ferry-l(?P<l>\d+)-c(?P<c>\d+)-s(?P<seed>\d+)")
    families = ("sometime-before",)
    compact_omit = frozenset({"not-eq", "car", "location"})

    def problem_name(self, params: Params, seed: int) -> str:
        return f"ferry-l{params['l']}-c{params['c']}-s{seed}"

    def check_params(self, params: Params) -> None:
        self._check_keys(params)
        if params["l"] < 2:
            raise DomainSizeError(f"ferry: locations l={params['l']} must be at least 2 (cars must move)")
        if params["c"] < 1:
            raise DomainSizeError(f"ferry: cars c={params['c']} must be at least 1")

    def sample(self, rng: random.Random, params: Params, constrained: bool) -> Problem:
        locs = [f"l{i}" for i in range(params["l"])]
        cars = [f"c{i}" for i in range(params["c"])]
        start = {c: rng.choice(locs) for c in cars}
        goal_loc = {c: rng.choice([x for x in locs if x != start[c]]) for c in cars}
        ferry = rng.choice(locs)
        init = [("location", x) for x in locs] + [("car", c) for c in cars]
        init += [("not-eq", a, b) for a in locs for b in locs if a != b]
        init += [("at-ferry", ferry), ("empty-ferry",)] + [("at", c, start[c]) for c in cars]
        goal = [("at", c, goal_loc[c]) for c in cars]
        cons = ()
        if constrained:
            kind = rng.random()
            if len(cars) >= 2 and kind < 0.4:
                # deliver one car before another
                a, b = rng.sample(cars, 2)
                cons = (Modal("sometime-before", Atom("at", (a, goal_loc[a])), Atom("at", (b, goal_loc[b]))),)
            elif len(cars) >= 2 and kind < 0.7:
                # board one car before another
                a, b = rng.sample(cars, 2)
                cons = (Modal("sometime-before", Atom("on", (a,)), Atom("on", (b,))),)
            else:
                # the ferry must call at a location before a car boards
                c = rng.choice(cars)
                where = rng.choice([x for x in locs if x != ferry])
                cons = (Modal("sometime-before", Atom("on", (c,)), Atom("at-ferry", (where,))),)
        objects = tuple((x, None) for x in locs + cars)
        return problem(DOMAIN, objects, tuple(init), tuple(goal), cons)
