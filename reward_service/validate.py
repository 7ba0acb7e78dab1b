"""Validate plan files against a PDDL domain and problem, like VAL's summary or as JSON lines.

    python -m reward_service.validate DOMAIN PROBLEM PLAN [PLAN ...] [--validator val|native] [--json]

Exit status: 0 when every plan is valid, 1 when any is not, 2 on a usage error or PDDL that does
not parse (the message names the file and line). A plan file that cannot be read as a plan is not a
usage error: it gets the label plan_format_error, with the file and line in its message.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from reward_service.pddl.errors import PddlError
from reward_service.plan_file import PlanFormatError, read_plan_file
from reward_service.result import Label, Plan, ValidationResult, Validator
from reward_service.val import load_task
from reward_service.validators import VALIDATOR_NAMES, make_validator

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class PlanOutcome:
    """One plan file given on the command line and what the validator said of it."""

    path: str
    result: ValidationResult


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reward_service.validate", description=__doc__.splitlines()[0])
    parser.add_argument("domain", help="PDDL domain file")
    parser.add_argument("problem", help="PDDL problem file")
    parser.add_argument("plans", nargs="+", metavar="PLAN", help="plan files in VAL's format")
    parser.add_argument("--validator", choices=VALIDATOR_NAMES, default="val", help="which validator (default val)")
    parser.add_argument("--json", action="store_true", help="one JSON object per plan per line")
    return parser


def read_plans(paths: list[str], validator_name: str, goals_total: int) -> tuple[list[Plan | None], dict]:
    """Read each plan file; an unreadable one becomes a plan_format_error result (keyed by position)."""
    plans: list[Plan | None] = []
    errors: dict[int, ValidationResult] = {}
    for i, path in enumerate(paths):
        try:
            plans.append(read_plan_file(path))
        except PlanFormatError as err:
            plans.append(None)
            errors[i] = ValidationResult(Label.PLAN_FORMAT_ERROR, goals_total=goals_total, messages=(str(err),),
                                         validator=validator_name)
    return plans, errors


def validate_files(validator: Validator, domain: str, problem: str, paths: list[str]) -> list[PlanOutcome]:
    """Validate every plan file against one (domain, problem); PddlError/OSError propagate to main()."""
    plans, errors = read_plans(paths, validator.name, load_task(domain, problem).goals_total)
    readable = [i for i, p in enumerate(plans) if p is not None]
    results = validator.validate_many(domain, problem, [plans[i] for i in readable])
    by_index = {**errors, **dict(zip(readable, results, strict=True))}
    return [PlanOutcome(path, by_index[i]) for i, path in enumerate(paths)]


def result_record(outcome: PlanOutcome) -> dict:
    """The JSON object of one plan (extend it here, e.g. with a reward)."""
    r = outcome.result
    return {
        "plan": outcome.path, "label": r.label.value, "valid": r.valid, "plan_length": r.plan_length,
        "failed_step": r.failed_step, "goals_satisfied": r.goals_satisfied, "goals_total": r.goals_total,
        "violated_constraint": r.violated_constraint, "unsatisfied_preconditions": list(r.unsatisfied_preconditions),
        "messages": list(r.messages), "validator": r.validator, "latency_ms": round(r.latency_ms, 3),
        "error": r.error,
    }


def write_text(outcomes: list[PlanOutcome], out: TextIO) -> None:
    """A summary that reads like VAL's: one block per plan, then the successful and failed plans."""
    for o in outcomes:
        r = o.result
        out.write(f"Checking plan: {o.path}\nPlan size: {r.plan_length}\n")
        if r.valid:
            out.write("Plan valid\n\n")
            continue
        where = f" at step {r.failed_step}" if r.failed_step is not None else ""
        out.write(f"Plan invalid: {r.label.value}{where}\n")
        out.write(f"Goals satisfied: {r.goals_satisfied}/{r.goals_total}\n")
        if r.violated_constraint:
            out.write(f"Violated constraint: {r.violated_constraint}\n")
        for atom in r.unsatisfied_preconditions:
            out.write(f"Unsatisfied precondition: {atom}\n")
        for line in (r.error, *r.messages):
            if line and line != r.violated_constraint:
                out.write(f"  {line}\n")
        out.write("\n")
    out.write("Successful plans: " + " ".join(o.path for o in outcomes if o.result.valid) + "\n")
    out.write("Failed plans: " + " ".join(o.path for o in outcomes if not o.result.valid) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for path in (args.domain, args.problem, *args.plans):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no such file")
        outcomes = validate_files(make_validator(args.validator), args.domain, args.problem, args.plans)
    except (PddlError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        for o in outcomes:
            print(json.dumps(result_record(o)))
    else:
        write_text(outcomes, sys.stdout)
    return EXIT_VALID if all(o.result.valid for o in outcomes) else EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
