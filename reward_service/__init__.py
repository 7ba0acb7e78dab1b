"""Reward service: PDDL parsing and simulation, plan extraction, validators (VAL, native) and dense reward."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: `from reward_service import trl_reward` gives TRL's reward function from reward_service/trl.py, and
    # nothing heavy is imported with the package. No submodule is named trl_reward, so the name never
    # resolves to a module, whatever was imported before.
    if name == "trl_reward":
        import importlib

        return importlib.import_module("reward_service.trl").trl_reward
    raise AttributeError(f"module 'reward_service' has no attribute {name!r}")
