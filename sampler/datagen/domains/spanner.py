"""Spanner (typed; walk/pickup_spanner/tighten_nut on a one-way chain shed -> ... -> gate); imply / at-most-once."""

from __future__ import annotations

import random
import re

from reward_service.pddl.model import Atom, ConstraintForall, Imply, Modal, Param, Problem
from sampler.datagen.domains.base import (
    DomainGenerator,
    DomainSizeError,
    Params,
    action,
    domain,
    lit,
    problem,
)

START, END, M, S, L, N = "?start", "?end", "?m", "?s", "?l", "?n"

DOMAIN = domain(
    name="spanner",
    requirements=(":strips", ":typing", ":constraints"),
    types=(("location", "object"), ("locatable", "object"), ("man", "locatable"), ("nut", "locatable"),
           ("spanner", "locatable")),
    predicates=(
        ("at", ((M, "locatable"), (L, "location"))),
        ("carrying", ((M, "man"), (S, "spanner"))),
        ("useable", ((S, "spanner"),)),
        ("link", (("?l1", "location"), ("?l2", "location"))),
        ("tightened", ((N, "nut"),)),
        ("loose", ((N, "nut"),)),
    ),
    actions=(
        action("walk", ((START, "location"), (END, "location"), (M, "man")),
               pre=(lit("at", M, START), lit("link", START, END)),
               add=(lit("at", M, END),), delete=(lit("at", M, START),)),
        action("pickup_spanner", ((L, "location"), (S, "spanner"), (M, "man")),
               pre=(lit("at", M, L), lit("at", S, L)),
               add=(lit("carrying", M, S),), delete=(lit("at", S, L),)),
        action("tighten_nut", ((L, "location"), (S, "spanner"), (M, "man"), (N, "nut")),
               pre=(lit("at", M, L), lit("at", N, L), lit("carrying", M, S), lit("useable", S), lit("loose", N)),
               add=(lit("tightened", N),), delete=(lit("loose", N), lit("useable", S))),
    ),
)
MAN = "bob"


class Spanner(DomainGenerator):
    name = "spanner"
    domain = DOMAIN
    param_names = ("s", "n", "l")
    name_pattern = re.compile(r"spanner-s(?P<s>\d+)-n(?P<n>\d+)-l(?P<l>\d+)-s(?P<seed>\d+)")
    families = ("always-imply", "forall-at-most-once")

    def problem_name(self, params: Params, seed: int) -> str:
        return f"spanner-s{params['s']}-n{params['n']}-l{params['l']}-s{seed}"

    def check_params(self, params: Params) -> None:
        self._check_keys(params)
        s, n, lo = params["s"], params["n"], params["l"]
        if n < 1 or lo < 1:
            raise DomainSizeError(f"spanner: nuts n={n} and locations l={lo} must be at least 1")
        if n > s:
            raise DomainSizeError(
                f"spanner: nuts n={n} > spanners s={s}; every nut needs its own spanner, so no plan exists"
            )

    def sample(self, rng: random.Random, params: Params, constrained: bool) -> Problem:
        locs = [f"location{i}" for i in range(1, params["l"] + 1)]
        chain = ["shed", *locs, "gate"]
        spanners = [f"spanner{i}" for i in range(1, params["s"] + 1)]
        nuts = [f"nut{i}" for i in range(1, params["n"] + 1)]
        init = [("at", MAN, "shed")] + [("at", sp, rng.choice(locs)) for sp in spanners]
        init += [("useable", sp) for sp in spanners]
        init += [("at", nt, "gate") for nt in nuts] + [("loose", nt) for nt in nuts]
        init += [("link", a, b) for a, b in zip(chain, chain[1:], strict=False)]
        goal = [("tightened", nt) for nt in nuts]
        cons: tuple = ()
        if constrained:
            if len(nuts) >= 2 and rng.random() < 0.5:
                # one nut may be tightened only once another one is
                a, b = rng.sample(nuts, 2)
                cons = (Modal("always", Imply(Atom("tightened", (a,)), Atom("tightened", (b,)))),)
            else:
                # reach the gate only carrying a given spanner
                sp = rng.choice(spanners)
                cons = (Modal("always", Imply(Atom("at", (MAN, "gate")), Atom("carrying", (MAN, sp)))),)
            if rng.random() < 0.5:
                # the man stands on each location during one visit at most
                cons += (ConstraintForall((Param(L, "location"),), Modal("at-most-once", Atom("at", (MAN, L)))),)
        objects = ((MAN, "man"),) + tuple((x, "spanner") for x in spanners) + tuple((x, "nut") for x in nuts)
        objects += tuple((x, "location") for x in chain)
        return problem(DOMAIN, objects, tuple(init), tuple(goal), cons)
