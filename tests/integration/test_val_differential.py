"""Differential test: NativeValidator gives VAL's label, failed step and goal counts on a generated corpus."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from reward_service.native import NativeValidator
from reward_service.plan_file import parse_plan_text
from reward_service.result import Label, ValidationResult
from reward_service.val import ValValidator, classify_val_output, find_validate_binary, split_segments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diffcases.generator import FIXTURES, DiffCase, generate_cases  # noqa: E402

pytestmark = pytest.mark.integration
GOAL_LABELS = (Label.SUCCESS, Label.GOAL_NOT_SATISFIED, Label.EMPTY_PLAN)  # where VAL reports goal advice
SEED = 20240611


def _differences(case_id: str, val: ValidationResult, native: ValidationResult) -> list[str]:
    fields = ["label", "failed_step"]
    if val.label in GOAL_LABELS:
        fields += ["goals_satisfied", "goals_total"]
    return [f"{case_id}: {f} VAL={getattr(val, f)!r} native={getattr(native, f)!r}"
            for f in fields if getattr(val, f) != getattr(native, f)]


def _raw_val(domain: Path, problem: Path, plan_dir: Path, names: list[str]) -> list[ValidationResult | None]:
    """VAL's own reading of the raw plan files (timestamps, comments, upper case), one call, split per plan."""
    proc = subprocess.run([str(find_validate_binary()), "-v", str(domain), str(problem), *names], cwd=plan_dir,
                          capture_output=True, timeout=60)
    segments = split_segments(proc.stdout.decode("utf-8", errors="replace"), names) or [None] * len(names)
    return [None if s is None else classify_val_output(s) for s in segments]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[DiffCase], dict[str, Path]]:
    root = tmp_path_factory.mktemp("diff")
    cases = generate_cases(SEED)
    problems: dict[str, Path] = {}
    for case in cases:
        if case.problem_text not in problems:
            problems[case.problem_text] = root / f"problem-{len(problems):04d}.pddl"
            problems[case.problem_text].write_text(case.problem_text)
    return root, cases, problems


def test_generated_corpus_covers_every_kind_and_label(corpus):
    _, cases, _ = corpus
    assert len(cases) >= 300
    assert {c.domain for c in cases} == {"blocksworld", "ferry", "grippers", "spanner", "delivery"}
    kinds = Counter(c.kind for c in cases)
    for kind in ("valid", "truncated", "precondition", "unknown-action", "unknown-object", "extra-arg", "few-args",
                 "empty", "upper-case", "comments", "timestamps"):
        assert kinds[kind] > 0, kind
    text = " ".join(c.problem_text for c in cases)
    for modality in ("(always ", "(sometime ", "(at-most-once ", "(sometime-before ", "(sometime-after ",
                     "(at end ", "(forall ", "(imply ", "(not "):
        assert modality in text, modality


def test_native_agrees_with_val_on_generated_cases(corpus):
    root, cases, problems = corpus
    val, native = ValValidator(timeout_s=30), NativeValidator()
    by_problem: dict[str, list[DiffCase]] = defaultdict(list)
    for case in cases:
        by_problem[case.problem_text].append(case)
    diffs: list[str] = []
    labels: Counter = Counter()
    for ptext, group in by_problem.items():
        domain_file, problem_file = FIXTURES / group[0].domain / "domain.pddl", problems[ptext]
        plans = [parse_plan_text(c.plan_text, filename=c.case_id) for c in group]
        val_results = val.validate_many(domain_file, problem_file, plans)
        for case, plan, v in zip(group, plans, val_results, strict=True):
            n = native.validate(domain_file, problem_file, plan)
            labels[v.label] += 1
            assert v.label is not Label.VALIDATOR_ERROR, f"{case.case_id}: {v.error}"
            diffs += _differences(case.case_id, v, n)
            if case.expected_failed_step is not None and v.failed_step != case.expected_failed_step:
                diffs.append(f"{case.case_id}: VAL failed_step {v.failed_step}, built to fail at "
                             f"{case.expected_failed_step}")
        # Formats VAL reads itself: its verdict on the raw text must match ours on the parsed plan.
        raw = [(c, v) for c, v in zip(group, val_results, strict=True)
               if c.kind in ("upper-case", "comments", "timestamps")]
        if raw:
            names = [f"{c.case_id}.plan" for c, _ in raw]
            for name, (c, _) in zip(names, raw, strict=True):
                (root / name).write_text(c.plan_text)
            for name, (c, ours), theirs in zip(names, raw, _raw_val(domain_file, problem_file, root, names),
                                               strict=True):
                if theirs is None or theirs.label is not ours.label:
                    diffs.append(f"{name}: raw VAL {theirs and theirs.label} vs parsed {ours.label}")
                elif not c.timestamps and theirs.failed_step != ours.failed_step:
                    diffs.append(f"{name}: raw VAL step {theirs.failed_step} vs parsed {ours.failed_step}")
    assert not diffs, f"{len(diffs)} disagreements:\n" + "\n".join(diffs[:60])
    # The corpus must exercise every verdict, or agreement would prove little.
    assert set(labels) >= set(Label) - {Label.VALIDATOR_ERROR}, labels


def test_fixture_plans_agree(tmp_path):
    """H1's hand-written fixture plans (tests/fixtures/pddl/<domain>/pNN.*.plan), judged by both."""
    val, native = ValValidator(), NativeValidator()
    diffs, seen = [], 0
    for plan_file in sorted(FIXTURES.glob("*/p*.plan")):
        problem = plan_file.parent / (plan_file.name.split(".")[0] + ".pddl")
        domain = plan_file.parent / "domain.pddl"
        plan = parse_plan_text(plan_file.read_text(), filename=str(plan_file))
        v, n = val.validate(domain, problem, plan), native.validate(domain, problem, plan)
        diffs += _differences(str(plan_file.relative_to(FIXTURES)), v, n)
        seen += 1
    assert seen >= 5
    assert not diffs, "\n".join(diffs)
