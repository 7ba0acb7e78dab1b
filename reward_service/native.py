"""NativeValidator: VAL's verdict computed in-process by the PDDL3 simulator, with parsed tasks cached
by content hash so a repeat of the same (domain, problem) costs no parse."""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from pathlib import Path

from reward_service.pddl import Domain, PddlError, Simulator, parse_domain, parse_problem
from reward_service.precheck import precheck
from reward_service.result import Label, Plan, ValidationResult


class _Lru(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class NativeValidator:
    """The in-process validator: same labels, failed steps and goal counts as `Validate -v` (VAL_NOTES.md)."""

    name = "native"

    def __init__(self, cache_size: int = 256) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self._files = _Lru(4 * cache_size)  # (path, mtime_ns, size) -> (digest, text)
        self._domains = _Lru(cache_size)  # (digest, filename) -> Domain
        self._tasks = _Lru(cache_size)  # (domain digest, problem digest) -> Simulator

    def _read(self, path: str | Path) -> tuple[str, str]:
        path = str(path)
        st = os.stat(path)

        def read() -> tuple[str, str]:
            data = Path(path).read_bytes()
            return hashlib.blake2b(data, digest_size=16).hexdigest(), data.decode("utf-8", errors="replace")

        return self._files.get_or((path, st.st_mtime_ns, st.st_size), read)

    def load(self, domain_file: str | Path, problem_file: str | Path) -> Simulator:
        """The parsed, indexed task; raises PddlError (file and line) or OSError."""
        d_hash, d_text = self._read(domain_file)
        p_hash, p_text = self._read(problem_file)
        domain: Domain = self._domains.get_or((d_hash, str(domain_file)),
                                              lambda: parse_domain(d_text, str(domain_file)))
        return self._tasks.get_or(
            (d_hash, p_hash), lambda: Simulator(domain, parse_problem(p_text, domain, str(problem_file))))

    def validate(self, domain_file: str | Path, problem_file: str | Path, plan: Plan) -> ValidationResult:
        start = time.perf_counter()
        try:
            sim = self.load(domain_file, problem_file)
        except (PddlError, OSError, UnicodeError) as exc:  # a broken task, not a bad plan
            return ValidationResult(Label.VALIDATOR_ERROR, len(plan), validator=self.name, error=str(exc),
                                    latency_ms=(time.perf_counter() - start) * 1e3)
        return self.validate_loaded(sim, plan, start)

    def validate_many(
        self, domain_file: str | Path, problem_file: str | Path, plans: list[Plan]
    ) -> list[ValidationResult]:
        return [self.validate(domain_file, problem_file, p) for p in plans]

    def validate_loaded(self, sim: Simulator, plan: Plan, start: float | None = None) -> ValidationResult:
        """Judge `plan` on an already loaded task.

        Goal counts as ValValidator reports them, for every label: goals_total is the problem's ground goal
        conjuncts; goals_satisfied is counted only where VAL prints goal advice (success, goal_not_satisfied,
        empty_plan) and is 0 otherwise (format error, precondition and safety violations).
        """
        start = time.perf_counter() if start is None else start
        n = len(plan)
        total = len(sim.goal_parts)

        def result(label: Label, **kw) -> ValidationResult:
            kw.setdefault("goals_total", total)
            return ValidationResult(label, n, validator=self.name,
                                    latency_ms=(time.perf_counter() - start) * 1e3, **kw)

        actions = sim.cached_steps(plan.steps)  # steps seen before passed precheck already
        if actions is None:
            reason = precheck(sim.domain, sim.problem, plan)
            if reason is not None:
                return result(Label.PLAN_FORMAT_ERROR, messages=(reason,))
            actions = sim.ground_steps(plan.steps)
        out = sim.run_ground(actions)
        if out.kind == "success":
            return result(Label.SUCCESS, goals_satisfied=out.goals_satisfied, goals_total=out.goals_total,
                          messages=("Plan valid",), metric_value=out.metric_value,
                          preferences_violated=out.preferences_violated)
        if out.kind == "undefined":  # VAL: "Attempt to access undefined numeric expression!", no verdict
            return result(Label.VALIDATOR_ERROR, error=f"step {out.failed_step}: {plan.steps[out.failed_step - 1]} "
                          "has a cost function without a value in :init")
        if n == 0:  # VAL "Plan size: 0" without success
            return result(Label.EMPTY_PLAN, goals_satisfied=out.goals_satisfied, goals_total=out.goals_total,
                          violated_constraint=out.violated, messages=("Plan size: 0", "Goal not satisfied"))
        if out.kind == "precondition":
            step = plan.steps[out.failed_step - 1]
            return result(Label.PRECONDITION_VIOLATION, failed_step=out.failed_step,
                          unsatisfied_preconditions=out.unsatisfied,
                          messages=(f"Plan failed because of unsatisfied precondition in: {step}",
                                    f"{step} has an unsatisfied precondition at time {out.failed_step}"))
        if out.kind == "safety":  # failed_step: the step VAL ran after the breaking state, as the seed reads it
            return result(Label.SAFETY_CONSTRAINTS_VIOLATION, failed_step=out.failed_step,
                          violation_state_index=out.state_index, violated_constraint=out.violated,
                          messages=(f"Constraint {out.violated} violated at {out.state_index}",
                                    f"Checking next happening (time {out.failed_step})",
                                    "Plan failed to execute"))
        msgs = ("Goal not satisfied",) if out.violated is None else (
            f"Constraint {out.violated} violated at end", "Goal not satisfied")
        return result(Label.GOAL_NOT_SATISFIED, goals_satisfied=out.goals_satisfied, goals_total=out.goals_total,
                      violated_constraint=out.violated, messages=msgs)
