"""RolloutActor (a Ray actor around one rollout engine) and RolloutGroup, which splits prompts across R actors."""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray.exceptions import RayActorError

from actors.engines.base import PolicyVersionMismatch, Prompt, RolloutEngine
from actors.engines.config import RolloutConfig
from actors.placement import placement_info
from reward_service.contracts import Completion

log = logging.getLogger(__name__)

# Idle OpenMP threads sleep instead of spinning: on a few shared cores, spinning threads of one
# process stole the CPU from another (generation fell from 5.6k to 86 tokens/s).
_ACTOR_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
_HISTORY = 512  # engine calls an actor remembers (RolloutActor.history)
# How long a generate call asked for a policy version newer than the engine's waits for that version's
# push to arrive on the weights thread (s). Pushes from one caller are sent before the generate that
# needs them, so this only waits for the transfer; a version nobody pushes is an error after it.
STAGED_WAIT_S = 60.0
_MAX_STAGED = 16  # pushed versions an actor holds before loading (async runs need max_staleness + 1)
KEEP_VERSIONS = 10  # pushes a RolloutGroup keeps for recovery (>= max_staleness + 1; config allows 8)


def build_engine(model_path: str, config: RolloutConfig, engine_kwargs: Mapping[str, Any]) -> RolloutEngine:
    """The engine `config.engine` names; vLLM is imported only when asked for (GPU machines)."""
    if config.engine == "hf":
        from actors.engines.hf import HFEngine

        return HFEngine(model_path, config, **engine_kwargs)
    from actors.engines.vllm import VLLMEngine  # optional GPU dependency

    return VLLMEngine(model_path, config, **engine_kwargs)


@ray.remote(concurrency_groups={"weights": 1})
class RolloutActor:
    """One rollout engine in its own process; torch uses as many threads as the actor's Ray CPUs.

    Weight pushes run on their own thread (Ray concurrency group "weights"), so a push never queues
    behind a generate call: `update_weights` only stages the adapter and returns. The engine loads a
    staged adapter at the start of its next call on the main thread, between generate calls, never during
    one: a generate asked for version v loads v (waiting for its push if it has not arrived) or keeps v
    if the engine holds it, so a rollout submitted on v runs on v however late it starts; a call without a
    version (evaluation, `version()`) loads the newest.
    """

    def __init__(self, model_path: str, config: RolloutConfig, engine_kwargs: Mapping[str, Any]) -> None:
        torch.set_num_threads(max(1, int(config.num_cpus_per_actor)))
        self._engine = build_engine(model_path, config, engine_kwargs)
        self._history: collections.deque[tuple[str, int, float]] = collections.deque(maxlen=_HISTORY)
        self._staged: dict[int, Mapping[str, torch.Tensor]] = {}  # pushed, not loaded yet, by version
        self._staged_cv = threading.Condition()
        self._timings = {"generate_s": 0.0, "load_weights_s": 0.0, "calls": 0, "tokens": 0}
        self._generating_since: float | None = None

    def generate(
        self,
        prompts: Sequence[Prompt],
        sample_ids: Sequence[str],
        num_generations: int | None = None,
        policy_version: int | None = None,
        temperature: float | Sequence[float] | None = None,
    ) -> list[Completion]:
        self._load_staged(policy_version)
        t = self._generating_since = time.monotonic()
        try:
            out = self._engine.generate(prompts, sample_ids, num_generations, policy_version, temperature)
            self._timings["tokens"] += sum(len(c.token_ids) for c in out)
        finally:
            self._generating_since = None
            self._timings["generate_s"] += time.monotonic() - t
            self._timings["calls"] += 1
        self._note("generate")
        return out

    @ray.method(concurrency_group="weights")
    def update_weights(self, adapter_state: Mapping[str, torch.Tensor], version: int) -> int:
        """Stage the adapter of `version`; the engine loads it before the next call that asks for it (or for
        the newest). At most _MAX_STAGED versions wait; older ones beyond that are dropped."""
        with self._staged_cv:
            self._staged[version] = adapter_state
            while len(self._staged) > _MAX_STAGED:
                del self._staged[min(self._staged)]
            self._staged_cv.notify_all()
        self._history.append(("push", version, time.time()))
        return version

    def _load_staged(self, want: int | None = None) -> None:
        """Load version `want` (the newest staged one when None) into the engine. A version the engine holds
        is kept (newer pushes wait their turn); one not pushed yet is waited for up to STAGED_WAIT_S, after
        which the engine raises PolicyVersionMismatch as before. Staged versions up to the loaded one go."""
        with self._staged_cv:
            if want is None:
                if not self._staged:
                    return
                version = max(self._staged)
            else:
                if self._engine.version == want:
                    return
                self._staged_cv.wait_for(lambda: want in self._staged, timeout=STAGED_WAIT_S)
                if want not in self._staged:
                    return
                version = want
            state = self._staged[version]
            for v in [v for v in self._staged if v <= version]:
                del self._staged[v]
        t = time.monotonic()
        self._engine.update_weights(state, version)
        self._timings["load_weights_s"] += time.monotonic() - t
        self._note("load_weights")

    @ray.method(concurrency_group="weights")
    def timings(self) -> dict[str, float]:
        """Actor-side busy seconds since start (generate_s: the engine's token loop; load_weights_s), calls and
        completion tokens made, and
        generating_s, how long the generate call now running has run (0 when idle). Runs on the weights
        thread, so it answers while a generate call runs."""
        since = self._generating_since
        return {**self._timings, "generating_s": 0.0 if since is None else time.monotonic() - since}

    def sleep(self) -> None:
        """Free the engine's GPU memory (colocated mode, while the learner trains)."""
        self._engine.sleep()
        self._note("sleep")

    def wake_up(self) -> None:
        self._engine.wake_up()
        self._note("wake_up")

    def sleeping(self) -> bool:
        return self._engine.sleeping

    def version(self) -> int:
        """The policy version the engine generates with next (a staged push is loaded first)."""
        self._load_staged()
        return self._engine.version

    def history(self) -> list[tuple[str, int, float]]:
        """The last engine calls as (call, policy version after it, wall time s): the order of
        push (staged on the weights thread, with the version pushed) / load_weights / generate / sleep /
        wake_up, for debugging a colocated run."""
        return list(self._history)

    def placement_info(self) -> dict[str, Any]:
        """GPU ids, placement group id, node and pid of this actor (actors.placement.placement_info)."""
        return placement_info()

    def pid(self) -> int:
        return os.getpid()

    def _note(self, call: str) -> None:
        self._history.append((call, self._engine.version, time.time()))


