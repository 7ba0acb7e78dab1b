"""Collapse alerts: a domain whose success falls, beyond its noise, more than a margin below its best so far.

    python -m learner.reporting.alerts runs/tiny-cpu-20250101-120000 --margin 0.2

The seed's users lost blocksworld (to 0 % success) in one GRPO run without noticing in time. The
driver feeds each in-training evaluation to a `CollapseDetector`; `scan_run` replays a finished (or
running) run's `eval/step-N.json` files, or its per-batch `success/<domain>` keys, for the same alerts.

A value is judged with its sample count: the alert needs the drop from the best to the upper end of
the current value's 95 % Wilson interval to exceed the margin, so 20 held-out problems need a larger
fall than 200. Training batches hold few prompts per domain (2 in the default run), so they are pooled
over a window of at least `TRAIN_MIN_PROMPTS` prompts per domain before they are judged, and counted
by prompts, not completions (the completions of one prompt succeed or fail together). One fall gives
one alert: the domain re-arms only once it climbs back within `rearm` (half the margin) of its best.
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

from learner.eval.core import wilson_interval

_EVAL_FILE = re.compile(r"^step-(\d+)\.json$")
TRAIN_MIN_PROMPTS = 80  # prompts per domain a training window pools before it is judged (40 steps of the default)
TRAIN_WINDOW = 5  # steps a training window holds at least


@dataclass(frozen=True)
class Rate:
    """A success fraction and the independent trials behind it (held-out completions, training prompts)."""

    value: float
    n: float | None = None  # None: unknown, judged without an interval

    def upper(self) -> float:
        """Upper end of the 95 % Wilson interval (the value itself when n is unknown)."""
        if not self.n:
            return self.value
        return wilson_interval(self.value * self.n, self.n)[1]  # type: ignore[arg-type]


@dataclass(frozen=True)
class CollapseAlert:
    """One domain that fell from `best` (at `best_step`) to `current` (at `step`), `upper` its interval's top."""

    step: int
    domain: str
    best: float
    best_step: int
    current: float
    margin: float
    upper: float | None = None
    n: float | None = None

    def line(self) -> str:
        noise = "" if self.n is None or self.upper is None else f" (95 % up to {self.upper:.2f}, n {self.n:g})"
        return (f"ALERT collapse: step {self.step}: {self.domain} success {self.current:.2f}{noise} is "
                f"{self.best - self.current:.2f} below its best {self.best:.2f} (step {self.best_step}); "
                f"margin {self.margin:.2f}")


def _as_rate(value: float | Rate | None) -> Rate | None:
    if value is None:
        return None
    rate = value if isinstance(value, Rate) else Rate(float(value))
    return rate if math.isfinite(rate.value) else None  # NaN is written for "no samples"


class CollapseDetector:
    """Tracks the best success per domain and reports a drop of more than `margin` beyond the noise.

    Each update appends one value per domain to that domain's window; the window keeps the last
    `window` values, and more while fewer than `min_samples` trials (the values' `n`) are in it, and
    is judged only once both are reached. Its value is the n-weighted mean. An alert fires when
    `best - upper(current) > margin` and the domain is not already alerting; it re-arms once
    `best - current <= rearm`. Plain floats count as values of unknown n (no interval, one trial each
    toward `min_samples`).
    """

    def __init__(self, margin: float, window: int = 1, min_samples: float = 0, rearm: float | None = None) -> None:
        if not 0.0 <= margin <= 1.0:
            raise ValueError(f"margin must be in [0, 1] (a success-rate difference), got {margin}")
        if window < 1:
            raise ValueError(f"window must be >= 1 (values averaged), got {window}")
        if min_samples < 0:
            raise ValueError(f"min_samples must be >= 0 (trials per window), got {min_samples}")
        rearm = margin / 2 if rearm is None else rearm
        if not 0.0 <= rearm <= margin:
            raise ValueError(f"rearm must be in [0, margin={margin}] (distance to the best that re-arms), got {rearm}")
        self.margin = margin
        self.window = window
        self.min_samples = min_samples
        self.rearm = rearm
        self._recent: dict[str, deque[tuple[float, float | None]]] = {}
        self._best: dict[str, tuple[float, int]] = {}
        self._alerting: set[str] = set()
        self.alerts: list[CollapseAlert] = []

    def _pooled(self, recent: deque[tuple[float, float | None]]) -> Rate | None:
        counted = sum(1.0 if n is None else n for _, n in recent)
        while len(recent) > self.window and counted - (recent[0][1] or 1.0) >= self.min_samples:
            counted -= recent.popleft()[1] or 1.0
        if len(recent) < self.window or counted < self.min_samples:
            return None
        if any(n is None for _, n in recent):
            return Rate(sum(v for v, _ in recent) / len(recent))
        total = sum(n for _, n in recent)  # type: ignore[misc]
        if total <= 0:
            return None
        return Rate(sum(v * n for v, n in recent) / total, total)  # type: ignore[operator]

    def update(self, step: int, success_by_domain: Mapping[str, float | Rate | None]) -> list[str]:
        """Feed one step's success per domain (fractions in [0, 1], or Rate with n); returns the new alert lines."""
        lines = []
        for domain, value in sorted(success_by_domain.items()):
            rate = _as_rate(value)
            if rate is None:
                continue  # a domain absent from this batch
            recent = self._recent.setdefault(domain, deque())
            recent.append((rate.value, rate.n))
            current = self._pooled(recent)
            if current is None:
                continue
            best, best_step = self._best.get(domain, (current.value, step))
            if current.value >= best:
                best, best_step = current.value, step
            self._best[domain] = (best, best_step)
            if domain in self._alerting:
                if best - current.value <= self.rearm:
                    self._alerting.discard(domain)
            elif best - current.upper() > self.margin:
                self._alerting.add(domain)
                alert = CollapseAlert(step, domain, best, best_step, current.value, self.margin,
                                      current.upper(), current.n)
                self.alerts.append(alert)
                lines.append(alert.line())
        return lines

    def update_report(self, step: int, report: Mapping[str, Any]) -> list[str]:
        """Feed one held-out evaluation (an eval_core.summarize report): success rates with their n."""
        return self.update(step, _rates_of_report(report))

    def best(self) -> dict[str, float]:
        """Best (windowed) success seen so far per domain."""
        return {d: b for d, (b, _) in sorted(self._best.items())}

    def state_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "window": self.window, "min_samples": self.min_samples, "rearm": self.rearm,
                "recent": {d: [list(e) for e in v] for d, v in self._recent.items()},
                "best": {d: list(v) for d, v in self._best.items()}, "alerting": sorted(self._alerting)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a checkpoint's state; one written before counts were kept (plain floats) loads too."""
        if state["window"] != self.window:
            raise ValueError(f"collapse detector state has window {state['window']}, this one {self.window}")
        self._recent = {d: deque((float(e), None) if isinstance(e, (int, float)) else (float(e[0]), e[1])
                                 for e in v) for d, v in state["recent"].items()}
        self._best = {d: (float(b), int(s)) for d, (b, s) in state["best"].items()}
        self._alerting = set(state["alerting"])


