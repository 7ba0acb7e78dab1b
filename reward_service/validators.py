"""make_validator: one place that turns a validator name ("val" | "native") into a Validator."""

from __future__ import annotations

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
