"""RewardActor and RewardPool: fault-tolerant, resizable parallel scoring of completions on Ray.

    pool = RewardPool(RewardConfig(num_workers=2), data_root="data")
    scores = pool.score(completions, samples)    # in input order, each exactly once
    pool.resize(4)                               # also while another thread is inside score()
    print(pool.stats().to_dict()); pool.shutdown()

The pool, not Ray, restarts workers (actors are created with max_restarts=0) so that it can count
restarts and re-queue exactly the chunks a dead worker held. Timeouts have three layers: VAL's own
subprocess timeout, a per-plan SIGALRM deadline inside the actor (reward_service.scoring.deadline),
and a watchdog here that kills a worker whose chunk is overdue (a validator hung in C code).
A chunk that keeps killing workers is split into single plans; a single plan that does it again
gets reward None (validator_error), so one poisonous plan never stalls training.

Node loss (docs/cluster.md "Scale the reward workers"): chunks go only to workers Ray has placed on a node
(up, or with their constructor running), so a replacement that waits for a node never holds work. A worker
lost with its node re-queues its chunk without counting a try against it (the plans did not kill it); the
pool runs on the workers left, and the replacement, an actor Ray places once a node with the resources
joins, brings it back to `num_workers`. A slot whose worker fails to start `MAX_START_FAILURES` times in a
row is left empty (logged) until the next `resize()`; each change of the number of workers up is logged
and shown in `stats().workers_up`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import ray

from actors.scheduling import ActorsNotPlacedError, actor_placed, actor_row, node_alive, resources_now, shortfall
from reward_service.config import RewardConfig
from reward_service.contracts import Completion, Score
from reward_service.result import Label, Validator
from reward_service.scoring import RewardScorer, sample_domain

log = logging.getLogger(__name__)
_LATENCY_WINDOW = 20_000  # latencies kept for p50/p99 (plans)
MAX_START_FAILURES = 3  # consecutive failed starts of one slot before it is left empty (tries)
_PLACED_CHECK_S = 0.25  # how often the actor table is asked whether a starting worker has a node (s)


@ray.remote(max_restarts=0)
class RewardActor:
    """One reward worker: a RewardScorer in its own process (named `reward-<i>` on the Ray dashboard)."""

    def __init__(
        self, config: RewardConfig, data_root: str, validator_factory: Callable[[], Validator] | None = None
    ) -> None:
        validator = validator_factory() if validator_factory is not None else None
        self.scorer = RewardScorer(config, data_root, validator=validator)

    def score_chunk(self, completions: list[Completion], samples: list[dict[str, Any]]) -> list[Score]:
        return self.scorer.score(completions, samples)

    def ready(self) -> str:
        """The id (hex) of the node this worker runs on: the pool tells a lost node from a crash with it."""
        return ray.get_runtime_context().get_node_id()


@dataclass(frozen=True)
class PoolStats:
    """Counters of a RewardPool since it was created."""

    workers: int  # the pool's size: workers up plus those starting or waiting for a node
    plans_scored: int
    latency_p50_ms: float
    latency_p99_ms: float
    timeouts: int
    validator_errors: int
    restarts: int
    requeued_chunks: int
    labels_by_domain: dict[str, dict[str, int]] = field(default_factory=dict)
    plans_by_worker: dict[str, int] = field(default_factory=dict)
    workers_up: int = 0  # started and taking chunks
    workers_waiting: int = 0  # starting, or waiting for Ray to place them (a node with the resources)
    lost_with_node: int = 0  # workers whose node died (also counted in restarts)
    failed_starts: int = 0  # workers that died before they were up
    size_changes: int = 0  # times workers_up changed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Worker:
    slot: int
    name: str
    handle: Any  # ray ActorHandle
    ready_ref: Any  # its ready() call: the watchdog does not count a worker's start-up time
    spawned_at: float = field(default_factory=time.monotonic)
    up_at: float | None = None  # monotonic time its start-up was seen finished; only then it gets chunks
    node_id: str | None = None  # where it runs, from its ready()
    placed: bool = False  # Ray gave it a node (its start-up may still run): it may be sent chunks
    placed_checked_at: float = 0.0
    retiring: bool = False
    stuck: bool = False  # not started within start_timeout_s (Ray cannot place it): warned once


@dataclass
class _Chunk:
    indices: list[int]
    attempts: int = 0
    hung: bool = False  # the last attempt was killed by the watchdog


def plan_chunks(
    completions: Sequence[Completion], samples_by_id: Mapping[str, Mapping[str, Any]], chunk_size: int, workers: int
) -> list[list[int]]:
    """Indices of `completions` cut into chunks: one problem per chunk where possible (VAL checks a problem's
    plans in one call), about 4 chunks per worker for balance, at most `chunk_size` so a lost worker costs little."""

    def problem(i: int) -> tuple[str, str]:
        meta = samples_by_id[completions[i].sample_id]["meta"]
        return str(meta.get("domain_file")), str(meta.get("problem_file"))

    order = sorted(range(len(completions)), key=problem)
    size = max(1, min(chunk_size, -(-len(order) // (4 * max(workers, 1)))))
    return [order[s : s + size] for s in range(0, len(order), size)]


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RewardPool:
    """A resizable group of RewardActors that scores batches in parallel and survives worker deaths."""

    def __init__(
        self,
        config: RewardConfig,
        data_root: str,
        *,
        validator_factory: Callable[[], Validator] | None = None,
        name_prefix: str = "reward",
        watchdog_grace_s: float | None = None,
        poll_s: float = 0.05,
        start_timeout_s: float = 300.0,
    ) -> None:
        if not ray.is_initialized():
            raise RuntimeError("RewardPool needs a Ray cluster: call ray.init() first")
        self.config = config
        self.data_root = str(data_root)
        self.validator_factory = validator_factory
        self.name_prefix = name_prefix
        # Watchdog slack over timeout_s * plans: the inner deadlines should fire first.
        self.watchdog_grace_s = watchdog_grace_s if watchdog_grace_s is not None else max(5.0, config.timeout_s)
        self.poll_s = poll_s
        # A worker Ray cannot place (no node has worker_resource, too few CPUs) would hold its chunk forever.
        self.start_timeout_s = start_timeout_s
        self._lock = threading.RLock()
        self._workers: dict[int, _Worker] = {}
        self._target = config.num_workers
        self._generation = collections.Counter()  # slot -> restarts, for unique names after a kill
        self._latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        self._labels: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._by_worker: collections.Counter = collections.Counter()
        self._counts = collections.Counter()
        self._start_failures: collections.Counter = collections.Counter()  # slot -> failed starts in a row
        self._given_up: dict[int, str] = {}  # slot -> why it is left empty (until the next resize)
        self._last_up = 0
        self._was_full = False  # start-up growth is logged once, when the pool is first full
        with self._lock:
            self._apply_size(busy=set())

    # -- public ----------------------------------------------------------------------------------
    @property
    def num_workers(self) -> int:
        """The size the pool is at or heading to."""
        return self._target

    def worker_names(self) -> list[str]:
        with self._lock:
            return [w.name for w in self._workers.values() if not w.retiring]

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until every worker has started (its process and imports)."""
        with self._lock:
            workers = list(self._workers.values())
        try:
            ray.get([w.ready_ref for w in workers], timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            late = [w for w in workers if not self._is_up(w)]
            raise ActorsNotPlacedError(self._not_started(late, timeout_s)) from None

    def resize(self, n: int) -> None:
        """Grow or shrink to `n` workers; busy workers finish their chunk first. Safe from any thread."""
        if n < 1:
            raise ValueError(f"a reward pool needs at least 1 worker, got {n}")
        with self._lock:
            self._target = n
            self._given_up.clear()  # slots that failed to start get a new try
            self._start_failures.clear()
            if not self._counts["scoring"]:
                self._apply_size(busy=set())

    def stats(self) -> PoolStats:
        with self._lock:
            up, waiting = self._refresh()
            latencies = list(self._latencies)
            return PoolStats(
                workers=len([w for w in self._workers.values() if not w.retiring]),
                plans_scored=self._counts["plans"],
                latency_p50_ms=_percentile(latencies, 0.50),
                latency_p99_ms=_percentile(latencies, 0.99),
                timeouts=self._counts["timeouts"],
                validator_errors=self._counts["validator_errors"],
                restarts=self._counts["restarts"],
                requeued_chunks=self._counts["requeued"],
                labels_by_domain={d: dict(c) for d, c in self._labels.items()},
                plans_by_worker=dict(self._by_worker),
                workers_up=len(up),
                workers_waiting=len(waiting),
                lost_with_node=self._counts["lost_with_node"],
                failed_starts=self._counts["failed_starts"],
                size_changes=self._counts["size_changes"],
            )

    def shutdown(self) -> None:
        with self._lock:
            for worker in self._workers.values():
                ray.kill(worker.handle, no_restart=True)
            self._workers.clear()

    def __enter__(self) -> RewardPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def score(self, completions: Sequence[Completion], samples: Sequence[Mapping[str, Any]]) -> list[Score]:
        """One Score per completion, in input order, each produced exactly once."""
        by_id = {str(s["sample_id"]): dict(s) for s in samples}
        for i, c in enumerate(completions):
            if c.sample_id not in by_id:
                raise ValueError(f"no sample with sample_id {c.sample_id!r} for completion {i}")
        pending = collections.deque(
            _Chunk(c) for c in plan_chunks(completions, by_id, self.config.chunk_size, self._target)
        )
        results: list[Score | None] = [None] * len(completions)
        inflight: dict[Any, tuple[_Worker, _Chunk, float]] = {}
        with self._lock:
            self._counts["scoring"] += 1
        try:
            while pending or inflight:
                with self._lock:
                    busy = {w.slot for w, _, _ in inflight.values()}
                    self._apply_size(busy=busy)
                    up, waiting = self._refresh()
                    idle = [w for w in up + [w for w in waiting if self._placed(w)] if w.slot not in busy]
                    starting = [w.ready_ref for w in waiting]
                for worker in idle:
                    if not pending:
                        break
                    chunk = pending.popleft()
                    batch = [completions[i] for i in chunk.indices]
                    needed = list({c.sample_id: by_id[c.sample_id] for c in batch}.values())
                    ref = worker.handle.score_chunk.remote(batch, needed)
                    inflight[ref] = (worker, chunk, time.monotonic())
                # Wake on a finished chunk or on a worker whose start-up finished (it can take work now).
                refs = list(inflight) + starting
                if refs:
                    ray.wait(refs, num_returns=1, timeout=self.poll_s)
                else:  # no worker at all: slots given up or retiring; the check below decides
                    time.sleep(self.poll_s)
                ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=0) if inflight else ([], [])
                for ref in ready:
                    worker, chunk, _ = inflight.pop(ref)
                    self._collect(ref, worker, chunk, completions, by_id, results, pending)
                self._watchdog(inflight, completions, by_id, results, pending)
                if pending and not inflight:
                    with self._lock:
                        self._fail_if_none_can_start()
        finally:
            with self._lock:
                self._counts["scoring"] -= 1
                self._apply_size(busy=set())
        missing = [i for i, s in enumerate(results) if s is None]
        if missing:  # cannot happen unless the loop above is wrong: fail loudly rather than return holes
            raise RuntimeError(f"reward pool lost {len(missing)} scores, first at index {missing[0]}")
        return results  # type: ignore[return-value]

    # -- internals -------------------------------------------------------------------------------
    def _spawn(self, slot: int) -> _Worker:
        options: dict[str, Any] = {"num_cpus": self.config.cpus_per_worker}
        if self.config.worker_resource:
            options["resources"] = {self.config.worker_resource: 1}
        name = f"{self.name_prefix}-{slot}"
        if self._generation[slot]:
            name += f"-r{self._generation[slot]}"  # a killed actor's name may not be free yet
        handle = RewardActor.options(name=name, **options).remote(self.config, self.data_root, self.validator_factory)
        return _Worker(slot, name, handle, handle.ready.remote())

    def _apply_size(self, busy: set[int]) -> None:
        active = sorted(s for s, w in self._workers.items() if not w.retiring)
        for slot in range(self._target):  # grow: fill the lowest free slots
            if slot in self._given_up:
                continue
            if slot not in self._workers:
                self._workers[slot] = self._spawn(slot)
            elif self._workers[slot].retiring:
                self._workers[slot].retiring = False  # shrunk then grown again before it finished
        for slot in active:
            if slot >= self._target:
                self._workers[slot].retiring = True
        for slot in [s for s, w in self._workers.items() if w.retiring and s not in busy]:
            ray.kill(self._workers.pop(slot).handle, no_restart=True)

    def _restart(self, worker: _Worker, why: str) -> None:
        with self._lock:
            ray.kill(worker.handle, no_restart=True)
            if self._workers.get(worker.slot) is not worker:
                return
            del self._workers[worker.slot]
            if worker.retiring:
                return
            self._counts["restarts"] += 1
            self._generation[worker.slot] += 1
            log.warning("reward worker %s %s; restarting it", worker.name, why)
            self._workers[worker.slot] = self._spawn(worker.slot)

    def _requeue(self, chunk: _Chunk, hung: bool, completions, by_id, results, pending) -> None:
        chunk.attempts += 1
        chunk.hung = hung
        with self._lock:
            self._counts["requeued"] += 1
        if chunk.attempts < self.config.max_chunk_attempts:
            pending.appendleft(chunk)
        elif len(chunk.indices) > 1:  # find the plan that kills workers: retry one by one
            pending.extendleft(_Chunk([i]) for i in reversed(chunk.indices))
        else:
            i = chunk.indices[0]
            sample = by_id[completions[i].sample_id]
            reason = "no answer within the watchdog limit" if hung else "its reward worker died"
            give_up = Score(
                reward=None,
                label=Label.VALIDATOR_ERROR,
                validator=self.config.validator,
                sample_id=completions[i].sample_id,
                domain=sample_domain(sample),
                error=f"{reason} ({chunk.attempts} tries)",
                timed_out=hung,
            )
            self._record([i], [give_up], "-", results)

    def _collect(self, ref, worker: _Worker, chunk: _Chunk, completions, by_id, results, pending) -> None:
        try:
            scores = ray.get(ref)
        except ray.exceptions.RayActorError as exc:  # the worker process is gone: restart, re-queue
            if not self._is_up(worker):  # it died starting: not the plans' fault (a no-op if _is_up handled it)
                self._start_failed(worker, exc)
                with self._lock:
                    self._counts["requeued"] += 1
                pending.appendleft(chunk)
                return
            if worker.node_id is not None and node_alive(worker.node_id) is False:
                # Its node died (spot preemption, a node removed): not the plans' fault, so no try counted.
                with self._lock:
                    self._counts["lost_with_node"] += 1
                    self._counts["requeued"] += 1
                self._restart(worker, f"was lost with its node {worker.node_id[:12]} "
                              f"({len(chunk.indices)} plans re-queued)")
                pending.appendleft(chunk)
                return
            self._restart(worker, f"died ({type(exc).__name__})")
            self._requeue(chunk, False, completions, by_id, results, pending)
            return
        with self._lock:
            if worker.retiring:
                self._workers.pop(worker.slot, None)
                ray.kill(worker.handle, no_restart=True)
        self._record(chunk.indices, scores, worker.name, results)

    def _is_up(self, worker: _Worker) -> bool:
        """Whether the worker's start-up has finished (its ready() answered); a failed start respawns it."""
        if worker.up_at is None and ray.wait([worker.ready_ref], timeout=0)[0]:
            try:
                worker.node_id = ray.get(worker.ready_ref)
            except ray.exceptions.RayError as exc:  # its constructor raised, or it died (with its node) starting
                self._start_failed(worker, exc)
                return False
            worker.up_at = time.monotonic()
            worker.stuck = False
            self._start_failures[worker.slot] = 0
        return worker.up_at is not None

    def _placed(self, worker: _Worker) -> bool:
        """Whether a worker not up yet has a node: a call queued on it starts when its constructor ends."""
        now = time.monotonic()
        if not worker.placed and not worker.stuck and now - worker.placed_checked_at >= _PLACED_CHECK_S:
            worker.placed_checked_at = now
            worker.placed = actor_placed(worker.handle._actor_id.hex()) is True
        return worker.placed and not worker.stuck

    def _start_failed(self, worker: _Worker, exc: Exception) -> None:
        """Respawn a slot whose worker died before it was up, at most MAX_START_FAILURES times in a row."""
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = f"{type(exc).__name__}: {lines[-1] if lines else '?'}"
        with self._lock:
            ray.kill(worker.handle, no_restart=True)
            if self._workers.get(worker.slot) is not worker:
                return
            del self._workers[worker.slot]
            self._counts["failed_starts"] += 1
            if worker.retiring:
                return
            row = actor_row(worker.handle._actor_id.hex()) or {}
            node = (row.get("Address") or {}).get("NodeID")
            if node and node_alive(node) is False:  # the node it started on (or waited at) died: no try counted
                self._counts["lost_with_node"] += 1
                self._generation[worker.slot] += 1
                log.warning("reward worker %s was lost with its node %s while starting; starting it again",
                            worker.name, node[:12])
                self._workers[worker.slot] = self._spawn(worker.slot)
                return
            self._start_failures[worker.slot] += 1
            tries = self._start_failures[worker.slot]
            if tries >= MAX_START_FAILURES:
                self._given_up[worker.slot] = f"{worker.name} failed to start {tries} times in a row, last: {why}"
                log.error("reward pool: slot %d left empty until the next resize(): %s",
                          worker.slot, self._given_up[worker.slot])
                return
            self._generation[worker.slot] += 1
            log.warning("reward worker %s failed to start (%d of %d tries): %s; starting it again",
                        worker.name, tries, MAX_START_FAILURES, why)
            self._workers[worker.slot] = self._spawn(worker.slot)

    def _refresh(self) -> tuple[list[_Worker], list[_Worker]]:
        """The active workers that are up and those still starting; logs a change in the number up."""
        now = time.monotonic()
        for worker in list(self._workers.values()):
            if not worker.retiring and not self._is_up(worker) and not worker.stuck \
                    and now - worker.spawned_at > self.start_timeout_s:
                worker.stuck = True
                log.warning("%s", self._not_started([worker], self.start_timeout_s))
        active = [w for w in self._workers.values() if not w.retiring]
        up = [w for w in active if w.up_at is not None]
        waiting = [w for w in active if w.up_at is None]
        if len(up) != self._last_up:
            grew, self._last_up = len(up) > self._last_up, len(up)
            self._counts["size_changes"] += 1
            full = len(up) == self._target
            if not grew or full or self._was_full:  # start-up growth: one line, when full
                names = ", ".join(w.name for w in waiting[:5]) + (", ..." if len(waiting) > 5 else "")
                log.log(logging.INFO if grew else logging.WARNING, "reward pool: %d of %d workers up%s",
                        len(up), self._target, f"; waiting for a node: {names}" if waiting else "")
            self._was_full = self._was_full or full
        return up, waiting

    def _fail_if_none_can_start(self) -> None:
        """Raise when no worker is up and none can come up before its deadline (chunks would wait forever)."""
        active = [w for w in self._workers.values() if not w.retiring]
        if any(w.up_at is not None for w in active):
            return
        if not active and self._given_up:
            raise RuntimeError("reward pool has no worker left: " + "; ".join(self._given_up.values()))
        if active and all(w.stuck for w in active):
            raise ActorsNotPlacedError(self._not_started(active, self.start_timeout_s))

    def _not_started(self, workers: list[_Worker], waited_s: float) -> str:
        need = {"CPU": self.config.cpus_per_worker}
        if self.config.worker_resource:
            need[self.config.worker_resource] = 1.0
        total, free = resources_now()
        why = shortfall(need, total, free) or [f"it needs {need}"]
        resource = self.config.worker_resource
        if resource and total.get(resource, 0.0) < 1:
            hint = (f"declare it on the reward nodes (`ray start --resources='{{\"{resource}\": N}}'`, or the reward "
                    "node type in cluster.yaml), or set reward.worker_resource: null")
        else:
            hint = "add CPUs (cluster.num_cpus, more nodes) or lower reward.num_workers / reward.cpus_per_worker"
        names = ", ".join(w.name for w in workers)
        return f"reward worker(s) {names} not started after {waited_s:g} s: {'; '.join(why)}; {hint}"

    def _watchdog(self, inflight, completions, by_id, results, pending) -> None:
        now = time.monotonic()
        for ref, (worker, chunk, started) in list(inflight.items()):
            if not self._is_up(worker):  # placed, still starting (process, imports): not the chunk's fault
                if now - worker.spawned_at > self.start_timeout_s:  # a start-up that hangs: take the chunk back
                    del inflight[ref]
                    pending.appendleft(chunk)
                    worker.stuck = True
                continue
            limit = self.config.timeout_s * len(chunk.indices) + self.watchdog_grace_s
            if now - max(started, worker.up_at) > limit:
                del inflight[ref]
                self._restart(worker, f"gave no answer in {limit:g} s")
                self._requeue(chunk, True, completions, by_id, results, pending)

    def _record(self, indices: list[int], scores: list[Score], worker: str, results) -> None:
        with self._lock:
            for i, score in zip(indices, scores, strict=True):
                if results[i] is not None:
                    self._counts["duplicates_dropped"] += 1  # a re-queued chunk also finished: keep the first
                    continue
                results[i] = score
                self._counts["plans"] += 1
                self._counts["timeouts"] += score.timed_out
                self._counts["validator_errors"] += score.label is Label.VALIDATOR_ERROR and not score.timed_out
                self._latencies.append(score.latency_ms)
                self._labels[score.domain or "-"][score.label.value] += 1
                self._by_worker[worker] += 1
