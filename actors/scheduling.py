"""Start-up deadlines for Ray actors: an actor Ray cannot place fails with what it needs and what the cluster has.

    wait_placed(timeout_s=300, explain=lambda: check_resources(cfg, ray.cluster_resources()))

Ray keeps an actor whose resources no node offers (a `reward_node` resource nobody declared, more CPUs than
`cluster.num_cpus`) in PENDING_CREATION forever, and every `ray.get` on it waits forever with no output.
`wait_placed` waits until no actor of this job is pending, or raises `ActorsNotPlacedError` naming the actors,
what is missing and how to fix it. A model that loads for minutes does not count: a placed actor is no
longer pending, whether or not its constructor has finished.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class ActorsNotPlacedError(RuntimeError):
    """Actors that Ray could not place before their deadline; the message says what is missing."""


def pending_actors() -> dict[str, str] | None:
    """Name (or class) -> state of this job's actors still waiting to be placed; None where Ray cannot tell."""
    import ray

    try:
        from ray._private import state  # the GCS actor table: works without the dashboard

        job = ray.get_runtime_context().get_job_id()
        table = state.actors()
    except Exception:  # a private API: if it moves, the deadline falls back to the callers' own waits
        log.debug("cannot read Ray's actor table", exc_info=True)
        return None
    out = {}
    for actor in table.values():
        if actor.get("JobID") == job and waits_for_resources(actor):
            out[actor.get("Name") or actor.get("ActorClassName", "?")] = actor["State"]
    return out


def waits_for_resources(actor: Mapping) -> bool:
    """Whether a row of Ray's actor table is an actor that no worker process runs yet (no node took it).

    Ray reports PENDING_CREATION both before placement and while the constructor runs; only a placed actor has
    a process id. (Its address is no sign: on a multi-node cluster a lease queued at a raylet has one.)
    """
    state = actor.get("State")
    if state == "DEPENDENCIES_UNREADY":
        return True
    return state == "PENDING_CREATION" and not actor.get("Pid")


def actor_row(actor_id: str) -> Mapping | None:
    """The GCS actor-table row of actor `actor_id` (hex): State, Pid, Address.NodeID...; None where Ray cannot tell."""
    try:
        from ray._private import state

        row = state.actors(actor_id=actor_id)
    except Exception:  # a private API, as in pending_actors
        log.debug("cannot read Ray's actor table", exc_info=True)
        return None
    return row or None


def actor_placed(actor_id: str) -> bool | None:
    """Whether a worker process runs actor `actor_id` (hex), its constructor maybe still; None: Ray cannot tell."""
    row = actor_row(actor_id)
    if row is None:
        return None
    return row.get("State") != "DEAD" and not waits_for_resources(row)


def node_alive(node_id: str) -> bool | None:
    """Whether Ray's GCS holds node `node_id` (hex) alive; None where it does not know that node."""
    import ray

    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            return bool(node.get("Alive"))
    return None


def shortfall(need: Mapping[str, float], total: Mapping[str, float], free: Mapping[str, float]) -> list[str]:
    """Why one actor that needs `need` cannot be placed, given the cluster's `total` and `free` resources."""
    out = []
    for key, amount in sorted(need.items()):
        if amount <= 0:
            continue
        have, spare = float(total.get(key, 0.0)), float(free.get(key, 0.0))
        if have < amount:
            out.append(f"it needs {amount:g} {key!r}, the cluster has {have:g} in all")
        elif spare < amount:
            out.append(f"it needs {amount:g} {key!r}, {spare:g} of the cluster's {have:g} are free "
                       "(the rest is held by other actors)")
    return out


def resources_now() -> tuple[dict[str, float], dict[str, float]]:
    """The cluster's total and free CPU/GPU/custom resources (node and memory entries left out)."""
    import ray

    def keep(resources: Mapping[str, float]) -> dict[str, float]:
        return {k: float(v) for k, v in resources.items()
                if not k.startswith("node:") and k not in ("memory", "object_store_memory")}

    return keep(ray.cluster_resources()), keep(ray.available_resources())


def wait_placed(
    timeout_s: float, explain: Callable[[], list[str]] | None = None, poll_s: float = 1.0,
    what: str = "the run's actors",
) -> None:
    """Return once no actor of this job waits for resources; raise ActorsNotPlacedError after `timeout_s`.

    `explain` gives the run's own account of what it asks for (learner.recipe_check.check_resources).
    """
    deadline = time.monotonic() + timeout_s
    warned = False
    while True:
        pending = pending_actors()
        if not pending:  # none pending, or Ray cannot tell (then the callers' own deadlines apply)
            return
        if time.monotonic() >= deadline:
            total, free = resources_now()
            reasons = explain() if explain is not None else []
            raise ActorsNotPlacedError(
                f"{what} were not all placed after {timeout_s:g} s: {', '.join(sorted(pending))} still wait for "
                f"resources. " + (" ".join(f"{r}." for r in reasons) + " " if reasons else "")
                + f"The cluster has {total} in all, {free} free. Add nodes with the missing resources, or ask "
                "for less (cluster.num_cpus, reward.num_workers, reward.cpus_per_worker, reward.worker_resource)."
            )
        if not warned and time.monotonic() > deadline - timeout_s + 10 * poll_s:
            log.warning("waiting for Ray to place %s (up to %g s)", ", ".join(sorted(pending)), timeout_s)
            warned = True
        time.sleep(poll_s)