def _rates_of_report(report: Mapping[str, Any]) -> dict[str, Rate]:
    return {d: Rate(float(r["success_rate"]), float(r["n"]) if isinstance(r.get("n"), (int, float)) else None)
            for d, r in report["domains"].items() if "success_rate" in r}


def success_from_records(records: Sequence[Mapping[str, Any]]) -> list[tuple[int, dict[str, Rate]]]:
    """(step, {domain: Rate}) from the per-batch `success/<domain>` keys of metrics.jsonl records.

    n is the domain's prompts in the batch (`batch/domain_counts`); 1 where a record lacks it (older runs).
    """
    out = []
    for i, rec in enumerate(records):
        counts = rec.get("batch/domain_counts")
        counts = counts if isinstance(counts, Mapping) else {}
        values = {}
        for k, v in rec.items():
            if k.startswith("success/") and isinstance(v, (int, float)):
                domain = k.split("/", 1)[1]
                n = counts.get(domain)
                values[domain] = Rate(float(v), float(n) if isinstance(n, (int, float)) and n > 0 else 1.0)
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


def success_from_eval_reports(reports: Sequence[tuple[int, Mapping[str, Any]]]) -> list[tuple[int, dict[str, Rate]]]:
    """(step, {domain: Rate(success_rate, n)}) of (step, report) pairs."""
    return [(step, _rates_of_report(report)) for step, report in reports]


def success_from_eval_dir(eval_dir: str | Path) -> list[tuple[int, dict[str, Rate]]]:
    """(step, {domain: Rate(success_rate, n)}) from `eval/step-N.json` reports, by step."""
    return success_from_eval_reports(load_eval_reports(eval_dir))


def replay(series: Sequence[tuple[int, Mapping[str, float | Rate]]], margin: float, window: int = 1,
           min_samples: float = 0) -> list[str]:
    """Alert lines a detector gives on a whole series, in order."""
    detector = CollapseDetector(margin, window, min_samples)
    lines: list[str] = []
    for step, values in series:
        lines.extend(detector.update(step, values))
    return lines


def collapse_alerts(records: Sequence[Mapping[str, Any]], evals: Sequence[tuple[int, Mapping[str, float | Rate]]],
                    margin: float, window: int = TRAIN_WINDOW, min_prompts: float = TRAIN_MIN_PROMPTS) -> list[str]:
    """Alerts from held-out evaluations (step, {domain: success}) when there are any, else from training batches.

    Held-out evaluations are judged one by one with their intervals; training success is pooled over
    at least `window` steps and `min_prompts` prompts per domain first.
    """
    if evals:
        return [f"[eval] {line}" for line in replay(evals, margin, 1)]
    lines = replay(success_from_records(records), margin, window, min_prompts)
    return [f"[train, >= {min_prompts:g} prompts per domain] {line}" for line in lines]


def scan_run(run_dir: str | Path, margin: float, window: int = TRAIN_WINDOW,
             min_prompts: float = TRAIN_MIN_PROMPTS) -> list[str]:
    """Collapse alerts of a run directory (its eval/step-N.json files, else its metrics.jsonl)."""
    from learner.driver.step_metrics import read_metrics  # a torn line (a crash, a live writer) dropped with a warning

    root = Path(run_dir)
    return collapse_alerts(read_metrics(root), success_from_eval_dir(root / "eval"), margin, window, min_prompts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m learner.reporting.alerts", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="run directory (metrics.jsonl, eval/step-N.json)")
    p.add_argument("--margin", type=float, default=0.2, help="success drop below the best that alerts (fraction)")
    p.add_argument("--window", type=int, default=TRAIN_WINDOW, help="steps a training window holds at least")
    p.add_argument("--min-prompts", type=float, default=TRAIN_MIN_PROMPTS,
                   help="prompts per domain a training window pools before it is judged")
    args = p.parse_args(argv)
    if not Path(args.run_dir).is_dir():
        print(f"error: {args.run_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        lines = scan_run(args.run_dir, args.margin, args.window, args.min_prompts)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines) if lines else "no collapse alerts")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
