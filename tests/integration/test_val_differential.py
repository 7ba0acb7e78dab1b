"""Differential test: NativeValidator gives VAL's label, failed step and goal counts on a generated corpus.

failed_step is the seed's reading of VAL's text: for a safety violation, the time of the last "Checking next
happening (time N)" before "Plan failed to execute" (state index + 1). Constraints built to break in a known
state (every kind, diffcases.generator._built) pin that number for both validators and VAL's raw text.
"""

from __future__ import annotations

import re
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
SAFETY_KINDS = ("always", "forall-always", "sometime-before", "at-most-once")  # can break mid-plan
END_KINDS = ("sometime", "sometime-after", "at-end")  # fail only once the plan is over
_HAPPENING = re.compile(r"^Checking next happening \(time (\d+)\)", re.M)


def _seed_failed_step(text: str) -> int | None:
    """The seed's number, read straight off VAL's text: the last happening before "Plan failed to execute"."""
    times = _HAPPENING.findall(text.split("Plan failed to execute", 1)[0])
    return int(times[-1]) if times else None


def _differences(case_id: str, val: ValidationResult, native: ValidationResult) -> list[str]:
    fields = ["label", "failed_step", "violation_state_index"]
    if val.label in GOAL_LABELS:
        fields += ["goals_satisfied", "goals_total"]
    return [f"{case_id}: {f} VAL={getattr(val, f)!r} native={getattr(native, f)!r}"
            for f in fields if getattr(val, f) != getattr(native, f)]


def _raw_text(domain: Path, problem: Path, plan_dir: Path, names: list[str]) -> list[str | None]:
    """VAL's text for each raw plan file, one call, split per plan (None for all when the split fails)."""
    proc = subprocess.run([str(find_validate_binary()), "-v", str(domain), str(problem), *names], cwd=plan_dir,
                          capture_output=True, timeout=60)
    return split_segments(proc.stdout.decode("utf-8", errors="replace"), names) or [None] * len(names)


def _raw_val(domain: Path, problem: Path, plan_dir: Path, names: list[str]) -> list[ValidationResult | None]:
    """VAL's own reading of the raw plan files (timestamps, comments, upper case)."""
    return [None if s is None else classify_val_output(s) for s in _raw_text(domain, problem, plan_dir, names)]


def _built_differences(case: DiffCase, result: ValidationResult) -> list[str]:
    """What a validator got wrong on a case built to break in a known state."""
    want = (case.expected_label, case.expected_failed_step, case.expected_state_index)
    got = (result.label.value, result.failed_step, result.violation_state_index)
    diffs = [] if got == want else [f"{case.case_id}: {result.validator} (label, failed_step, state) {got}, "
                                    f"built as {want}"]
    if result.label is Label.GOAL_NOT_SATISFIED and result.goals_satisfied != result.goals_total:
        diffs.append(f"{case.case_id}: {result.validator} counts unsatisfied goals on a plan that reaches them")
    return diffs


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
    built = Counter((c.domain, c.kind.removeprefix("built-")) for c in cases if c.kind.startswith("built-"))
    for domain in {c.domain for c in cases}:
        for kind in (*SAFETY_KINDS, *END_KINDS):
            assert built[domain, kind] > 0, (domain, kind)
    states = {c.expected_state_index for c in cases if c.kind.startswith("built-")}
    assert {0, 1, 2, 3} <= states  # the initial state and later ones


def test_native_agrees_with_val_on_generated_cases(corpus):
    root, cases, problems = corpus
    val, native = ValValidator(timeout_s=30), NativeValidator()
    by_problem: dict[str, list[DiffCase]] = defaultdict(list)
    for case in cases:
        by_problem[case.problem_text].append(case)
    diffs: list[str] = []
    labels: Counter = Counter()
    built: Counter = Counter()
    seed_checked = 0
    for ptext, group in by_problem.items():
        domain_file, problem_file = FIXTURES / group[0].domain / "domain.pddl", problems[ptext]
        plans = [parse_plan_text(c.plan_text, filename=c.case_id) for c in group]
        val_results = val.validate_many(domain_file, problem_file, plans)
        for case, plan, v in zip(group, plans, val_results, strict=True):
            n = native.validate(domain_file, problem_file, plan)
            labels[v.label] += 1
            assert v.label is not Label.VALIDATOR_ERROR, f"{case.case_id}: {v.error}"
            diffs += _differences(case.case_id, v, n)
            if case.expected_label is not None:
                diffs += _built_differences(case, v) + _built_differences(case, n)
                built[case.kind] += 1
            elif case.expected_failed_step is not None and v.failed_step != case.expected_failed_step:
                diffs.append(f"{case.case_id}: VAL failed_step {v.failed_step}, built to fail at "
                             f"{case.expected_failed_step}")
        # The seed's number straight off VAL's raw text, for every built mid-plan safety violation.
        safety = [c for c in group if c.expected_label == Label.SAFETY_CONSTRAINTS_VIOLATION.value]
        if safety:
            names = [f"{c.case_id}.plan" for c in safety]
            for name, c in zip(names, safety, strict=True):
                (root / name).write_text(c.plan_text)
            for c, text in zip(safety, _raw_text(domain_file, problem_file, root, names), strict=True):
                seed = None if text is None else _seed_failed_step(text)
                if seed != c.expected_failed_step:
                    diffs.append(f"{c.case_id}: VAL's text gives the seed {seed}, built to fail at "
                                 f"{c.expected_failed_step}")
                seed_checked += 1
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
    assert set(built) == {f"built-{k}" for k in (*SAFETY_KINDS, *END_KINDS)}, built
    assert seed_checked == sum(built[f"built-{k}"] for k in SAFETY_KINDS)


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
