"""BalancedBatchStream: step t's batch, exactly batch_size / num_domains problems per domain, resumable."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from sampler.buckets import BucketTable, assign_buckets, bucket_rows
from sampler.config import BUCKETS, SamplerConfig, check_shares
from sampler.curriculum import CurriculumSchedule, Weights
from sampler.domain_share import allot, domain_weights
from sampler.records import RecordIndex, load_records
from sampler.replay import ReplayBuffer, group_signals

log = logging.getLogger(__name__)
_ALL = "*"  # pool key of a domain's whole pool, shared by its fallback buckets


def check_divisible(batch_size: int, num_domains: int, data_parallel_size: int = 1) -> int:
    """Samples per domain per shard; ValueError when a batch or a shard cannot be balanced."""
    if batch_size % num_domains:
        raise ValueError(f"batch_size ({batch_size}) must be divisible by num_domains ({num_domains}) "
                         "so that every batch holds the same number of problems of each domain")
    if batch_size % (num_domains * data_parallel_size):
        raise ValueError(f"batch_size ({batch_size}) must be divisible by num_domains ({num_domains}) "
                         f"x data_parallel_size ({data_parallel_size}) = {num_domains * data_parallel_size} "
                         "so that every data-parallel shard is balanced too")
    return batch_size // (num_domains * data_parallel_size)


class BalancedBatchStream:
    """Domain-balanced, curriculum-weighted batches for learner steps, deterministic for a seed.

    Each (domain, bucket) pool is a permutation drawn from (seed, domain, bucket, epoch), read
    without replacement and reshuffled when used up, so its state is two integers. The bucket
    of each draw and the order inside a shard come from (seed, step). The batch is the
    concatenation of `data_parallel_size` shards, each holding per_shard problems of every domain.

    Two switches, both off by default, make later batches depend on observed outcomes (still
    deterministic for a seed and the same outcomes): `replay_fraction` redraws problems whose
    groups had reward variance (sampler/replay.py), and `domain_weighting: success` gives each
    domain a share of every shard by its recent failure rate (sampler/domain_share.py).
    """

    def __init__(self, index: RecordIndex, cfg: SamplerConfig, schedule: CurriculumSchedule | None = None) -> None:
        self.index = index
        self.cfg = cfg
        self.domains = tuple(index.domains)
        if cfg.domain_weighting == "success":
            self.shard_size = check_shares(cfg.batch_size, cfg.data_parallel_size, cfg.domain_min_per_shard,
                                           len(self.domains))
            self.per_shard = self.shard_size // len(self.domains)  # the share of each domain while none is judged
        else:
            self.per_shard = check_divisible(cfg.batch_size, len(self.domains), cfg.data_parallel_size)
            self.shard_size = self.per_shard * len(self.domains)
        self.tables: dict[str, BucketTable] = {
            d: assign_buckets(d, idx.scores, cfg.percentiles) for d, idx in index.domains.items()
        }
        self._codes = {d: t.bucket_of(len(index.domains[d])) for d, t in self.tables.items()}
        self.schedule = schedule or CurriculumSchedule(cfg, self.domains)
        self._pools: dict[tuple[str, str], np.ndarray] = {}
        for d, table in self.tables.items():
            for b in BUCKETS:
                key = (d, _ALL if b in table.fallback else b)
                if key not in self._pools:
                    self._pools[key] = table.pool(b)
        self._pos = {key: [0, 0] for key in self._pools}  # key -> [epoch, position]
        # refills read their own permutations, so batch(step) never depends on training outcomes
        self._refill_pos = {key: [0, 0] for key in self._pools}
        self._perm: dict[tuple[str, str], tuple[int, np.ndarray]] = {}
        self._last_step = -1
        self._last_refs: list[tuple[str, int]] = []
        self._last_weights: Weights = {}
        self._last_replayed: list[int] = []  # positions in _last_refs served from the replay buffer
        self._last_shares: dict[str, float] = {}  # domain weights of the last batch (success weighting)
        self.replay = ReplayBuffer(self.domains, cfg.replay_capacity)
        self._replay_codes = {BUCKETS.index(b) for b in cfg.replay_buckets}
        self._lines: dict[str, dict[int, int]] = {}  # domain -> line number -> record index, built when needed

    @classmethod
    def from_config(cls, cfg: SamplerConfig) -> BalancedBatchStream:
        return cls(load_records(cfg), cfg)

    # ---- drawing ------------------------------------------------------------------------
    def _permutation(self, key: tuple[str, str], epoch: int, cursor: int = 0) -> np.ndarray:
        cached = self._perm.get((*key, cursor))
        if cached is None or cached[0] != epoch:
            d, b = key
            tag = [self.cfg.seed, self.domains.index(d), (*BUCKETS, _ALL).index(b), epoch]
            cached = (epoch, np.random.default_rng(tag + ([cursor] if cursor else [])).permutation(self._pools[key]))
            self._perm[(*key, cursor)] = cached
        return cached[1]

    def _take(self, domain: str, bucket: str, count: int, cursor: int = 0) -> list[int]:
        """`count` indices from the pool of (domain, bucket); cursor 0 serves batches, 1 serves refills."""
        key = (domain, _ALL if bucket in self.tables[domain].fallback else bucket)
        state, taken = (self._pos if cursor == 0 else self._refill_pos)[key], []
        while len(taken) < count:
            perm = self._permutation(key, state[0], cursor)
            chunk = perm[state[1]: state[1] + count - len(taken)]
            taken.extend(int(i) for i in chunk)
            state[1] += len(chunk)
            if state[1] >= len(perm):
                state[0], state[1] = state[0] + 1, 0
        return taken

    def batch(self, step: int) -> list[dict[str, Any]]:
        """The batch of learner step `step`: asking for the last step again returns the same batch."""
        if step == self._last_step:
            return self._samples(self._last_refs, self._last_replayed)
        if step < self._last_step:
            raise ValueError(f"step {step} was already served; the stream is at step {self._last_step}")
        weights = self.schedule.weights(step)
        counts = self._domain_counts(step)
        rng = np.random.default_rng([self.cfg.seed, step, 1])
        shards: list[list[tuple[str, int, bool]]] = [[] for _ in range(self.cfg.data_parallel_size)]
        # bucket of every draw by inverse CDF on one block of uniforms (rng.choice with p is 30x slower);
        # a shard's uniforms are laid out domain after domain, counts[d] each
        cdf = np.cumsum([[weights[d][b] for b in BUCKETS] for d in self.domains], axis=1)
        u = rng.random((self.cfg.data_parallel_size, self.shard_size))
        replay = self._replay_slots(step)
        pending: list[tuple[int, str, int]] = []  # (shard, domain, bucket code) of each replay slot
        for s, shard in enumerate(shards):
            offset = 0
            for k, d in enumerate(self.domains):
                span = slice(offset, offset + counts[d])
                offset += counts[d]
                domain_codes = (u[s, span, None] >= cdf[k, :-1]).sum(axis=-1)
                if replay is not None and self.replay.members(d):
                    mask = replay[s, span]
                    pending.extend((s, d, int(c)) for c in domain_codes[mask])
                    domain_codes = domain_codes[~mask]
                draws = np.bincount(domain_codes, minlength=len(BUCKETS))
                for code, count in enumerate(draws.tolist()):
                    if count:
                        shard.extend((d, i, False) for i in self._take(d, BUCKETS[code], count))
        if pending:
            self._fill_replays(step, shards, pending)
        refs: list[tuple[str, int]] = []
        replayed: list[int] = []
        for shard in shards:
            for j in rng.permutation(len(shard)):
                d, i, was_replayed = shard[j]
                if was_replayed:
                    replayed.append(len(refs))
                refs.append((d, i))
        self._last_step, self._last_refs, self._last_weights = step, refs, weights
        self._last_replayed = replayed
        if step % self.cfg.logging_steps == 0:
            log.info("Step %d/%d: curriculum weights = %s", step, self.cfg.max_steps, _display(weights))
        return self._samples(refs, replayed)

    def _domain_counts(self, step: int) -> dict[str, int]:
        """Draws per domain in each shard: per_shard each (balanced), or shared by failure rate (success)."""
        if self.cfg.domain_weighting == "balanced":
            return dict.fromkeys(self.domains, self.per_shard)
        shares = domain_weights(self.schedule, self.domains)
        total = sum(shares.values())
        self._last_shares = {d: w / total for d, w in shares.items()}
        return allot(self.shard_size, shares, self.cfg.domain_min_per_shard, first=step % len(self.domains))

    def _replay_slots(self, step: int) -> np.ndarray | None:
        """Which draws of each shard (laid out as the uniforms) replay; None with replay off."""
        if self.cfg.replay_fraction <= 0:
            return None
        rng = np.random.default_rng([self.cfg.seed, step, 3])
        return rng.random((self.cfg.data_parallel_size, self.shard_size)) < self.cfg.replay_fraction

    def _fill_replays(self, step: int, shards: list[list[tuple[str, int, bool]]],
                      pending: list[tuple[int, str, int]]) -> None:
        """Serve each replay slot from its domain's buffer, after the step's other draws, so that a replayed
        problem is none the batch already holds; a slot the buffer cannot fill so is drawn from its bucket."""
        used = {(d, i) for shard in shards for d, i, _ in shard}
        rng = np.random.default_rng([self.cfg.seed, step, 3, 1])
        for s, d, code in pending:
            free = [i for i in self.replay.members(d) if (d, i) not in used]
            if free:
                i, was_replayed = free[int(rng.integers(len(free)))], True
            else:
                i, was_replayed = self._take(d, BUCKETS[code], 1)[0], False
            used.add((d, i))
            shards[s].append((d, i, was_replayed))

    def refill(self, step: int, round_: int, domains: Sequence[str]) -> list[dict[str, Any]]:
        """One new problem per entry of `domains`, to replace groups of step `step` that had no reward signal.

        `step` is the last step served or an earlier one (async mode serves step t+1 before step t
        is scored).

        Buckets follow the step's curriculum weights; the draw is seeded by (seed, step, round) and takes
        from separate permutations of the same pools, so the batches of later steps are the same with or
        without refills. The last batch served (what `batch(step)` returns again) is unchanged.
        """
        if step > self._last_step:
            raise ValueError(f"refill of step {step}: the stream has served only up to step {self._last_step}")
        unknown = sorted(set(domains) - set(self.domains))
        if unknown:
            raise ValueError(f"refill: unknown domains {unknown}; the stream has {list(self.domains)}")
        # the weights batch(step) drew with; in async mode the next step is already served, so the
        # schedule's weights of `step` are asked again (the same for step schedules)
        weights = self._last_weights if step == self._last_step else self.schedule.weights(step)
        rng = np.random.default_rng([self.cfg.seed, step, 2, round_])
        out = []
        for d, u in zip(domains, rng.random(len(domains)), strict=True):
            cdf = np.cumsum([weights[d][b] for b in BUCKETS])
            code = min(int((u >= cdf[:-1]).sum()), len(BUCKETS) - 1)
            out.extend(self._sample(d, i) for i in self._take(d, BUCKETS[code], 1, cursor=1))
        return out

    def _samples(self, refs: Sequence[tuple[str, int]], replayed: Sequence[int]) -> list[dict[str, Any]]:
        out = [self._sample(d, i) for d, i in refs]
        for k in replayed:
            out[k]["replayed"] = True  # its real bucket stays in `bucket`
        return out

    def _sample(self, domain: str, i: int) -> dict[str, Any]:
        idx = self.index.domains[domain]
        rec = idx.record(i)
        rec["meta"].setdefault("scenario", domain)
        rec.update(
            sample_id=f"{domain}:{int(idx.line_index[i])}",
            domain=domain,
            difficulty_params=idx.difficulty_params(i),
            difficulty_score=float(idx.scores[i]),
            bucket=BUCKETS[int(self._codes[domain][i])],
        )
        return rec

    def shards(self, batch: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Split a batch into its data_parallel_size balanced shards."""
        size = len(batch) // self.cfg.data_parallel_size
        return [batch[k * size: (k + 1) * size] for k in range(self.cfg.data_parallel_size)]

    # ---- feedback, metrics, state -------------------------------------------------------
    def weights(self, step: int) -> Weights:
        return self.schedule.weights(step)

    @property
    def last_weights(self) -> Weights:
        """Bucket weights per domain of the last batch served (empty before the first)."""
        return self._last_weights

    def observe(self, outcomes: Iterable[Mapping[str, Any]]) -> None:
        """Scored completions (batch and refill groups alike, each group's G completions consecutive):
        the curriculum's success statistics and, with replay on, the replay buffers."""
        outcomes = list(outcomes)
        self.schedule.observe(outcomes)
        if self.cfg.replay_fraction <= 0:
            return
        for out in outcomes:
            if "sample_id" not in out:
                raise ValueError(f"outcome of domain {out['domain']} lacks 'sample_id' (replay needs it)")
        for sample_id, signal in group_signals(outcomes):
            d, i = self._locate(sample_id)
            if int(self._codes[d][i]) in self._replay_codes:
                self.replay.update(d, i, signal)

    def _locate(self, sample_id: str) -> tuple[str, int]:
        """(domain, record index) of a sample_id `<domain>:<line>`."""
        domain, _, line = sample_id.rpartition(":")
        if domain not in self.index.domains:
            raise ValueError(f"outcome {sample_id} names unknown domain '{domain}'")
        if domain not in self._lines:
            self._lines[domain] = {int(n): i for i, n in enumerate(self.index.domains[domain].line_index)}
        i = self._lines[domain].get(int(line)) if line.isdigit() else None
        if i is None:
            raise ValueError(f"outcome {sample_id}: domain {domain} has no record at line {line}")
        return domain, i

    def bucket_rows(self) -> list[dict[str, object]]:
        return bucket_rows(self.tables, {d: idx.scores for d, idx in self.index.domains.items()})

    def metrics(self) -> dict[str, float]:
        """Last step's weights, domain and bucket counts, and load skips, as flat `sampler/...` keys."""
        out: dict[str, float] = {"sampler/step": float(self._last_step)}
        domains = Counter(d for d, _ in self._last_refs)
        buckets = Counter(BUCKETS[int(self._codes[d][i])] for d, i in self._last_refs)
        out.update({f"sampler/domain/{d}": float(domains[d]) for d in self.domains})
        out.update({f"sampler/bucket/{b}": float(buckets[b]) for b in BUCKETS})
        out.update({f"sampler/skipped/{d}": float(n) for d, n in self.index.skipped.items()})
        if self.cfg.replay_fraction > 0:
            replayed = Counter(self._last_refs[k][0] for k in self._last_replayed)
            out.update({f"sampler/replay/{d}": float(replayed[d]) for d in self.domains})
            out.update({f"sampler/replay_buffer/{d}": float(len(self.replay.members(d))) for d in self.domains})
        out.update({f"sampler/domain_weight/{d}": w for d, w in self._last_shares.items()})
        for d, w in self._last_weights.items():
            out.update({f"curriculum/weight/{d}/{b}": v for b, v in w.items()})
        out.update({k: v for k, v in self.schedule.metrics().items() if k.startswith("curriculum/success")})
        return out

    def _fingerprint(self) -> dict[str, int]:
        return {f"{d}/{b}": int(len(p)) for (d, b), p in self._pools.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "seed": self.cfg.seed,
            "batch_size": self.cfg.batch_size,
            "pools": self._fingerprint(),
            "positions": {f"{d}/{b}": list(v) for (d, b), v in self._pos.items()},
            "refill_positions": {f"{d}/{b}": list(v) for (d, b), v in self._refill_pos.items()},
            "last_step": self._last_step,
            "last_refs": [[d, i] for d, i in self._last_refs],
            "last_weights": self._last_weights,
            "last_replayed": list(self._last_replayed),
            "last_shares": dict(self._last_shares),
            "replay": self.replay.state_dict(),
            "schedule": self.schedule.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        mine = {"seed": self.cfg.seed, "batch_size": self.cfg.batch_size, "pools": self._fingerprint()}
        for key, value in mine.items():
            if state[key] != value:
                raise ValueError(f"sampler state does not fit this data/config: {key} was {state[key]}, is {value}")
        self._pos = {tuple(k.rsplit("/", 1)): list(v) for k, v in state["positions"].items()}  # type: ignore[misc]
        refill = state.get("refill_positions") or {}  # absent in checkpoints written before refills
        self._refill_pos = {key: [0, 0] for key in self._pools}
        self._refill_pos.update({tuple(k.rsplit("/", 1)): list(v) for k, v in refill.items()})  # type: ignore[misc]
        self._last_step = int(state["last_step"])
        self._last_refs = [(d, int(i)) for d, i in state["last_refs"]]
        self._last_weights = {d: dict(w) for d, w in state["last_weights"].items()}
        # absent in checkpoints written before replay and domain weighting: nothing replayed, buffers empty
        self._last_replayed = [int(k) for k in state.get("last_replayed", ())]
        self._last_shares = {d: float(w) for d, w in (state.get("last_shares") or {}).items()}
        self.replay.load_state_dict(state.get("replay") or {})
        self.schedule.load_state_dict(state["schedule"])

    def close(self) -> None:
        for idx in self.index.domains.values():
            idx.close()


def _display(weights: Weights) -> dict[str, Any]:
    rounded = {d: {b: round(v, 3) for b, v in w.items()} for d, w in weights.items()}
    distinct = {tuple(w.items()) for w in rounded.values()}
    return next(iter(rounded.values())) if len(distinct) == 1 else rounded
