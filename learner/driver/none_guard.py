"""NoneRewardGuard: stop a run whose validator fails for a whole domain, instead of training it on nothing.

A completion whose validator errs or times out scores None and is left out of its group's advantage
(DESIGN.md "Reward semantics"); if that happens to every completion of a domain, step after step, the
domain trains on nothing and the run only logs it. The guard counts, per domain, consecutive steps in
which every completion that reached a validator scored None (at least one did); a step where one
scored a number resets the count; a step where none reached a validator (every plan decided by the
extractor) leaves it as it was. At `reward.max_none_steps` it raises AllNoneRewardsError naming the
domain, the validator's last error and the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class AllNoneRewardsError(RuntimeError):
    """Every validated completion of a domain scored None for max_none_steps consecutive steps."""


class NoneRewardGuard:
    """Per-domain count of consecutive all-None steps; `update` raises when one reaches `max_steps`."""

    def __init__(self, max_steps: int) -> None:
        self.max_steps = max_steps
        self.counts: dict[str, int] = {}
        self.first_step: dict[str, int] = {}

    def update(self, step: int, samples: Sequence[Mapping[str, Any]], scores: Sequence[Any]) -> None:
        """Count step `step`'s scores (one per sample, in order); AllNoneRewardsError when a domain is done for."""
        if self.max_steps <= 0:
            return
        validated: dict[str, list[tuple[Mapping[str, Any], Any]]] = {}
        for sample, score in zip(samples, scores, strict=True):
            if score.validator != "extract":
                validated.setdefault(str(sample["domain"]), []).append((sample, score))
        for domain, pairs in validated.items():
            if any(score.reward is not None for _, score in pairs):
                self.counts[domain] = 0
                continue
            self.counts[domain] = self.counts.get(domain, 0) + 1
            if self.counts[domain] == 1:
                self.first_step[domain] = step
            if self.counts[domain] >= self.max_steps:
                sample, score = pairs[-1]
                meta = sample.get("meta", {})
                raise AllNoneRewardsError(
                    f"domain '{domain}': every completion that reached the validator scored None for "
                    f"{self.counts[domain]} consecutive steps ({self.first_step[domain]}-{step}; "
                    f"reward.max_none_steps={self.max_steps}), so it trains on nothing. Last validator error: "
                    f"{score.error or 'none given'}; files: domain {meta.get('domain_file')!r}, "
                    f"problem {meta.get('problem_file')!r}"
                )

    def state_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "first_step": dict(self.first_step)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.counts = dict(state.get("counts", {}))
        self.first_step = dict(state.get("first_step", {}))