@dataclass
class _Chunk:
    actor: int
    start: int  # index of the chunk's first prompt in the step's list
    prompts: list[Prompt]
    sample_ids: list[str]
    temperature: float | list[float] | None  # the call's scalar, or this chunk's slice of the per-prompt list
    ref: ray.ObjectRef


class PendingRollout:
    """Completions of one `RolloutGroup.submit`; `result()` gathers them in prompt order."""

    def __init__(self, group: RolloutGroup, chunks: list[_Chunk], num_generations: int | None,
                 policy_version: int | None) -> None:
        self._group, self._chunks = group, chunks
        self._g, self._version = num_generations, policy_version

    def refs(self) -> list[ray.ObjectRef]:
        """Object refs of the chunks, e.g. for `ray.wait`."""
        return [c.ref for c in self._chunks]

    def result(self) -> list[Completion]:
        parts = dict(self.stream())
        return [c for start in sorted(parts) for c in parts[start]]

    def stream(self) -> Iterator[tuple[int, list[Completion]]]:
        """(start, completions) of each actor's chunk as it finishes, first finished first: `start` is the
        index of the chunk's first prompt. Every chunk comes once; a chunk whose actor died is redone (pushed
        the version it was asked for, then generated again) when its turn comes. For scoring a chunk while
        the other actors still generate."""
        left = {chunk.ref: chunk for chunk in self._chunks}
        while left:
            ready, _ = ray.wait(list(left), num_returns=1)
            chunk = left.pop(ready[0])
            completions = self._group._get_with_recovery(chunk, self._g, self._version)
            yield chunk.start, completions


