"""Renamed model copies (symbolized style): they parse, and renaming back gives the original model."""

from __future__ import annotations

import pytest

from reward_service.pddl import parse_domain, parse_problem
from reward_service.pddl.printer import domain_to_pddl, problem_to_pddl
from sampler.datagen.domains import DOMAIN_NAMES, get_generator
from sampler.datagen.generate import make_problem
from sampler.datagen.prompts import DOMAIN_KEY, domain_renaming, problem_renaming
from sampler.datagen.rename import rename_domain, rename_problem

SIZES = {"blocksworld": {"n": 3}, "ferry": {"l": 2, "c": 2}, "grippers": {"n": 1, "r": 3, "o": 2},
         "spanner": {"s": 2, "n": 2, "l": 2}, "delivery": {"s": 3, "p": 1}}


@pytest.mark.parametrize("name", DOMAIN_NAMES)
def test_rename_parses_and_inverts(name):
    gen = get_generator(name)
    gp = make_problem(name, SIZES[name], 4, "on")
    names = problem_renaming(gp.problem, domain_renaming(gen.domain, DOMAIN_NAMES.index(name)), 4)
    domain = rename_domain(gen.domain, names, names[DOMAIN_KEY])
    problem = rename_problem(gp.problem, names, names[DOMAIN_KEY])
    dtext, ptext = domain_to_pddl(domain), problem_to_pddl(problem)
    parsed = parse_problem(ptext, parse_domain(dtext))
    assert parsed.init == problem.init and parsed.constraints is not None
    kept = set(names) - {DOMAIN_KEY}
    assert not kept & set(dtext.replace("(", " ").replace(")", " ").split()[3:])
    assert not kept & set(ptext.replace("(", " ").replace(")", " ").split()[3:])
    back = {v: k for k, v in names.items() if k != DOMAIN_KEY}
    assert rename_domain(domain, back, gen.domain.name) == gen.domain
    original = rename_problem(problem, back, gp.problem.domain_name)
    assert original == gp.problem and original.init_order == gp.problem.init_order


def test_object_cannot_be_renamed():
    with pytest.raises(ValueError, match="root type"):
        rename_domain(get_generator("ferry").domain, {"object": "thing"})
