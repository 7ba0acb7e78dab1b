"""Reward service: PDDL parsing and simulation, plan extraction, validators (VAL, native) and dense reward."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: `from reward_service import trl_reward` gives the trl_reward module, which is callable as TRL's
    # reward function (see reward_service/trl_reward.py); nothing heavy is imported with the package.
    if name == "trl_reward":
        import importlib

        return importlib.import_module("reward_service.trl_reward")
    raise AttributeError(f"module 'reward_service' has no attribute {name!r}")
