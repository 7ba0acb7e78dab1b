"""Validate and score plan files (or raw model completions) against a PDDL domain and problem.

    python -m reward_service.validate DOMAIN PROBLEM PLAN [PLAN ...] [--validator val|native] [--json]
                                      [--progress-denominator plan_size|reference_length]
                                      [--reference-length N] [--from-completion] [--timeout S]

Every plan gets its label and the dense reward of DESIGN.md (RewardConfig defaults; None when the
validator failed). p's denominator is the plan's size (the seed's), or with `--progress-denominator
reference_length` (implied by `--reference-length N`) the gold length: N, else a `.soln` beside the problem,
else the plan's size. With `--from-completion` each PLAN file is raw model output: it goes through the
same extractor -> validator -> reward path as training (RewardScorer), and the JSON also carries
`extracted_plan` and `dropped`.

Exit status: 0 when every plan is valid, 1 when any is not, 2 on a usage error or PDDL that does
not parse (the message names the file and line). Each plan gets `--timeout` seconds (RewardConfig.timeout_s,
as in training); over it its label is validator_error. A plan file that cannot be read as a plan is not a
usage error: it gets the label plan_format_error, with the file and line in its message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from reward_service.config import RewardConfig
from reward_service.contracts import Completion, Score
from reward_service.dense import reference_length, reward_for
from reward_service.extract import Extraction
from reward_service.pddl.errors import PddlError
from reward_service.plan_file import PlanFormatError, read_plan_file
from reward_service.result import Label, Plan, ValidationResult, Validator
from reward_service.scoring import RewardScorer, ValidationTimeout, deadline
from reward_service.val import load_task
from reward_service.validators import VALIDATOR_NAMES, make_validator

EXIT_VALID, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class PlanOutcome:
    """One plan file given on the command line, what the validator said of it, and its reward."""

    path: str
    result: ValidationResult
    reward: float | None = None  # None: the validator failed (error or timeout)
    reference_length: int | None = None  # the length p was computed against; None = the plan's own
    extraction: Extraction | None = None  # set with --from-completion


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reward_service.validate", description=__doc__.splitlines()[0])
    parser.add_argument("domain", help="PDDL domain file")
    parser.add_argument("problem", help="PDDL problem file")
    parser.add_argument("plans", nargs="+", metavar="PLAN", help="plan files in VAL's format (or completions)")
    parser.add_argument("--validator", choices=VALIDATOR_NAMES, default="val", help="which validator (default val)")
    parser.add_argument("--json", action="store_true", help="one JSON object per plan per line")
    parser.add_argument("--progress-denominator", choices=("plan_size", "reference_length"), default=None,
                        help="denominator of p: the plan's size (default) or the gold length (RewardConfig)")
    parser.add_argument("--reference-length", type=_non_negative, metavar="N", default=None,
                        help="gold plan length for p, implies --progress-denominator reference_length "
                             "(default: a .soln beside the problem, else the plan's size)")
    parser.add_argument("--from-completion", action="store_true",
                        help="each PLAN file is raw model output: extract its plan first, as training does")
    parser.add_argument("--timeout", type=_positive_seconds, metavar="S", default=RewardConfig().timeout_s,
                        help="seconds a plan may take; over it: validator_error (default %(default)g, as training)")
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0 and finite, got {value:g}")
    return value


def _validate_within(validator: Validator, domain: str, problem: str, plans: list[Plan],
                     timeout_s: float) -> list[ValidationResult]:
    """validate_many under training's deadline (timeout_s a plan): a plan over it gets validator_error."""
    try:
        with deadline(timeout_s * max(1, len(plans))):
            return list(validator.validate_many(domain, problem, plans))
    except ValidationTimeout:
        pass  # find the slow plan(s): one deadline each
    results = []
    for plan in plans:
        try:
            with deadline(timeout_s):
                results.append(validator.validate(domain, problem, plan))
        except ValidationTimeout as exc:
            results.append(ValidationResult(Label.VALIDATOR_ERROR, len(plan), validator=validator.name,
                                            error=f"timeout: {exc}"))
    return results


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


def validate_files(
    validator: Validator, domain: str, problem: str, paths: list[str],
    reference: int | None = None, config: RewardConfig | None = None,
) -> list[PlanOutcome]:
    """Validate and score every plan file against one (domain, problem); PddlError/OSError propagate to main().

    `reference` is read with `progress_denominator: reference_length` only; None there: a `.soln` beside the
    problem, else each plan's size.
    """
    config = config or RewardConfig()
    plans, errors = read_plans(paths, validator.name, load_task(domain, problem).goals_total)
    readable = [i for i, p in enumerate(plans) if p is not None]
    results = _validate_within(validator, domain, problem, [plans[i] for i in readable], config.timeout_s)
    by_index = {**errors, **dict(zip(readable, results, strict=True))}
    if config.progress_denominator != "reference_length":
        reference = None
    elif reference is None:
        reference = reference_length({}, None, problem)
    return [PlanOutcome(path, by_index[i], reward_for(by_index[i], reference, config), reference)
            for i, path in enumerate(paths)]


