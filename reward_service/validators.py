"""make_validator and choose_validator: a validator by name, and which one a task needs under `validator: auto`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reward_service.result import Validator

VALIDATOR_NAMES = ("val", "native")


def make_validator(name: Literal["val", "native"], **opts: Any) -> Validator:
    """A validator by name; `opts` go to its constructor (e.g. timeout_s, memory_mb, binary for "val")."""
    if name == "val":
        from reward_service.val import ValValidator

        return ValValidator(**opts)
    if name == "native":
        # Imported here so that either validator works on a machine where the other cannot load.
        from reward_service.native import NativeValidator

        return NativeValidator(**opts)
    raise ValueError(f"unknown validator {name!r}; choose one of {', '.join(VALIDATOR_NAMES)}")


@dataclass(frozen=True)
class ValidatorChoice:
    """Which validator scores one task (domain + problem) under `auto`, and why."""

    validator: Literal["val", "native"]
    reason: str  # "parses with supported requirements only", or the PddlUnsupportedError text (file:line)
    requirement: str | None = None  # the requirement the native validator does not simulate (VAL chosen)


NATIVE_REASON = "parses with supported requirements only"


def choice_from_error(err: Exception) -> ValidatorChoice | None:
    """VAL for a task whose parse raised PddlUnsupportedError; None for any other error (the task is broken)."""
    from reward_service.pddl import PddlUnsupportedError

    if isinstance(err, PddlUnsupportedError):
        return ValidatorChoice("val", str(err), err.requirement or "a feature")
    return None


def choose_validator(domain_file: str | Path, problem_file: str | Path) -> ValidatorChoice:
    """native when the task parses with only what the native validator simulates, VAL when the parser
    refuses a feature (PddlUnsupportedError); any other PddlError / OSError propagates (a broken task)."""
    from reward_service.pddl import PddlError, load_domain, load_problem

    try:
        load_problem(problem_file, load_domain(domain_file))
    except PddlError as err:
        choice = choice_from_error(err)
        if choice is None:
            raise
        return choice
    return ValidatorChoice("native", NATIVE_REASON)


def task_key(domain_file: str | Path, problem_file: str | Path, root: str | Path) -> str:
    """The key of RewardConfig.task_validators: both paths relative to the PDDL root, as the records name them."""
    base = os.path.normpath(os.path.abspath(root))

    def rel(path: str | Path) -> str:
        return os.path.relpath(os.path.normpath(os.path.join(base, path)), base)

    return f"{rel(domain_file)} :: {rel(problem_file)}"
