"""Grippers (typed; move/pick/drop, two grippers per robot): balls to other rooms; `always (forall (not))`."""

from __future__ import annotations

import random
import re

from reward_service.pddl.model import Atom, Forall, Modal, Not, Param, Problem
from sampler.datagen.domains.base import (
    DomainGenerator,
    DomainSizeError,
    Params,
    action,
    domain,
    lit,
    problem,
)

R, FROM, TO, OBJ, ROOM, G = "?r", "?from", "?to", "?obj", "?room", "?g"
FAMILY = "always-forall-not"

DOMAIN = domain(
    name="gripper-strips",
    requirements=(":strips", ":typing", ":equality", ":constraints"),
    types=(("room", "object"), ("ball", "object"), ("gripper", "object"), ("robot", "object")),
    predicates=(
        ("at-robby", ((R, "robot"), ("?x", "room"))),
        ("at", ((OBJ, "ball"), ("?x", "room"))),
        ("free", ((R, "robot"), (G, "gripper"))),
        ("carry", ((R, "robot"), (OBJ, "ball"), (G, "gripper"))),
    ),
    actions=(
        action("move", ((R, "robot"), (FROM, "room"), (TO, "room")), pre=(lit("at-robby", R, FROM),),
               add=(lit("at-robby", R, TO),), delete=(lit("at-robby", R, FROM),), neq=((FROM, TO),)),
        action("pick", ((R, "robot"), (OBJ, "ball"), (ROOM, "room"), (G, "gripper")),
               pre=(lit("at", OBJ, ROOM), lit("at-robby", R, ROOM), lit("free", R, G)),
               add=(lit("carry", R, OBJ, G),), delete=(lit("at", OBJ, ROOM), lit("free", R, G))),
        action("drop", ((R, "robot"), (OBJ, "ball"), (ROOM, "room"), (G, "gripper")),
               pre=(lit("carry", R, OBJ, G), lit("at-robby", R, ROOM)),
               add=(lit("at", OBJ, ROOM), lit("free", R, G)), delete=(lit("carry", R, OBJ, G),)),
    ),
)


class Grippers(DomainGenerator):
    name = "grippers"
    domain = DOMAIN
    param_names = ("n", "r", "o")
    name_pattern = re.compile(r"grippers-n(?P<n>\d+)-r(?P<r>\d+)-o(?P<o>\d+)-s(?P<seed>\d+)")
    families = (FAMILY,)

    def problem_name(self, params: Params, seed: int) -> str:
        return f"grippers-n{params['n']}-r{params['r']}-o{params['o']}-s{seed}"

    def check_params(self, params: Params) -> None:
        self._check_keys(params)
        if params["n"] < 1 or params["o"] < 1:
            raise DomainSizeError(f"grippers: robots n={params['n']} and balls o={params['o']} must be at least 1")
        if params["r"] < 2:
            raise DomainSizeError(f"grippers: rooms r={params['r']} must be at least 2 (balls must move)")

    def sample(self, rng: random.Random, params: Params, constrained: bool) -> Problem:
        robots = [f"robot{i}" for i in range(1, params["n"] + 1)]
        rooms = [f"room{i}" for i in range(1, params["r"] + 1)]
        balls = [f"ball{i}" for i in range(1, params["o"] + 1)]
        grippers = [g for i in range(1, params["n"] + 1) for g in (f"rgripper{i}", f"lgripper{i}")]
        robot_at = {r: rng.choice(rooms) for r in robots}
        ball_at = {b: rng.choice(rooms) for b in balls}
        ball_goal = {b: rng.choice([x for x in rooms if x != ball_at[b]]) for b in balls}
        init = [("at-robby", r, robot_at[r]) for r in robots]
        init += [("free", r, g) for i, r in enumerate(robots, 1) for g in (f"rgripper{i}", f"lgripper{i}")]
        init += [("at", b, ball_at[b]) for b in balls]
        goal = [("at", b, ball_goal[b]) for b in balls]
        cons = ()
        if constrained:
            busy = set(robot_at.values()) | set(ball_at.values()) | set(ball_goal.values())
            idle = [x for x in rooms if x not in busy]
            kind = rng.random()
            if idle and kind < 0.4:
                # no robot may ever enter a room
                room = rng.choice(idle)
                cons = (Modal("always", Forall((Param(R, "robot"),), Not(Atom("at-robby", (R, room))))),)
            elif len(robots) >= 2 and kind < 0.7:
                # one robot may never carry one ball
                r, b = rng.choice(robots), rng.choice(balls)
                cons = (Modal("always", Forall((Param(G, "gripper"),), Not(Atom("carry", (r, b, G))))),)
            else:
                # one gripper may never hold any ball
                i = rng.randrange(1, len(robots) + 1)
                g = rng.choice((f"rgripper{i}", f"lgripper{i}"))
                cons = (Modal("always", Forall((Param("?b", "ball"),), Not(Atom("carry", (f"robot{i}", "?b", g))))),)
        objects = tuple((x, "robot") for x in robots) + tuple((x, "room") for x in rooms)
        objects += tuple((x, "ball") for x in balls) + tuple((x, "gripper") for x in grippers)
        return problem(DOMAIN, objects, tuple(init), tuple(goal), cons)
