"""Placement of the Ray roles: placement groups for the learner GPUs, the rollout engines and the reward workers.

    placement = build_run_placement(cfg)       # None for cluster.placement: none; else waits for the groups
    learner = create_learner_actor(..., num_gpus=placement.plan.learner_gpus_per_actor,
                                   scheduling_strategy=placement.learner_strategy(0))
    rollout = RolloutGroup(..., scheduling_strategies=[placement.rollout_strategy(i) for i in range(R)],
                           num_gpus_per_actor=placement.plan.rollout_gpus_per_actor)

`cluster.placement` picks the mode. disaggregated: the learner's GPUs form one STRICT_PACK group (one
bundle per GPU, all on one node, so data-parallel all-reduce stays on the node); rollout engines get
their own group, SPREAD over nodes or PACKed (`cluster.rollout_strategy`). colocated: learner worker i
and rollout engine i share GPU i (one bundle holds both; each asks for a fraction), for an engine
that sleeps while the learner trains. The plan also has a reward group (CPU bundles carrying one unit
of `reward.worker_resource`, e.g. reward_node) for the resource totals; a run does not reserve it
(`build_run_placement`), its reward workers ask for the custom resource directly.

The plan (`plan_placement`) is pure and used by learner.recipe_check; Ray is imported only inside
the functions that need it, so this module imports without a cluster.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

PlacementMode = Literal["disaggregated", "colocated"]
RolloutStrategy = Literal["SPREAD", "PACK", "STRICT_SPREAD", "STRICT_PACK"]


class PlacementError(RuntimeError):
    """The cluster cannot place what the config asks for; the message says what and what the cluster has."""


@dataclass(frozen=True)
class PlacementOptions:
    """Placement knobs; `placement_options(cfg)` reads them from cfg.cluster."""

    mode: PlacementMode = "disaggregated"
    rollout_strategy: RolloutStrategy = "SPREAD"
    learner_cpus_per_gpu: float | None = None  # CPUs per learner bundle; None = cluster.learner_num_cpus, else 1
    colocated_learner_gpu_fraction: float = 0.5  # colocated: the learner's share of the shared GPU
    timeout_s: float = 300.0  # how long to wait for the groups before failing (autoscaling clusters need minutes)
    name_prefix: str = "pddl-grpo"

    def __post_init__(self) -> None:
        if self.mode not in ("disaggregated", "colocated"):
            raise ValueError(f"placement mode must be 'disaggregated' or 'colocated', got {self.mode!r}")
        if self.rollout_strategy not in ("SPREAD", "PACK", "STRICT_SPREAD", "STRICT_PACK"):
            raise ValueError(f"rollout_strategy must be SPREAD, PACK, STRICT_SPREAD or STRICT_PACK, "
                             f"got {self.rollout_strategy!r}")
        if not 0 < self.colocated_learner_gpu_fraction < 1:
            raise ValueError(f"colocated_learner_gpu_fraction must be in (0, 1), got "
                             f"{self.colocated_learner_gpu_fraction}")
        if (self.learner_cpus_per_gpu is not None and self.learner_cpus_per_gpu <= 0) or self.timeout_s <= 0:
            raise ValueError("learner_cpus_per_gpu and timeout_s must be > 0")


_OPTION_FIELDS = {  # PlacementOptions field -> the ClusterConfig field it is read from
    "rollout_strategy": "rollout_strategy",
    "colocated_learner_gpu_fraction": "colocated_learner_gpu_fraction",
    "timeout_s": "placement_timeout_s",
}


def placement_options(cfg: Any) -> PlacementOptions:
    """Options from cfg.cluster (`placement`, `rollout_strategy`, ...). `placement: none` plans as disaggregated:
    plain actor options ask the cluster for the same totals, which is what learner.recipe_check compares."""
    given = {opt: getattr(cfg.cluster, name) for opt, name in _OPTION_FIELDS.items() if hasattr(cfg.cluster, name)}
    mode = getattr(cfg.cluster, "placement", "disaggregated")
    return PlacementOptions(mode="colocated" if mode == "colocated" else "disaggregated", **given)


def learner_num_gpus(cfg: Any) -> float:
    """GPUs of the learner: `learner.num_gpus` or `cluster.learner_num_gpus`, whichever the config has;
    with neither, 1 for a GPU recipe (vLLM engine or rollout GPUs) and 0 for a CPU one."""
    for section, name in ((cfg.learner, "num_gpus"), (cfg.cluster, "learner_num_gpus")):
        explicit = getattr(section, name, None)
        if explicit is not None:
            return float(explicit)
    gpu_recipe = cfg.rollout.engine == "vllm" or cfg.rollout.num_gpus_per_actor > 0
    return 1.0 if gpu_recipe else 0.0


def _learner_bundle_gpus(gpus: float) -> list[float]:
    """One bundle per learner worker: a (fraction of a) GPU for one worker, one whole GPU each for data parallel."""
    if gpus <= 1:
        return [gpus]
    if not float(gpus).is_integer():
        raise ValueError(f"learner GPUs above 1 must be a whole number (one per data-parallel worker), got {gpus:g}")
    return [1.0] * int(gpus)


@dataclass(frozen=True)
class GroupPlan:
    """One placement group: its bundles (Ray resource dicts) and strategy."""

    name: str
    bundles: tuple[dict[str, float], ...]
    strategy: str

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for bundle in self.bundles:
            for key, value in bundle.items():
                out[key] = out.get(key, 0.0) + value
        return out


@dataclass(frozen=True)
class PlacementPlan:
    """Every group of a run and what each learner / rollout actor asks for inside its bundle."""

    mode: PlacementMode
    groups: tuple[GroupPlan, ...]
    learner_gpus_per_actor: float
    rollout_gpus_per_actor: float
    rollout_cpus_per_actor: float
    learner_cpus_per_actor: float
    notes: tuple[str, ...] = field(default=())

    def group(self, name: str) -> GroupPlan:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"no placement group {name!r} in a {self.mode} plan (groups: {[g.name for g in self.groups]})")

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for g in self.groups:
            for key, value in g.totals().items():
                out[key] = out.get(key, 0.0) + value
        return out


def _bundle(cpu: float, gpu: float = 0.0, **custom: float) -> dict[str, float]:
    bundle = {"CPU": float(cpu)}
    if gpu > 0:
        bundle["GPU"] = float(gpu)
    bundle.update({k: float(v) for k, v in custom.items()})
    return bundle


def plan_placement(cfg: Any, options: PlacementOptions | None = None) -> PlacementPlan:
    """The bundles and strategies `build_placement` would request for `cfg` (pure; raises on impossible shapes)."""
    opt = options or placement_options(cfg)
    n_learner = learner_num_gpus(cfg)
    ro, rw = cfg.rollout, cfg.reward
    reward_custom = {rw.worker_resource: 1.0} if rw.worker_resource else {}
    reward = GroupPlan("reward", tuple(_bundle(rw.cpus_per_worker, **reward_custom)
                                       for _ in range(rw.num_workers)), "SPREAD")
    lcpu = opt.learner_cpus_per_gpu
    if lcpu is None:
        lcpu = float(getattr(cfg.cluster, "learner_num_cpus", 1.0))
    workers = _learner_bundle_gpus(n_learner)
    if opt.mode == "colocated":
        if n_learner < 1 or not float(n_learner).is_integer():
            raise ValueError(f"colocated placement needs the learner on whole GPUs (learner GPUs >= 1), "
                             f"got {n_learner:g}")
        if ro.num_actors != len(workers):
            raise ValueError(f"colocated placement pairs one rollout engine with each learner GPU: "
                             f"rollout.num_actors ({ro.num_actors}) must equal the learner's GPUs ({len(workers)})")
        frac = opt.colocated_learner_gpu_fraction
        shared = GroupPlan("colocated", tuple(_bundle(lcpu + ro.num_cpus_per_actor, 1.0) for _ in workers),
                           "STRICT_PACK")
        return PlacementPlan("colocated", (shared, reward), frac, round(1.0 - frac, 6), ro.num_cpus_per_actor, lcpu)
    learner = GroupPlan("learner", tuple(_bundle(lcpu, g) for g in workers), "STRICT_PACK")
    rollout = GroupPlan("rollout", tuple(_bundle(ro.num_cpus_per_actor, ro.num_gpus_per_actor)
                                         for _ in range(ro.num_actors)), opt.rollout_strategy)
    return PlacementPlan("disaggregated", (learner, rollout, reward), workers[0],
                         ro.num_gpus_per_actor, ro.num_cpus_per_actor, lcpu)


class Placement:
    """Ready placement groups of one run and the scheduling strategy of each role's i-th actor."""

    def __init__(self, plan: PlacementPlan, groups: dict[str, Any]) -> None:
        self.plan = plan
        self.groups = groups  # name -> ray.util.placement_group.PlacementGroup

    def learner_strategy(self, i: int = 0) -> Any:
        return self._strategy("colocated" if self.plan.mode == "colocated" else "learner", i)

    def rollout_strategy(self, i: int) -> Any:
        return self._strategy("colocated" if self.plan.mode == "colocated" else "rollout", i)

    def reward_strategy(self, i: int) -> Any:
        return self._strategy("reward", i)

    def remove(self) -> None:
        """Give the reserved resources back (actors in the groups are killed by Ray)."""
        from ray.util.placement_group import remove_placement_group

        for pg in self.groups.values():
            remove_placement_group(pg)
        self.groups = {}

    def _strategy(self, name: str, i: int) -> Any:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundles = self.plan.group(name).bundles
        if not 0 <= i < len(bundles):
            raise IndexError(f"placement group {name!r} has {len(bundles)} bundles, asked for bundle {i}")
        return PlacementGroupSchedulingStrategy(
            placement_group=self.groups[name], placement_group_bundle_index=i,
            placement_group_capture_child_tasks=True,
        )


