"""One dataset entry, built in a worker: problem, gold plan, prompt; then its VAL check (accepted entries only)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from reward_service.pddl.printer import domain_to_pddl, problem_to_pddl
from sampler.datagen.domains import DOMAIN_NAMES, get_generator
from sampler.datagen.generate import make_problem
from sampler.datagen.prompts import (
    DOMAIN_KEY,
    compact_prompt,
    domain_renaming,
    full_prompt,
    problem_renaming,
    rename_plan,
)
from sampler.datagen.rename import rename_domain, rename_problem
from sampler.datagen.valcheck import check_gold_plan


@dataclass(frozen=True)
class Job:
    """What a worker needs to build candidate number `index` of a domain."""

    domain: str
    params: dict[str, int]
    seed: int
    constraints: str
    mix_ratio: float
    node_limit: int
    prompt_style: str
    max_plan_length: int | None = None


@dataclass(frozen=True)
class Built:
    """A finished entry; `key` is the problem's content without its name (duplicates share it)."""

    domain: str
    name: str
    params: dict[str, int]
    seed: int
    key: str
    domain_text: str
    problem_text: str
    plan: tuple[str, ...]
    optimal: bool
    families: tuple[str, ...]
    prompt: str

    @property
    def plan_text(self) -> str:
        """The gold plan as written: one action per line (the record's response and the .soln file)."""
        return "".join(f"{s}\n" for s in self.plan)


def domain_text(domain: str, prompt_style: str) -> str:
    """The domain file as written: renamed for the symbolized style."""
    gen = get_generator(domain)
    if prompt_style != "symbolized":
        return domain_to_pddl(gen.domain)
    rename = domain_renaming(gen.domain, DOMAIN_NAMES.index(domain))
    return domain_to_pddl(rename_domain(gen.domain, rename, rename[DOMAIN_KEY]))


def build_one(job: Job) -> Built:
    """Generate, plan, rename if symbolized, render the prompt (VAL comes later, in `check_built`)."""
    gen = get_generator(job.domain)
    gp = make_problem(job.domain, job.params, job.seed, job.constraints, job.mix_ratio, job.node_limit,
                      job.max_plan_length)
    rename: dict[str, str] = {}
    problem = gp.problem
    if job.prompt_style == "symbolized":
        rename = problem_renaming(gp.problem, domain_renaming(gen.domain, DOMAIN_NAMES.index(job.domain)), job.seed)
        problem = rename_problem(gp.problem, rename, rename[DOMAIN_KEY])
    dtext = domain_text(job.domain, job.prompt_style)
    ptext = problem_to_pddl(problem)
    plan = rename_plan(gp.plan, rename) if rename else gp.plan
    if job.prompt_style == "compact":
        prompt = compact_prompt(job.domain, gp.problem, gen.compact_omit)
    else:
        prompt = full_prompt(dtext, ptext)
    key = problem_to_pddl(replace(gp.problem, name="_"))
    return Built(
        domain=job.domain, name=gp.name, params=gp.params, seed=job.seed, key=key,
        domain_text=dtext, problem_text=ptext, plan=plan, optimal=gp.optimal, families=gp.families, prompt=prompt,
    )


def check_built(b: Built) -> Built:
    """VAL must accept the gold plan on the texts that will be written (GoldPlanError otherwise)."""
    check_gold_plan(b.domain_text, b.problem_text, b.plan, where=f"{b.domain}/{b.name}")
    return b
