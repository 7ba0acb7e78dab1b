"""PDDL3 parser, immutable typed model, grounding, state simulator and trajectory-constraint monitors."""

from reward_service.pddl.errors import PddlError, PddlParseError, PddlSemanticError, PddlUnsupportedError
from reward_service.pddl.ground import GroundAction, Grounder
from reward_service.pddl.model import (
    Action,
    And,
    Atom,
    Constraint,
    ConstraintAnd,
    ConstraintForall,
    Domain,
    Effect,
    Equals,
    Exists,
    Forall,
    ForallEffect,
    Formula,
    IgnoredConstraint,
    Imply,
    Modal,
    Not,
    Or,
    Param,
    Predicate,
    Problem,
    When,
)
from reward_service.pddl.parse_domain import load_domain, parse_domain
from reward_service.pddl.parse_problem import load_problem, parse_problem
from reward_service.pddl.simulate import Outcome, Simulator

__all__ = [
    "Action", "And", "Atom", "Constraint", "ConstraintAnd", "ConstraintForall", "Domain", "Effect", "Equals",
    "Exists", "Forall", "ForallEffect", "Formula", "GroundAction", "Grounder", "IgnoredConstraint", "Imply",
    "Modal", "Not", "Or", "Outcome", "Param", "PddlError", "PddlParseError", "PddlSemanticError",
    "PddlUnsupportedError", "Predicate",
    "Problem", "Simulator", "When", "load_domain", "load_problem", "parse_domain", "parse_problem",
]