def build_placement(cfg: Any, options: PlacementOptions | None = None,
                    only: Collection[str] | None = None) -> Placement:
    """Create and wait for the placement groups of `cfg` (those named in `only`, default all); on timeout
    remove them and raise PlacementError."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    opt = options or placement_options(cfg)
    plan = plan_placement(cfg, opt)
    wanted = [g for g in plan.groups if g.bundles and (only is None or g.name in only)]
    groups = {
        g.name: placement_group(list(g.bundles), strategy=g.strategy, name=f"{opt.name_prefix}-{g.name}")
        for g in wanted
    }
    ready_refs = {g.ready(): name for name, g in groups.items()}
    done, pending = ray.wait(list(ready_refs), num_returns=len(ready_refs), timeout=opt.timeout_s)
    if pending:
        for pg in groups.values():
            remove_placement_group(pg)
        waiting = [plan.group(ready_refs[r]) for r in pending]
        what = "; ".join(
            f"'{g.name}': {len(g.bundles)} bundles {list(g.bundles)[:2]}{'...' if len(g.bundles) > 2 else ''} "
            f"{g.strategy}" for g in waiting
        )
        skip = ("node:", "memory", "object_store", "accelerator_type")
        have = {k: v for k, v in sorted(ray.cluster_resources().items()) if not k.startswith(skip)}
        raise PlacementError(
            f"placement groups not ready after {opt.timeout_s:g} s: {what}. The run needs {_totals(wanted)} in all, "
            f"the cluster has {have}. Lower cluster.learner_num_gpus, rollout.num_actors, "
            f"rollout.num_gpus_per_actor or reward.num_workers, or add nodes (cluster.yaml max_workers)."
        )
    return Placement(plan, groups)


def build_run_placement(cfg: Any) -> Placement | None:
    """The learner and rollout groups of a training run, or None for `cluster.placement: none`.

    Reward workers get no group: the pool restarts and resizes them, and a reserved bundle would hold
    the CPUs and `reward.worker_resource` units they need; they ask for that custom resource directly.
    """
    if getattr(cfg.cluster, "placement", "none") == "none":
        return None
    return build_placement(cfg, only=("learner", "rollout", "colocated"))


def learner_actor_options(cfg: Any, placement: Placement | None) -> dict[str, Any]:
    """num_cpus, num_gpus and scheduling_strategy of the learner actor (`create_learner_actor` keywords)."""
    if placement is None:
        return {"num_cpus": cfg.cluster.learner_num_cpus, "num_gpus": cfg.cluster.learner_num_gpus}
    return {"num_cpus": placement.plan.learner_cpus_per_actor, "num_gpus": placement.plan.learner_gpus_per_actor,
            "scheduling_strategy": placement.learner_strategy(0)}


def rollout_group_options(cfg: Any, placement: Placement | None) -> dict[str, Any]:
    """Per-actor scheduling strategies and GPU share of the rollout actors (`RolloutGroup` keywords)."""
    if placement is None:
        return {}
    return {"scheduling_strategies": [placement.rollout_strategy(i) for i in range(cfg.rollout.num_actors)],
            "num_gpus_per_actor": placement.plan.rollout_gpus_per_actor}


def placement_info() -> dict[str, Any]:
    """Where the calling actor runs: its Ray GPU ids, placement group id (None outside one), node and pid."""
    import os

    import ray

    ctx = ray.get_runtime_context()
    pg = ctx.get_placement_group_id()
    return {"gpu_ids": [str(i) for i in ray.get_gpu_ids()], "placement_group_id": pg,
            "node_id": ctx.get_node_id(), "pid": os.getpid()}


def _totals(groups: Sequence[GroupPlan]) -> dict[str, float]:
    out: dict[str, float] = {}
    for g in groups:
        for key, value in g.totals().items():
            out[key] = out.get(key, 0.0) + value
    return out