class _KeepResults:
    """A Validator that remembers the full results it gave, so the CLI can show what a Score leaves out
    (messages, unsatisfied preconditions). Keyed by plan: equal plans get equal verdicts."""

    def __init__(self, inner: Validator) -> None:
        self.inner = inner
        self.name = inner.name
        self.results: dict[Plan, ValidationResult] = {}

    def validate(self, domain_file: str | Path, problem_file: str | Path, plan: Plan) -> ValidationResult:
        self.results[plan] = result = self.inner.validate(domain_file, problem_file, plan)
        return result

    def validate_many(
        self, domain_file: str | Path, problem_file: str | Path, plans: list[Plan]
    ) -> list[ValidationResult]:
        results = self.inner.validate_many(domain_file, problem_file, plans)
        self.results.update(zip(plans, results, strict=True))
        return results


def score_completions(
    validator: Validator, domain: str, problem: str, paths: list[str],
    reference: int | None = None, config: RewardConfig | None = None,
) -> list[PlanOutcome]:
    """Score raw completion files exactly as training does (RewardScorer: extractor, validator, reward).

    An extractor-decided label (size cap, no action, broken line) is reported without a validator call
    (validator "extract"); its goals_total is the problem's, goals_satisfied 0.
    """
    config = config or RewardConfig(validator=validator.name)  # type: ignore[arg-type]  # a known name
    goals_total = load_task(domain, problem).goals_total  # PddlError here is a usage error, not a verdict
    texts = [Path(p).read_text(encoding="utf-8", errors="replace") for p in paths]
    domain_abs, problem_abs = Path(domain).resolve(), Path(problem).resolve()
    root = Path(os.path.commonpath([domain_abs, problem_abs]))  # the scorer wants paths under a data root
    meta: dict[str, Any] = {"domain_file": str(domain_abs.relative_to(root)),
                            "problem_file": str(problem_abs.relative_to(root))}
    if reference is not None:
        meta["reference_plan_length"] = reference
    keep = _KeepResults(validator)
    scorer = RewardScorer(config, root, validator=keep)
    scores = scorer.score([Completion("cli", text) for text in texts], [{"sample_id": "cli", "meta": meta}])
    outcomes = []
    for path, text, score in zip(paths, texts, scores, strict=True):
        extraction = scorer.extractor.extract(text)  # again (cheap): a Score keeps only part of it
        result = keep.results.get(extraction.plan) if score.validator != "extract" else None
        if result is None:
            result = _result_of(score, goals_total)
        outcomes.append(PlanOutcome(path, result, score.reward, score.reference_length, extraction))
    return outcomes


def _result_of(score: Score, goals_total: int) -> ValidationResult:
    """A ValidationResult for a Score that no validator result stands behind (extractor or validator failure)."""
    failed = score.label is Label.VALIDATOR_ERROR
    return ValidationResult(
        score.label, score.plan_length, goals_total=goals_total, validator=score.validator,
        messages=(score.error,) if score.error and not failed else (), latency_ms=score.latency_ms,
        error=score.error if failed else None,
    )


def result_record(outcome: PlanOutcome) -> dict:
    """The JSON object of one plan."""
    r = outcome.result
    record = {
        "plan": outcome.path, "label": r.label.value, "valid": r.valid, "reward": outcome.reward,
        "reference_length": outcome.reference_length, "plan_length": r.plan_length,
        "failed_step": r.failed_step, "violation_state_index": r.violation_state_index,
        "goals_satisfied": r.goals_satisfied, "goals_total": r.goals_total,
        "violated_constraint": r.violated_constraint, "unsatisfied_preconditions": list(r.unsatisfied_preconditions),
        "messages": list(r.messages), "validator": r.validator, "latency_ms": round(r.latency_ms, 3),
        "error": r.error,
    }
    if outcome.extraction is not None:
        record["extracted_plan"] = outcome.extraction.plan.to_text()
        record["dropped"] = outcome.extraction.dropped()
    return record


def _reward_text(reward: float | None) -> str:
    return "None (validator failed)" if reward is None else f"{reward:.4g}"


def write_text(outcomes: list[PlanOutcome], out: TextIO) -> None:
    """A summary that reads like VAL's: one block per plan (with its reward), then the successful and failed plans."""
    for o in outcomes:
        r = o.result
        out.write(f"Checking plan: {o.path}\n")
        if o.extraction is not None:
            d = o.extraction.dropped()
            out.write(f"Extracted {len(o.extraction.plan)} action(s); dropped {d['lines_before']} line(s) before, "
                      f"{len(str(d['after']))} char(s) after, {d['think_chars']} think char(s)\n")
        out.write(f"Plan size: {r.plan_length}\n")
        if r.valid:
            out.write(f"Plan valid\nReward: {_reward_text(o.reward)}\n\n")
            continue
        where = f" at step {r.failed_step}" if r.failed_step is not None else ""
        out.write(f"Plan invalid: {r.label.value}{where}\nReward: {_reward_text(o.reward)}\n")
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
    parser = build_parser()
    args = parser.parse_args(argv)
    denominator = args.progress_denominator or ("plan_size" if args.reference_length is None else "reference_length")
    if denominator == "plan_size" and args.reference_length is not None:
        parser.error("--reference-length needs --progress-denominator reference_length (p's denominator is then "
                     "the gold length)")
    run = score_completions if args.from_completion else validate_files
    try:
        for path in (args.domain, args.problem, *args.plans):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no such file")
        opts = {"timeout_s": args.timeout} if args.validator == "val" else {}
        outcomes = run(make_validator(args.validator, **opts), args.domain, args.problem, args.plans,
                       args.reference_length,
                       RewardConfig(validator=args.validator, progress_denominator=denominator,
                                    timeout_s=args.timeout))
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
