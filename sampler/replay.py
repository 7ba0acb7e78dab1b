"""ReplayBuffer: per domain, the recent problems whose completions disagreed in reward, to be drawn again.

A group whose rewards are all equal has advantage 0 everywhere and teaches nothing; a problem
whose group had reward variance is neither solved nor hopeless, so drawing it again is likely
to give signal again. The stream fills the buffer from observed outcomes and replays from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any


def group_signals(outcomes: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, bool]]:
    """(sample_id, had reward variance) per group: a run of consecutive outcomes with one sample_id.

    None rewards (the validator failed) are left out; a group with fewer than two judged rewards
    says nothing about variance and is not yielded.
    """
    current, rewards = None, []
    for out in [*outcomes, None]:
        sid = None if out is None else out["sample_id"]
        if sid != current or out is None:
            if current is not None and len(rewards) >= 2:
                yield current, len(set(rewards)) > 1
            current, rewards = sid, []
        if out is not None and out["reward"] is not None:
            rewards.append(float(out["reward"]))


class ReplayBuffer:
    """Record indices per domain, oldest first, at most `capacity` each.

    `update(domain, i, signal)`: a group with signal enters its problem (or moves it to the newest
    position, pushing the oldest out when full); a group without signal removes it.
    """

    def __init__(self, domains: Iterable[str], capacity: int) -> None:
        self.capacity = capacity
        self._items: dict[str, list[int]] = {d: [] for d in domains}

    def update(self, domain: str, i: int, signal: bool) -> None:
        items = self._items[domain]
        if i in items:
            items.remove(i)
        if signal:
            items.append(i)
            del items[: max(0, len(items) - self.capacity)]

    def members(self, domain: str) -> list[int]:
        """The domain's buffered record indices, oldest first."""
        return list(self._items[domain])

    def __len__(self) -> int:
        return sum(len(v) for v in self._items.values())

    def state_dict(self) -> dict[str, list[int]]:
        return {d: list(v) for d, v in self._items.items()}

    def load_state_dict(self, state: Mapping[str, Iterable[int]]) -> None:
        """Restore the buffers; domains absent from `state` (or an older state without any) load as empty."""
        self._items = {d: [int(i) for i in state.get(d, ())][-self.capacity:] for d in self._items}
