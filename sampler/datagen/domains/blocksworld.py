"""Blocksworld (4 operators, untyped): random towers to random towers; `sometime-before` safety constraints."""

from __future__ import annotations

import random
import re
import string

from reward_service.pddl.model import Atom, Modal, Problem
from sampler.datagen.domains.base import (
    DomainGenerator,
    DomainSizeError,
    Params,
    action,
    domain,
    lit,
    problem,
    unsatisfied_goals,
)

X, Y = "?x", "?y"

DOMAIN = domain(
    name="blocksworld",
    requirements=(":strips", ":constraints"),
    types=(),
    predicates=(
        ("on", ((X, None), (Y, None))),
        ("ontable", ((X, None),)),
        ("clear", ((X, None),)),
        ("handempty", ()),
        ("holding", ((X, None),)),
    ),
    actions=(
        action("pick-up", ((X, None),), pre=(lit("clear", X), lit("ontable", X), lit("handempty")),
               add=(lit("holding", X),), delete=(lit("ontable", X), lit("clear", X), lit("handempty"))),
        action("put-down", ((X, None),), pre=(lit("holding", X),),
               add=(lit("clear", X), lit("handempty"), lit("ontable", X)), delete=(lit("holding", X),)),
        action("stack", ((X, None), (Y, None)), pre=(lit("holding", X), lit("clear", Y)),
               add=(lit("clear", X), lit("handempty"), lit("on", X, Y)),
               delete=(lit("holding", X), lit("clear", Y))),
        action("unstack", ((X, None), (Y, None)), pre=(lit("on", X, Y), lit("clear", X), lit("handempty")),
               add=(lit("holding", X), lit("clear", Y)),
               delete=(lit("clear", X), lit("handempty"), lit("on", X, Y))),
    ),
)
MAX_BLOCKS = 26


def block_names(n: int) -> list[str]:
    return list(string.ascii_lowercase[:n])


def random_towers(rng: random.Random, blocks: list[str]) -> list[list[str]]:
    """A random state: shuffled blocks cut into towers (bottom first)."""
    order = blocks[:]
    rng.shuffle(order)
    towers: list[list[str]] = [[]]
    for b in order:
        if towers[-1] and rng.random() < 0.35:
            towers.append([])
        towers[-1].append(b)
    return towers


def tower_atoms(towers: list[list[str]]) -> list[tuple[str, ...]]:
    atoms: list[tuple[str, ...]] = []
    for t in towers:
        atoms.append(("ontable", t[0]))
        atoms += [("on", up, down) for down, up in zip(t, t[1:], strict=False)]
        atoms.append(("clear", t[-1]))
    return atoms


class Blocksworld(DomainGenerator):
    name = "blocksworld"
    domain = DOMAIN
    param_names = ("n",)
    name_pattern = re.compile(r"bw_ops(?P<ops>[34])_n(?P<n>\d+)_seed(?P<seed>\d+)")
    families = ("sometime-before",)

    def problem_name(self, params: Params, seed: int) -> str:
        return f"bw_ops4_n{params['n']}_seed{seed}"

    def check_params(self, params: Params) -> None:
        self._check_keys(params)
        if not 2 <= params["n"] <= MAX_BLOCKS:
            raise DomainSizeError(f"blocksworld: blocks n={params['n']} must be between 2 and {MAX_BLOCKS}")

    def sample(self, rng: random.Random, params: Params, constrained: bool) -> Problem:
        blocks = block_names(params["n"])
        while True:
            init = sorted(tower_atoms(random_towers(rng, blocks)), key=_atom_order) + [("handempty",)]
            goal = [a for a in tower_atoms(random_towers(rng, blocks)) if a[0] == "on"]
            if goal and unsatisfied_goals(tuple(init), tuple(goal)):
                break
        goal.sort()
        cons = ()
        if constrained:
            unmet = [g for g in goal if g not in init]
            if rng.random() < 0.5 and len(goal) >= 2:
                # build one goal tower edge only after another goal edge has been achieved
                later = rng.choice(unmet)
                first = rng.choice([g for g in unmet if g != later] or [g for g in goal if g != later])
                cons = (Modal("sometime-before", Atom(later[0], later[1:]), Atom(first[0], first[1:])),)
            else:
                # a block may be lifted only after another block has been held
                x, y = rng.sample(blocks, 2)
                cons = (Modal("sometime-before", Atom("holding", (x,)), Atom("holding", (y,))),)
        objects = tuple((b, None) for b in blocks)
        return problem(DOMAIN, objects, tuple(init), tuple(goal), cons)


def _atom_order(a: tuple[str, ...]) -> tuple:
    return ({"on": 0, "ontable": 1, "clear": 2}.get(a[0], 3), a)