class RolloutGroup:
    """R RolloutActors named `<prefix>-<i>` that split every step's prompts into contiguous chunks.

    Actors restart on death (`max_restarts`); the group then pushes the last weights it sent again
    and redoes that actor's chunk, so a step survives a killed actor with nothing counted twice.
    """

    def __init__(
        self,
        model_path: str | Path,
        config: RolloutConfig,
        engine_kwargs: Mapping[str, Any] | None = None,
        name_prefix: str = "rollout",
        restart_timeout_s: float = 300.0,
        scheduling_strategies: Sequence[Any] | None = None,
        num_gpus_per_actor: float | None = None,
    ) -> None:
        """`scheduling_strategies[i]` places actor i (e.g. a bundle of actors.placement's groups); None = Ray's
        default. `num_gpus_per_actor` overrides the config's (colocated: the engine's share of a GPU)."""
        if scheduling_strategies is not None and len(scheduling_strategies) != config.num_actors:
            raise ValueError(f"got {len(scheduling_strategies)} scheduling strategies for "
                             f"{config.num_actors} rollout actors; give one per actor")
        self.config = config
        self.restart_timeout_s = restart_timeout_s  # how long a dead actor may take to come back (s)
        kwargs = dict(engine_kwargs or {})
        gpus = config.num_gpus_per_actor if num_gpus_per_actor is None else num_gpus_per_actor
        self.actors = [
            RolloutActor.options(
                name=f"{name_prefix}-{i}",
                num_cpus=config.num_cpus_per_actor,
                num_gpus=gpus,
                max_restarts=config.max_restarts,
                max_task_retries=0,  # a retried task would run on fresh weights; the group redoes it instead
                runtime_env={"env_vars": dict(_ACTOR_ENV)},
                scheduling_strategy=None if scheduling_strategies is None else scheduling_strategies[i],
            ).remote(str(model_path), config, kwargs)
            for i in range(config.num_actors)
        ]
        # the last pushes by version, newest last (object refs: the tensors stay in the object store), so a
        # chunk asked for an older version (async: submitted steps ahead) can be redone on it after a restart
        self._recent: collections.OrderedDict[int, ray.ObjectRef] = collections.OrderedDict()

    def submit(
        self,
        prompts: Sequence[Prompt],
        sample_ids: Sequence[str],
        num_generations: int | None = None,
        policy_version: int | None = None,
        temperature: float | Sequence[float] | None = None,
    ) -> PendingRollout:
        """Start generation on every actor without waiting; chunk sizes differ by at most one prompt.

        A per-prompt `temperature` sequence is split with the prompts: each actor gets its chunk's slice."""
        if len(prompts) != len(sample_ids):
            raise ValueError(f"got {len(prompts)} prompts but {len(sample_ids)} sample_ids; they must pair up")
        per_prompt = isinstance(temperature, Sequence)
        if per_prompt and len(temperature) != len(prompts):
            raise ValueError(f"got {len(temperature)} temperatures for {len(prompts)} prompts; give one per prompt")
        n, r = len(prompts), len(self.actors)
        bounds = [n * i // r for i in range(r + 1)]
        chunks = []
        for i in range(r):
            lo, hi = bounds[i], bounds[i + 1]
            if lo == hi:
                continue
            p, s = list(prompts[lo:hi]), list(sample_ids[lo:hi])
            t = [float(x) for x in temperature[lo:hi]] if per_prompt else temperature
            ref = self.actors[i].generate.remote(p, s, num_generations, policy_version, t)
            chunks.append(_Chunk(i, lo, p, s, t, ref))
        return PendingRollout(self, chunks, num_generations, policy_version)

    def generate(
        self,
        prompts: Sequence[Prompt],
        sample_ids: Sequence[str],
        num_generations: int | None = None,
        policy_version: int | None = None,
        temperature: float | Sequence[float] | None = None,
    ) -> list[Completion]:
        """G completions per prompt, grouped in prompt order, whichever actor made them.

        `temperature` overrides the sampling temperature for this call only (0 = greedy evaluation); a
        sequence gives one per prompt.
        """
        return self.submit(prompts, sample_ids, num_generations, policy_version, temperature).result()

    def update_weights(self, adapter_state: Mapping[str, torch.Tensor] | ray.ObjectRef, version: int) -> None:
        """Send one copy of the adapter to the object store and load it on every actor."""
        ref = adapter_state if isinstance(adapter_state, ray.ObjectRef) else ray.put(dict(adapter_state))
        self._recent[version] = ref
        while len(self._recent) > KEEP_VERSIONS:
            self._recent.popitem(last=False)
        refs = [a.update_weights.remote(ref, version) for a in self.actors]
        for i, r in enumerate(refs):
            try:
                ray.get(r)
            except RayActorError:
                self._push_until_back(i)

    def versions(self) -> list[int]:
        return ray.get([a.version.remote() for a in self.actors])

    def timings(self, timeout_s: float = 30.0) -> dict[str, float]:
        """`RolloutActor.timings()` summed over the actors (answered on their weights threads, so it does not
        wait for generation); an actor that does not answer within `timeout_s` (dead, restarting) is left out
        and counted in `missing`."""
        refs = [a.timings.remote() for a in self.actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        total: dict[str, float] = {"generate_s": 0.0, "load_weights_s": 0.0, "calls": 0, "tokens": 0,
                                   "missing": len(refs) - len(ready)}
        for ref in ready:
            try:
                one = ray.get(ref)
            except RayActorError:
                total["missing"] += 1
                continue
            for key in ("generate_s", "load_weights_s", "calls", "tokens"):
                total[key] += one[key]
        return total

    def sleep(self) -> None:
        """Put every engine to sleep (colocated mode: before the learner trains on the shared GPU)."""
        self._wait_all([a.sleep.remote() for a in self.actors], "sleep")

    def wake_up(self) -> None:
        """Wake every engine (colocated mode: before the weight push)."""
        self._wait_all([a.wake_up.remote() for a in self.actors], "wake_up")

    def placement_info(self) -> list[dict[str, Any]]:
        """`RolloutActor.placement_info()` of every actor, in actor order."""
        return ray.get([a.placement_info.remote() for a in self.actors])

    def history(self) -> list[list[tuple[str, int, float]]]:
        """`RolloutActor.history()` of every actor, in actor order."""
        return ray.get([a.history.remote() for a in self.actors])

    def shutdown(self) -> None:
        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors = []

    def _wait_all(self, refs: list[ray.ObjectRef], call: str) -> None:
        for i, r in enumerate(refs):
            try:
                ray.get(r)
            except RayActorError:
                # A restarted engine starts awake with its start weights; the next weight push (with
                # recovery) brings it back, so a lost sleep or wake costs memory, not correctness.
                log.warning("rollout actor %d died during %s; it restarts awake", i, call)

    # -- recovery ----------------------------------------------------------------------------------
    # A task sent to an actor that Ray is restarting fails at once ("actor is restarting"), so
    # recovery polls: resend (weights first, then the work) once a second until it succeeds or
    # `restart_timeout_s` passes. The push runs on the actor's weights thread, so the redone generate
    # is sent with the version it needs and waits (RolloutActor._load_staged) until that push lands.

    def _push_until_back(self, i: int) -> None:
        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            try:
                version, ref = next(reversed(self._recent.items()))  # the last push
                ray.get(self.actors[i].update_weights.remote(ref, version))
                return
            except RayActorError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def _get_with_recovery(self, chunk: _Chunk, g: int | None, version: int | None) -> list[Completion]:
        deadline = time.monotonic() + self.restart_timeout_s
        while True:
            try:
                return ray.get(chunk.ref)
            except (RayActorError, PolicyVersionMismatch) as err:
                # A mismatch means the actor restarted after its last task and holds its start weights;
                # it is recoverable only when the group still holds the version asked for.
                stale = isinstance(err, PolicyVersionMismatch)
                want = version if version is not None else next(reversed(self._recent), None)  # newest push
                if stale and want not in self._recent:
                    raise
                if time.monotonic() > deadline:
                    raise
                log.warning("rollout actor %d failed (%s); redoing its chunk", chunk.actor, type(err).__name__)
                time.sleep(0.0 if stale else 1.0)
                actor = self.actors[chunk.actor]
                if want in self._recent:  # the version the chunk was asked for (the newest when none was)
                    actor.update_weights.remote(self._recent[want], want)
                chunk.ref = actor.generate.remote(chunk.prompts, chunk.sample_ids, g, want, chunk.temperature)
