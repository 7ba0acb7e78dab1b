"""IterableDataset views of a BalancedBatchStream for TRL's GRPOTrainer (prompts in learner-step order).

TRL counts `per_device_train_batch_size` in completions: its RepeatSampler (or, for iterable
data, `repeat_iterable_dataset`) repeats every prompt `num_generations` times, and one
generation batch of `generation_batch_size // num_generations` prompts serves
`steps_per_generation * num_iterations` micro-steps, i.e. that many / gradient_accumulation_steps
optimizer steps. The seed's stream ignored this and advanced 4x too slowly. These views yield
each prompt once, one whole stream batch per generation batch, and label generation k with the
learner step it starts (k * optimizer steps per generation), so the curriculum follows learner
steps and every optimizer step sees one balanced batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch.utils.data

from sampler.stream import BalancedBatchStream


class SamplerIterableDataset(torch.utils.data.IterableDataset):
    """Yields stream.batch(start), batch(start + stride), ... one prompt at a time, forever or until stop.

    stride is the number of learner optimizer steps one yielded batch serves (1 unless TRL
    reuses a generation batch for several optimizer steps).
    """

    def __init__(self, stream: BalancedBatchStream, *, start_step: int = 0, stop_step: int | None = None,
                 stride: int = 1) -> None:
        super().__init__()
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.stream, self.start_step, self.stop_step, self.stride = stream, start_step, stop_step, stride

    def steps(self) -> Iterator[int]:
        step = self.start_step
        while self.stop_step is None or step < self.stop_step:
            yield step
            step += self.stride

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.num_workers > 1:
            # Several workers would each replay the stream and interleave it, splitting batches.
            raise RuntimeError("SamplerIterableDataset must be read with num_workers <= 1")
        for step in self.steps():
            yield from self.stream.batch(step)


def trl_steps_per_generation(args: Any) -> int:
    """Learner optimizer steps served by one TRL generation batch; ValueError when not a whole number."""
    micro_steps = args.steps_per_generation * args.num_iterations
    if micro_steps % args.gradient_accumulation_steps:
        raise ValueError(
            f"steps_per_generation ({args.steps_per_generation}) x num_iterations ({args.num_iterations}) must be a "
            f"multiple of gradient_accumulation_steps ({args.gradient_accumulation_steps}) so that each generation "
            "batch serves whole optimizer steps"
        )
    return micro_steps // args.gradient_accumulation_steps


def check_trl_args(stream: BalancedBatchStream, args: Any) -> int:
    """Check a GRPOConfig against the stream; returns the stride (optimizer steps per generation batch)."""
    if args.shuffle_dataset:
        raise ValueError("GRPOConfig.shuffle_dataset must be False: TRL's buffered shuffle would mix the "
                         "sampler's batches and break per-step domain balance (the sampler already shuffles)")
    prompts = args.generation_batch_size // args.num_generations
    if prompts != stream.cfg.batch_size:
        raise ValueError(
            f"sampler batch_size ({stream.cfg.batch_size}) must equal TRL's prompts per generation batch: "
            f"generation_batch_size ({args.generation_batch_size}) / num_generations ({args.num_generations}) "
            f"= {prompts}; TRL counts per_device_train_batch_size in completions, not prompts"
        )
    world = getattr(args, "world_size", 1)
    if world != stream.cfg.data_parallel_size:
        raise ValueError(f"sampler data_parallel_size ({stream.cfg.data_parallel_size}) must equal the number of "
                         f"training processes ({world}) so that each process's slice is balanced")
    return trl_steps_per_generation(args)


def trl_train_dataset(stream: BalancedBatchStream, args: Any, *, start_step: int = 0) -> Any:
    """A `datasets.IterableDataset` for `GRPOTrainer(train_dataset=...)` that follows learner steps.

    TRL 1.x accepts only `datasets` types, so this wraps SamplerIterableDataset in one. Set
    `shuffle_dataset=False` and `max_steps`; batch_size = generation_batch_size / num_generations.
    Extra sample fields (sample_id, domain, bucket, meta, ...) reach reward functions as kwargs.
    """
    import datasets  # only TRL users need it

    view = SamplerIterableDataset(stream, start_step=start_step, stride=check_trl_args(stream, args))

    def generate() -> Iterator[dict[str, Any]]:
        yield from view

    return datasets.IterableDataset.from_generator(generate)
