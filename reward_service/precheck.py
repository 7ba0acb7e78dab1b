"""Plan pre-check: the reason a plan is a format error (unknown action, arity, object, type) before any
validator runs it, so VAL never drops extra arguments, crashes on missing ones, or sees unknown names."""

from __future__ import annotations

from reward_service.pddl.model import Domain, Problem
from reward_service.result import Plan

MAX_REPORTED = 80  # characters of a bad step quoted in a reason; keeps reasons bounded for garbage input


def _quote(text: str) -> str:
    return text if len(text) <= MAX_REPORTED else text[:MAX_REPORTED] + "..."


def precheck(domain: Domain, problem: Problem, plan: Plan) -> str | None:
    """None when every step names a known action with the right number of known, well-typed objects;
    else the reason for the first bad step, e.g. "step 2: unknown action 'fly'". Linear in the plan."""
    actions = domain.action_index
    objects = problem.all_objects
    for k, step in enumerate(plan.steps, start=1):
        name = step.name.lower()
        action = actions.get(name)
        if action is None:
            return f"step {k}: unknown action '{_quote(name)}'"
        if len(step.args) != action.arity:
            return (f"step {k}: action '{name}' takes {action.arity} argument(s), got {len(step.args)}: "
                    f"{_quote(str(step))}")
        for param, arg in zip(action.params, step.args, strict=True):
            arg = arg.lower()
            obj_type = objects.get(arg)
            if obj_type is None:
                return f"step {k}: unknown object '{_quote(arg)}' in {_quote(str(step))}"
            if not domain.is_subtype(obj_type, param.type):
                return (f"step {k}: object '{arg}' of type '{obj_type}' does not fit parameter {param.name} "
                        f"- {param.type} of '{name}'")
    return None
