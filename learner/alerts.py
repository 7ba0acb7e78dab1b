"""Collapse alerts: a domain whose success falls more than a margin below its best so far.

    python -m learner.alerts runs/tiny-cpu-20250101-120000 --margin 0.2

The seed's users lost blocksworld (to 0 % success) in one GRPO run without noticing in time. The
driver feeds each in-training evaluation to a `CollapseDetector`; `scan_run` replays a finished (or
running) run's `eval/step-N.json` files, or its per-batch `success/<domain>` keys, for the same alerts.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_EVAL_FILE = re.compile(r"^step-(\d+)\.json$")


@dataclass(frozen=True)
class CollapseAlert:
    """One domain that fell from `best` (at `best_step`) to `current` (at `step`)."""

    step: int
    domain: str
    best: float
    best_step: int
    current: float
    margin: float

    def line(self) -> str:
        return (f"ALERT collapse: step {self.step}: {self.domain} success {self.current:.2f} is "
                f"{self.best - self.current:.2f} below its best {self.best:.2f} (step {self.best_step}); "
                f"margin {self.margin:.2f}")


class CollapseDetector:
    """Tracks the best success per domain and reports a drop of more than `margin` below it.

    A domain alerts once when it falls below `best - margin` and is re-armed when it climbs back
    within the margin, so a long collapse gives one line, not one per step. With `window` > 1 the
    detector compares the mean of the last `window` values (per-batch success is noisy; held-out
    evaluations are not, and use window 1).
    """

    def __init__(self, margin: float, window: int = 1) -> None:
        if not 0.0 <= margin <= 1.0:
            raise ValueError(f"margin must be in [0, 1] (a success-rate difference), got {margin}")
        if window < 1:
            raise ValueError(f"window must be >= 1 (values averaged), got {window}")
        self.margin = margin
        self.window = window
        self._recent: dict[str, deque[float]] = {}
        self._best: dict[str, tuple[float, int]] = {}
        self._alerting: set[str] = set()
        self.alerts: list[CollapseAlert] = []

    def update(self, step: int, success_by_domain: Mapping[str, float]) -> list[str]:
        """Feed one step's success per domain (fractions in [0, 1]); returns the new alert lines."""
        lines = []
        for domain, value in sorted(success_by_domain.items()):
            if value is None or not math.isfinite(value):
                continue  # a domain absent from this batch, or a NaN written for "no samples"
            recent = self._recent.setdefault(domain, deque(maxlen=self.window))
            recent.append(float(value))
            if len(recent) < self.window:
                continue
            current = sum(recent) / len(recent)
            best, best_step = self._best.get(domain, (current, step))
            if current >= best:
                best, best_step = current, step
            self._best[domain] = (best, best_step)
            if best - current > self.margin:
                if domain not in self._alerting:
                    self._alerting.add(domain)
                    alert = CollapseAlert(step, domain, best, best_step, current, self.margin)
                    self.alerts.append(alert)
                    lines.append(alert.line())
            else:
                self._alerting.discard(domain)
        return lines

    def best(self) -> dict[str, float]:
        """Best (windowed) success seen so far per domain."""
        return {d: b for d, (b, _) in sorted(self._best.items())}

    def state_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "window": self.window,
                "recent": {d: list(v) for d, v in self._recent.items()},
                "best": {d: list(v) for d, v in self._best.items()}, "alerting": sorted(self._alerting)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["window"] != self.window:
            raise ValueError(f"collapse detector state has window {state['window']}, this one {self.window}")
        self._recent = {d: deque(v, maxlen=self.window) for d, v in state["recent"].items()}
        self._best = {d: (float(b), int(s)) for d, (b, s) in state["best"].items()}
        self._alerting = set(state["alerting"])


def success_from_records(records: Sequence[Mapping[str, Any]]) -> list[tuple[int, dict[str, float]]]:
    """(step, {domain: success}) from the per-batch `success/<domain>` keys of metrics.jsonl records."""
    out = []
    for i, rec in enumerate(records):
        values = {k.split("/", 1)[1]: float(v) for k, v in rec.items()
                  if k.startswith("success/") and isinstance(v, (int, float))}
        if values:
            out.append((int(rec.get("step", i)), values))
    return out


def load_eval_reports(eval_dir: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(step, report) of every `eval/step-N.json` (eval_core.summarize format), by step."""
    folder = Path(eval_dir)
    if not folder.is_dir():
        return []
    out = []
    for path in folder.iterdir():
        match = _EVAL_FILE.match(path.name)
        if match is None:
            continue
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
        if not isinstance(report.get("domains"), dict):
            raise ValueError(f"{path}: no 'domains' table (expected an eval_core.summarize report)")
        out.append((int(match.group(1)), report))
    return sorted(out, key=lambda item: item[0])


def success_from_eval_reports(reports: Sequence[tuple[int, Mapping[str, Any]]]) -> list[tuple[int, dict[str, float]]]:
    """(step, {domain: success_rate}) of (step, report) pairs."""
    return [(step, {d: float(r["success_rate"]) for d, r in report["domains"].items() if "success_rate" in r})
            for step, report in reports]


def success_from_eval_dir(eval_dir: str | Path) -> list[tuple[int, dict[str, float]]]:
    """(step, {domain: success_rate}) from `eval/step-N.json` reports, by step."""
    return success_from_eval_reports(load_eval_reports(eval_dir))


def replay(series: Sequence[tuple[int, Mapping[str, float]]], margin: float, window: int = 1) -> list[str]:
    """Alert lines a detector gives on a whole series, in order."""
    detector = CollapseDetector(margin, window)
    lines: list[str] = []
    for step, values in series:
        lines.extend(detector.update(step, values))
    return lines


def collapse_alerts(records: Sequence[Mapping[str, Any]], evals: Sequence[tuple[int, Mapping[str, float]]],
                    margin: float, window: int = 5) -> list[str]:
    """Alerts from held-out evaluations (step, {domain: success}) when there are any, else from training batches.

    Training success is per batch, so it is averaged over `window` steps first; held-out evaluations
    are compared one by one.
    """
    if evals:
        return [f"[eval] {line}" for line in replay(evals, margin, 1)]
    return [f"[train, mean of {window} steps] {line}" for line in replay(success_from_records(records), margin, window)]


def scan_run(run_dir: str | Path, margin: float, window: int = 5) -> list[str]:
    """Collapse alerts of a run directory (its eval/step-N.json files, else its metrics.jsonl)."""
    root = Path(run_dir)
    records = []
    metrics = root / "metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash or a live writer
    return collapse_alerts(records, success_from_eval_dir(root / "eval"), margin, window)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m learner.alerts", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="run directory (metrics.jsonl, eval/step-N.json)")
    p.add_argument("--margin", type=float, default=0.2, help="success drop below the best that alerts (fraction)")
    p.add_argument("--window", type=int, default=5, help="steps averaged when reading training success")
    args = p.parse_args(argv)
    if not Path(args.run_dir).is_dir():
        print(f"error: {args.run_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        lines = scan_run(args.run_dir, args.margin, args.window)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines) if lines else "no collapse alerts")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
