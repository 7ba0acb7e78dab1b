"""LearnerGroup: N data-parallel LearnerActors behind the one-learner interface the step loop uses.

    group = LearnerGroup(config, num_ranks=2, num_cpus=1, num_training_steps=1000)  # gloo on CPU, nccl on GPUs
    metrics = group.train_step(samples)                 # shards by tokens, all-reduces, every rank steps
    version_ref, state_ref = group.adapter_state_refs() # from rank 0, two object refs
    group.save(run_dir, step, extra); group.load(path)  # rank 0 writes; every rank loads

Rank 0 is named like the single learner ("learner"), rank i "learner-i". With one rank no process
group is built and every call goes straight to the one actor, as before data parallelism existed.
The ranks must see the same disk for `load` (the learner placement group is STRICT_PACK: one node).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import ray

from actors.learner import create_learner_actor
from actors.placement import Placement, learner_actor_options
from learner.config.learner import LearnerConfig, data_parallel_ranks
from learner.grpo.data_parallel import merge_rank_metrics, sample_cost, shard_samples

if TYPE_CHECKING:
    from learner.config.run import RunConfig

log = logging.getLogger(__name__)


def rank_name(name: str, rank: int) -> str:
    """Ray actor name of `rank`: the group's name for rank 0, `name-rank` for the others."""
    return name if rank == 0 else f"{name}-{rank}"


