"""Reward service: PDDL parsing and simulation, plan extraction, validators (VAL, native) and dense reward."""
