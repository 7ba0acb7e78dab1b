"""reward_debug.log: one line per scored completion, and a per-step summary that flags zero-std groups.

Line format (tab-separated `key=value`, greppable):

    step=3  sample_id=ferry:12  domain=ferry  label=precondition_violation  reward=-0.4500  failed_step=2
            plan=(board c1 l1) | (sail l1 l2) ...  [dropped_lines=3]  [after=...]  [error=...]
    step=3  SUMMARY  completions=32  scored=31  none=1  mean_reward=-0.3125  groups=8  zero_std_groups=2
            labels=...  WARNING reward std = 0 in 2/8 groups: ferry:12, spanner:4

A group is the completions of one prompt (same sample_id). A group whose rewards are all equal gives
zero advantage to every member: the seed's "reward std = 0" warning, kept and made countable.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from reward_service.contracts import Score

log = logging.getLogger(__name__)
_EQUAL = 1e-9  # rewards closer than this are "equal" (they come from a few fixed formulas)
_STEP = re.compile(r"^step=(\d+)\t")


def _clean(text: str, limit: int) -> str:
    flat = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    flat = flat.replace("\t", " ")
    return flat if len(flat) <= limit else flat[: max(limit - 3, 0)] + "..."


def format_score_line(step: int, score: Score, plan_chars: int = 160) -> str:
    """The log line of one scored completion (no trailing newline)."""
    reward = "None" if score.reward is None else f"{score.reward:.4f}"
    fields = [
        f"step={step}",
        f"sample_id={score.sample_id}",
        f"domain={score.domain}",
        f"label={score.label.value}",
        f"reward={reward}",
        f"failed_step={score.failed_step}",
        f"plan={_clean(score.plan, plan_chars)}",
    ]
    if score.dropped_lines:
        fields.append(f"dropped_lines={score.dropped_lines}")
    if score.trailing_text:
        fields.append(f"after={_clean(score.trailing_text, 60)}")
    if score.error:
        fields.append(f"error={_clean(score.error, 120)}")
    return "\t".join(fields)


@dataclass(frozen=True)
class StepSummary:
    """What one step's rewards looked like, group by group."""

    step: int
    completions: int
    scored: int  # rewards that are numbers (not None)
    mean_reward: float | None
    groups: int  # groups with at least two numeric rewards
    zero_std_groups: tuple[str, ...]  # sample_ids of groups whose rewards are all equal
    label_counts: tuple[tuple[str, int], ...]

    @property
    def zero_std_fraction(self) -> float:
        return len(self.zero_std_groups) / self.groups if self.groups else 0.0

    def line(self) -> str:
        """The SUMMARY line of reward_debug.log."""
        mean = "None" if self.mean_reward is None else f"{self.mean_reward:.4f}"
        labels = ",".join(f"{k}:{v}" for k, v in self.label_counts)
        text = (
            f"step={self.step}\tSUMMARY\tcompletions={self.completions}\tscored={self.scored}"
            f"\tnone={self.completions - self.scored}\tmean_reward={mean}\tgroups={self.groups}"
            f"\tzero_std_groups={len(self.zero_std_groups)}\tlabels={labels}"
        )
        if self.zero_std_groups:
            shown = ", ".join(self.zero_std_groups[:10]) + (" ..." if len(self.zero_std_groups) > 10 else "")
            text += f"\tWARNING reward std = 0 in {len(self.zero_std_groups)}/{self.groups} groups: {shown}"
        return text


def summarize_step(step: int, scores: Sequence[Score]) -> StepSummary:
    """Group `scores` by sample_id and flag the groups whose numeric rewards are all equal."""
    groups: dict[str, list[float]] = {}
    for score in scores:
        bucket = groups.setdefault(score.sample_id, [])
        if score.reward is not None:
            bucket.append(score.reward)
    sized = {sid: rewards for sid, rewards in groups.items() if len(rewards) >= 2}
    flat = [r for s in scores if (r := s.reward) is not None]
    zero = tuple(sid for sid, rewards in sized.items() if max(rewards) - min(rewards) <= _EQUAL)
    return StepSummary(
        step=step,
        completions=len(scores),
        scored=len(flat),
        mean_reward=math.fsum(flat) / len(flat) if flat else None,
        groups=len(sized),
        zero_std_groups=zero,
        label_counts=tuple(sorted(Counter(s.label.value for s in scores).items())),
    )


def replace_lines(path: Path, lines: list[str]) -> None:
    """Rewrite a log file with `lines` atomically: written beside it, fsynced, renamed over it (a crash
    leaves the old file or the new one, never half of each). Also used for metrics.jsonl."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def truncate_debug_log(path: str | Path, start_step: int) -> int:
    """Rewrite reward_debug.log without the lines of steps >= `start_step`; returns how many lines were dropped.

    On a resume from the checkpoint of step k - 1 the lines a crashed run wrote for steps >= k would be
    written twice. A last line without its newline was cut by a crash mid-write (a torn line) and goes
    too, as does any line that does not start with `step=N<TAB>`; each is warned with its file:line.
    Kept lines are copied as they were; the file is replaced atomically (written beside it, fsynced,
    renamed), so a crash here loses no kept line.
    """
    path = Path(path)
    if not path.exists():
        return 0
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline, else the cut last line
    keep = []
    for n, line in enumerate(lines, 1):
        m = _STEP.match(line)
        if m is None:
            if line.strip():
                log.warning("%s:%d: dropped (not a step=N line)", path, n)
            continue
        if int(m.group(1)) < start_step:
            keep.append(line)
    if torn:
        log.warning("%s:%d: dropped (the last line has no newline: cut by a crash mid-write)", path, len(lines) + 1)
    replace_lines(path, keep)
    dropped = len(lines) + bool(torn) - len(keep)
    if dropped:
        log.info("%s: %d line(s) of steps >= %d (or torn) dropped; those steps are logged again", path, dropped,
                 start_step)
    return dropped


class RewardDebugLog:
    """Appends to `<run_dir>/reward_debug.log`; `write_step` logs a step's lines and its summary."""

    def __init__(self, path: str | Path, plan_chars: int = 160) -> None:
        self.path = Path(path)
        self.plan_chars = plan_chars
        self._file: TextIO | None = None

    def write_step(self, step: int, scores: Sequence[Score]) -> StepSummary:
        """One line per score, then the SUMMARY line; returns the summary (also warned when zero-std)."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
            if self._file.tell() > 0 and not self.path.read_bytes().endswith(b"\n"):
                self._file.write("\n")  # a torn last line (a crash mid-write) must not swallow the next one
        for score in scores:
            self._file.write(format_score_line(step, score, self.plan_chars) + "\n")
        summary = summarize_step(step, scores)
        self._file.write(summary.line() + "\n")
        self._file.flush()
        if summary.zero_std_groups:
            # on the console only when at least half the groups teach nothing; always in this file
            level = logging.WARNING if 2 * len(summary.zero_std_groups) >= summary.groups else logging.DEBUG
            log.log(level, "step %d: reward std = 0 in %d/%d groups (zero advantage)",
                    step, len(summary.zero_std_groups), summary.groups)
        return summary

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RewardDebugLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
