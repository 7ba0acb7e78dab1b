"""SamplerActor: the BalancedBatchStream in its own Ray process, serving step t's batch to the driver."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import ray

from sampler.config import SamplerConfig
from sampler.records import load_records
from sampler.stream import BalancedBatchStream

log = logging.getLogger(__name__)
# sampler metrics that describe the last batch served (the rest: outcomes observed so far, load skips)
BATCH_METRIC_PREFIXES = ("sampler/step", "sampler/domain/", "sampler/bucket/", "curriculum/weight/",
                         "sampler/replay/", "sampler/domain_weight/")


@ray.remote(num_cpus=0)  # light: a few numpy draws and file reads per step, no need to reserve a core
class SamplerActor:
    """Serves `next_batch(step)` and takes per-sample outcomes back for the adaptive curriculum.

    Samples are plain dicts, so they cross Ray without the sampler's classes. The actor holds
    no state the driver cannot restore: after a restart, `load_state_dict(checkpoint)` resumes
    the identical stream.
    """

    def __init__(self, config: SamplerConfig | Mapping[str, Any]) -> None:
        cfg = config if isinstance(config, SamplerConfig) else SamplerConfig.model_validate(config)
        logging.basicConfig(level=logging.INFO)  # the curriculum log line shows in the actor's log
        # the driver's pre-flight already listed the files of data_root that are no domain's records
        self._stream = BalancedBatchStream(load_records(cfg, list_ignored=False), cfg)
        self._observed_step = -1
        self._observed = 0

    def next_batch(self, step: int) -> list[dict[str, Any]]:
        """The balanced batch of learner step `step` (the same batch again if asked twice)."""
        return self._stream.batch(step)

    def serve(self, step: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """`next_batch(step)` and the metrics that describe that batch (step, domain and bucket counts,
        curriculum weights), taken together: in async mode the driver logs step t after t+1 was served."""
        batch = self._stream.batch(step)
        described = {k: v for k, v in self._stream.metrics().items() if k.startswith(BATCH_METRIC_PREFIXES)}
        return batch, described

    def refill_batch(self, step: int, round_: int, domains: Sequence[str]) -> list[dict[str, Any]]:
        """New problems of `domains` (one each) for refill round `round_` of step `step`."""
        return self._stream.refill(step, round_, domains)

    def observe(self, step: int, outcomes: Sequence[Mapping[str, Any]]) -> None:
        """Scored completions of step `step`: dicts with sample_id, domain, bucket, reward, label."""
        self._stream.observe(outcomes)
        self._observed_step = max(self._observed_step, step)
        self._observed += len(outcomes)

    def metrics(self) -> dict[str, float]:
        return {**self._stream.metrics(), "sampler/observed_step": float(self._observed_step),
                "sampler/observed_outcomes": float(self._observed)}

    def state_dict(self) -> dict[str, Any]:
        return self._stream.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._stream.load_state_dict(state)

    def info(self) -> dict[str, Any]:
        """Domains, per-domain sample counts and the bucket table, for the run log."""
        return {
            "domains": list(self._stream.domains),
            "samples": {d: len(idx) for d, idx in self._stream.index.domains.items()},
            "skipped": self._stream.index.skipped,
            "buckets": self._stream.bucket_rows(),
        }
