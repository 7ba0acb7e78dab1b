"""The rollout engine interface: G completions per prompt, in-place LoRA weight updates, a policy version."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

import torch

from learner.config.rollout import RolloutConfig
from learner.policy.prompt_encoding import Prompt, encode_prompt
from reward_service.contracts import Completion

__all__ = ["Prompt", "encode_prompt"]  # re-exported: they live in learner/policy/prompt_encoding.py (SFT uses them too)


class PolicyVersionMismatch(ValueError):
    """The engine holds other weights than the caller asked to generate with (e.g. a restarted actor)."""


class RolloutEngine(abc.ABC):
    """Generates completions with the weights of one policy version.

    Contract of `generate`: for prompts p_0..p_{n-1} it returns n * G completions grouped in prompt
    order, [p_0 x G, p_1 x G, ...], each carrying its prompt's sample id, the engine's policy
    version, the generated token ids (EOS included, nothing after it, no padding), one behaviour
    logprob per generated token, and finish_reason "stop" (EOS or a stop string) or "length".
    """

    @property
    @abc.abstractmethod
    def version(self) -> int:
        """Policy version of the weights held now (0 = the weights loaded at start)."""

    @abc.abstractmethod
    def generate(
        self,
        prompts: Sequence[Prompt],
        sample_ids: Sequence[str],
        num_generations: int | None = None,
        policy_version: int | None = None,
        temperature: float | Sequence[float] | None = None,
    ) -> list[Completion]:
        """G = `num_generations` (config default when None) completions per prompt, grouped in prompt order.

        `temperature` overrides the config's sampling temperature for this call (0 = greedy, e.g. evaluation);
        a sequence gives one temperature per prompt (rollout.bucket_temperatures), each > 0 unless all are equal.
        When `policy_version` is given and differs from `version`, raise PolicyVersionMismatch
        instead of generating with weights the caller did not expect.
        """

    @abc.abstractmethod
    def update_weights(self, adapter_state: Mapping[str, torch.Tensor], version: int) -> None:
        """Load the learner's adapter tensors in place and take `version` as the policy version."""

    # Colocated mode (cluster.placement: colocated): the engine frees its GPU memory while the learner
    # shares its GPU, and takes it back before the next weight push. Both calls are idempotent, so a
    # restarted actor (awake) can be woken again without harm.

    @property
    @abc.abstractmethod
    def sleeping(self) -> bool:
        """True between `sleep()` and `wake_up()`; generating then raises EngineAsleep."""

    @abc.abstractmethod
    def sleep(self) -> None:
        """Free the engine's accelerator memory (weights off the GPU, KV cache dropped)."""

    @abc.abstractmethod
    def wake_up(self) -> None:
        """Take the accelerator memory back; the weights are those held before `sleep()`."""


class EngineAsleep(RuntimeError):
    """The engine was asked to generate or load weights while asleep (colocated mode, learner running)."""


def check_awake(sleeping: bool, what: str) -> None:
    if sleeping:
        raise EngineAsleep(f"rollout engine is asleep (colocated mode): call wake_up() before {what}")


def check_generate_args(
    prompts: Sequence[Prompt], sample_ids: Sequence[str], num_generations: int, policy_version: int | None, held: int
) -> None:
    """The input checks every engine shares, with exact messages."""
    if len(prompts) != len(sample_ids):
        raise ValueError(f"got {len(prompts)} prompts but {len(sample_ids)} sample_ids; they must pair up")
    if num_generations < 1:
        raise ValueError(f"num_generations must be >= 1, got {num_generations}")
    if policy_version is not None and policy_version != held:
        raise PolicyVersionMismatch(f"engine holds policy version {held}, asked to generate with {policy_version}")


def call_config(
    config: RolloutConfig, num_generations: int | None, temperature: float | None
) -> tuple[int, RolloutConfig]:
    """G and the sampling config of one generate call: the config's defaults unless the call overrides them."""
    g = config.num_generations if num_generations is None else num_generations
    cfg = config if temperature is None else config.model_copy(update={"temperature": temperature})
    return g, cfg


def split_temperature(
    temperature: float | Sequence[float] | None, num_prompts: int
) -> tuple[float | None, list[float] | None]:
    """A call's temperature as (scalar, None) or, when prompts differ, (None, one temperature per prompt).

    A sequence whose values are all equal becomes that scalar, so it samples exactly as the scalar does
    (same processors, same arithmetic). Differing values must all be > 0: a greedy row cannot share a
    sampling batch.
    """
    if not isinstance(temperature, Sequence):
        return temperature, None
    values = [float(t) for t in temperature]
    if len(values) != num_prompts:
        raise ValueError(f"got {len(values)} temperatures for {num_prompts} prompts; give one per prompt")
    if len(set(values)) <= 1:
        return (values[0] if values else None), None
    if min(values) <= 0:
        raise ValueError(f"per-prompt temperatures must all be > 0 when they differ, got {min(values)}")
    return None, values


def check_new_version(current: int, version: int) -> None:
    """Versions only move forward: an older adapter arriving late must not replace a newer one."""
    if version < current:
        raise ValueError(f"policy version {version} is older than the version held ({current})")