class LearnerGroup:
    """Starts `num_ranks` LearnerActors, joins them into one torch.distributed group, fans every call out."""

    def __init__(
        self,
        config: LearnerConfig,
        num_ranks: int = 1,
        num_cpus: float = 1,
        num_gpus: float = 0,
        num_training_steps: int | None = None,
        name: str = "learner",
        scheduling_strategy: Callable[[int], Any] | None = None,
        backend: str | None = None,
        timeout_s: float = 1800.0,
    ) -> None:
        """`num_cpus` / `num_gpus` are per rank; `scheduling_strategy(rank)` gives a rank its Ray strategy
        (e.g. `Placement.learner_strategy`, one bundle per rank); `backend` None = gloo on CPU, nccl on CUDA."""
        if num_ranks < 1:
            raise ValueError(f"num_ranks must be at least 1, got {num_ranks}")
        self.config = config
        # every rank's strategy first: a placement with too few bundles fails before any actor starts
        strategies = [scheduling_strategy(rank) if scheduling_strategy else None for rank in range(num_ranks)]
        self.actors = [
            create_learner_actor(config, num_cpus=num_cpus, num_gpus=num_gpus, num_training_steps=num_training_steps,
                                 name=rank_name(name, rank), scheduling_strategy=strategy)
            for rank, strategy in enumerate(strategies)
        ]
        self.backend: str | None = None
        if num_ranks > 1 and config.loss_type == "bnpo":
            log.warning("loss_type bnpo averages micro-batch token means: with %d ranks it averages over every "
                        "rank's micro-batches (as TRL under DDP), not one learner's micro-batches", num_ranks)
        if num_ranks > 1:
            try:
                self.backend = self._join(backend, timeout_s)
            except BaseException:
                self.shutdown()
                raise

    @classmethod
    def from_run_config(cls, cfg: RunConfig, learner_cfg: LearnerConfig | None = None,
                        placement: Placement | None = None) -> LearnerGroup:
        """The learner group of a RunConfig: `data_parallel_ranks` ranks with the learner actor options of
        `learner_actor_options`; without a placement each rank gets cluster.learner_num_cpus CPUs and its share
        of cluster.learner_num_gpus (one GPU each above 1), with one rank i runs in learner bundle i."""
        learner_cfg = learner_cfg or cfg.learner
        if learner_cfg.max_completion_length is None:  # dr_grpo's denominator: the rollout's token budget
            learner_cfg = learner_cfg.model_copy(update={"max_completion_length": cfg.rollout.max_new_tokens})
        ranks = data_parallel_ranks(learner_cfg.data_parallel_size, cfg.cluster.learner_num_gpus)
        opts = learner_actor_options(cfg, placement)
        strategy = None if placement is None else placement.learner_strategy
        if placement is not None:
            name = "colocated" if placement.plan.mode == "colocated" else "learner"
            bundles = len(placement.plan.group(name).bundles)
            if bundles < ranks:
                raise ValueError(f"cluster.placement: {placement.plan.mode} reserves {bundles} learner bundle(s), one "
                                 f"per learner GPU, for {ranks} data-parallel ranks; CPU ranks need cluster.placement: "
                                 f"none")
        gpus = opts["num_gpus"] if placement is not None else opts["num_gpus"] / ranks
        return cls(learner_cfg, num_ranks=ranks, num_cpus=opts["num_cpus"], num_gpus=gpus,
                   num_training_steps=cfg.max_steps, scheduling_strategy=strategy)

    def _join(self, backend: str | None, timeout_s: float) -> str:
        address, port = ray.get(self.actors[0].node_address.remote())
        world = len(self.actors)
        used = ray.get([a.init_data_parallel.remote(address, port, rank, world, backend, timeout_s)
                        for rank, a in enumerate(self.actors)])
        return used[0]

    @property
    def size(self) -> int:
        """Number of data-parallel ranks."""
        return len(self.actors)

    @property
    def head(self) -> Any:
        """Rank 0's actor handle: it serves the adapter weights and writes checkpoints."""
        return self.actors[0]

    def shard(self, samples: Sequence) -> list[list]:
        """The per-rank shards `train_step` sends (GRPO groups whole, token-balanced)."""
        return shard_samples(samples, self.size, self.config.max_prompt_length)

    def train_step(self, samples: Sequence) -> dict[str, float]:
        """One optimizer step of the whole group over `samples` (list[TrainSample]); merged metrics.

        With N ranks each gets one shard, and the merged metrics add `data_parallel/ranks` and
        `data_parallel/token_imbalance` (largest shard's prompt + completion tokens / the mean; 1 = even).
        """
        if self.size == 1:
            return ray.get(self.head.train_step.remote(list(samples)))
        if not samples:
            raise ValueError("a train step needs at least one sample")
        shards = self.shard(samples)
        per_rank = ray.get([a.train_step.remote(s) for a, s in zip(self.actors, shards, strict=True)])
        metrics = merge_rank_metrics(per_rank)
        costs = [sum(sample_cost(s, self.config.max_prompt_length) for s in shard) for shard in shards]
        mean = sum(costs) / len(costs)
        metrics["data_parallel/ranks"] = float(self.size)
        metrics["data_parallel/token_imbalance"] = max(costs) / mean if mean > 0 else 1.0
        return metrics

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until every rank has loaded its model (its constructor returned); a failed load raises here."""
        ray.get([a.version.remote() for a in self.actors], timeout=timeout_s)

    def adapter_state_refs(self) -> tuple[ray.ObjectRef, ray.ObjectRef]:
        """(version ref, LoRA state ref) from rank 0, so the tensors can go to rollout actors without the driver."""
        version_ref, state_ref = self.head.get_adapter_state.options(num_returns=2).remote()
        return version_ref, state_ref

    def adapter_state_handle(self) -> tuple[int, ray.ObjectRef]:
        """(version, LoRA state ref) of rank 0: the driver reads the version, the tensors stay in the object store."""
        version_ref, state_ref = self.adapter_state_refs()
        return ray.get(version_ref), state_ref

    def get_adapter_state(self) -> tuple[int, dict]:
        """(version, LoRA weights as CPU tensors) of rank 0."""
        return ray.get(self.head.get_adapter_state.remote())

    def version(self) -> int:
        """Optimizer steps taken (rank 0's; every rank steps together)."""
        return ray.get(self.head.version.remote())

    def save(self, run_dir: str, step: int, extra: dict[str, Any] | None = None,
             save_total_limit: int | None = None) -> str:
        """Checkpoint written by rank 0 (the ranks hold identical weights, optimizer and scheduler state)."""
        return ray.get(self.head.save.remote(run_dir, step, extra, save_total_limit))

    def load(self, path: str, run_dir: str | None = None) -> dict[str, Any] | None:
        """Every rank restores the checkpoint; returns rank 0's result (see LearnerActor.load)."""
        results = ray.get([a.load.remote(path, run_dir) for a in self.actors])
        versions = {None if r is None else r["version"] for r in results}
        if len(versions) != 1:
            raise RuntimeError(f"learner ranks restored different checkpoints from {path!r}: versions {versions}")
        return results[0]

    def max_weight_difference(self) -> float:
        """Largest absolute difference of any LoRA weight between rank 0 and another rank (0.0: in sync)."""
        states = ray.get([a.get_adapter_state.remote() for a in self.actors])
        _, ref = states[0]
        worst = 0.0
        for version, state in states[1:]:
            if version != states[0][0] or set(state) != set(ref):
                return float("inf")
            worst = max([worst, *(float((state[k] - ref[k]).abs().max()) for k in ref)])
        return worst

    def shutdown(self) -> None:
        """Leave the process group and kill every rank."""
        if self.backend is not None:
            ray.wait([a.leave_data_parallel.remote() for a in self.actors], num_returns=len(self.actors), timeout=30)
            self.backend = None
        for actor in self.actors:
            ray.kill(actor)
