"""LearnerActor: the Ray role that holds the LoRA policy, takes GRPO steps and hands out adapter weights.

    learner = create_learner_actor(config, num_cpus=1)         # named "learner" on the dashboard
    metrics = ray.get(learner.train_step.remote(samples))      # list[TrainSample]
    version, state = ray.get(learner.get_adapter_state.remote())

Several ranks form a data-parallel group through `node_address` (rank 0) and `init_data_parallel`
(every rank at once); actors/learner_group.py drives that.
"""

from __future__ import annotations

import os
from typing import Any

import ray

from learner.config.learner import LearnerConfig

# Set before torch starts its OpenMP pool: busy-waiting threads of several actors on few cores
# starve each other (generation fell from 5.6k to 86 tokens/s under a competing process).
_WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def _assigned_cpus() -> int:
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    except RuntimeError:  # Ray not initialised in this process
        cpus = 1.0
    return max(1, int(cpus))


@ray.remote
class LearnerActor:
    """Holds the policy (PEFT LoRA) and its optimizer; one train_step is one optimizer step."""

    def __init__(self, config: LearnerConfig | dict, num_training_steps: int | None = None) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.config = config if isinstance(config, LearnerConfig) else LearnerConfig.model_validate(config)
        from learner.policy.unsloth_first import import_unsloth_first

        import_unsloth_first(self.config)  # before learner.policy.model imports transformers and peft
        import torch

        from learner.grpo.train_step import GRPOTrainerCore
        from learner.policy.model import load_policy

        self.num_threads = _assigned_cpus()
        torch.set_num_threads(self.num_threads)
        torch.manual_seed(self.config.seed)
        self.model, self.tokenizer = load_policy(self.config)
        self.core = GRPOTrainerCore(self.model, self.tokenizer, self.config, num_training_steps)

    def train_step(self, samples: list) -> dict[str, float]:
        """One optimizer step over `samples` (list[TrainSample]); the adapter version goes up by one.

        In a data-parallel group `samples` is this rank's shard (maybe empty) and every rank must call it.
        """
        return self.core.step(samples)

    def node_address(self) -> tuple[str, int]:
        """(IP of this actor's node, a TCP port free there now): the rendezvous of a data-parallel group."""
        from learner.grpo.data_parallel import free_port

        return ray.util.get_node_ip_address(), free_port()

    def init_data_parallel(self, address: str, port: int, rank: int, world_size: int,
                           backend: str | None = None, timeout_s: float = 1800.0) -> str:
        """Join the group at tcp://address:port as `rank`, take rank 0's LoRA weights, sync gradients from now on.

        Every rank must call this at the same time (it blocks until all have joined). Returns the backend
        (gloo on CPU, nccl when CUDA is visible, unless `backend` names one).
        """
        from learner.grpo.data_parallel import GradientSync, init_process_group

        used = init_process_group(address, port, rank, world_size, backend, timeout_s)
        sync = GradientSync()
        sync.broadcast_parameters(self.core.params, src=0)  # identical start even if initialisation differed
        self.core.set_gradient_sync(sync)
        return used

    def leave_data_parallel(self) -> None:
        """Stop syncing and leave the process group (before the actor is killed)."""
        from learner.grpo.data_parallel import destroy_process_group

        self.core.set_gradient_sync(None)
        destroy_process_group()

    def get_adapter_state(self) -> tuple[int, dict]:
        """(version, LoRA weights as CPU tensors) for the rollout actors."""
        from learner.policy.model import get_adapter_state

        return self.core.version, get_adapter_state(self.model)

    def version(self) -> int:
        """Optimizer steps taken so far (the version of the current adapter)."""
        return self.core.version

    def placement_info(self) -> dict[str, Any]:
        """GPU ids, placement group id, node and pid of this actor (actors.placement.placement_info)."""
        from actors.placement import placement_info

        return placement_info()

    def save(self, run_dir: str, step: int, extra: dict[str, Any] | None = None,
             save_total_limit: int | None = None) -> str:
        """Checkpoint adapter, optimizer, scheduler, RNG and `extra` to `run_dir/checkpoints/step-{step}`."""
        from learner.policy.checkpoint import save_checkpoint

        path = save_checkpoint(run_dir, step, self.model, self.core.optimizer, self.core.scheduler,
                               extra=extra, version=self.core.version, save_total_limit=save_total_limit)
        return str(path)

    def load(self, path: str, run_dir: str | None = None) -> dict[str, Any] | None:
        """Restore a checkpoint (or "auto": the newest in run_dir); None when "auto" finds none.

        Returns the `extra` dict given to `save`, with "step" and "version" filled in when it lacks them.
        """
        from learner.policy.checkpoint import load_checkpoint

        loaded = load_checkpoint(path, self.model, self.core.optimizer, self.core.scheduler, run_dir=run_dir)
        if loaded is None:
            return None
        self.core.version = loaded.version
        result = dict(loaded.extra)
        result.setdefault("step", loaded.step)
        result.setdefault("version", loaded.version)
        result.setdefault("checkpoint_path", str(loaded.path))  # "auto" may have fallen back to an older one
        return result


def create_learner_actor(
    config: LearnerConfig, num_cpus: float = 1, num_gpus: float = 0, num_training_steps: int | None = None,
    name: str = "learner", scheduling_strategy: Any = None,
) -> Any:
    """Start the named LearnerActor with passive OpenMP threads and as many torch threads as its CPUs.

    `scheduling_strategy` (e.g. a PlacementGroupSchedulingStrategy for one bundle) is passed to Ray as is.
    """
    options: dict[str, Any] = dict(name=name, num_cpus=num_cpus, num_gpus=num_gpus, max_concurrency=1,
                                   runtime_env={"env_vars": dict(_WORKER_ENV)})
    if scheduling_strategy is not None:
        options["scheduling_strategy"] = scheduling_strategy
    return LearnerActor.options(**options).remote(config, num_training_steps)
