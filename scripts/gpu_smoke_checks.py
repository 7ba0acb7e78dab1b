"""The assertions of scripts/gpu_smoke.sh that need no GPU to compute: logprob gaps, run metrics, GPU processes.

    python scripts/gpu_smoke_checks.py run-metrics RUN_DIR [--colocated]   # time/sleep, time/wake, is_weight/mean
    python scripts/gpu_smoke_checks.py gpu-pids > before.txt               # compute processes on the GPUs now
    python scripts/gpu_smoke_checks.py no-new-gpu-processes before.txt [--wait 60]

Every command prints one `name value` line per number it measures and exits 1 naming the first failed
assertion. tests/gpu/ import `logprob_gap` and `sleep_freed_share` from here; tests/unit/scripts test it
all on CPU.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

IS_WEIGHT_RANGE = (0.7, 1.4)
MAX_MEAN_ABS_GAP = 0.02  # vLLM vs learner, same base dtype
MIN_SLEEP_FREED_SHARE = 0.8  # of the memory the engine took when it started


class SmokeCheckFailed(AssertionError):
    """One smoke assertion failed; the message names what, where and the numbers."""


@dataclass(frozen=True)
class Gap:
    """|a - b| over all tokens of all rows."""

    mean_abs: float
    max_abs: float
    tokens: int


def logprob_gap(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> Gap:
    """Per-token |a - b| of two logprob sets of the same completions (rows of equal lengths), mean and max."""
    if len(a) != len(b):
        raise ValueError(f"logprob_gap: {len(a)} rows against {len(b)}")
    diffs = []
    for i, (ra, rb) in enumerate(zip(a, b, strict=True)):
        if len(ra) != len(rb):
            raise ValueError(f"logprob_gap: row {i} has {len(ra)} logprobs against {len(rb)}")
        diffs += [abs(float(x) - float(y)) for x, y in zip(ra, rb, strict=True)]
    if not diffs:
        raise ValueError("logprob_gap: no tokens to compare")
    if any(math.isnan(d) for d in diffs):
        raise ValueError("logprob_gap: a logprob is nan")
    return Gap(sum(diffs) / len(diffs), max(diffs), len(diffs))


def sleep_freed_share(free_before_engine: int, free_awake: int, free_asleep: int) -> float:
    """Share of the engine's memory (free before it started minus free awake) that sleep gave back."""
    taken = free_before_engine - free_awake
    if taken <= 0:
        raise ValueError(f"the engine took no GPU memory (free {free_before_engine} B before it, {free_awake} B "
                         "with it): the measurement is wrong")
    return (free_asleep - free_awake) / taken


def run_metric_checks(records: Sequence[Mapping], colocated: bool,
                      is_weight_range: tuple[float, float] = IS_WEIGHT_RANGE,
                      where: str = "metrics.jsonl") -> dict[str, float]:
    """Measurements of a run's step records; raises SmokeCheckFailed on the first failed assertion.

    Every step record has is_weight/mean within `is_weight_range` (behaviour and learner policies agree:
    the engine samples what the learner trains); colocated runs also have time/sleep and time/wake
    (the engine slept through every learner step).
    """
    steps = [r for r in records if "step" in r and "time/step" in r]
    if not steps:
        raise SmokeCheckFailed(f"{where}: no step records (a line with step and time/step)")
    out: dict[str, float] = {"steps": float(len(steps))}
    low, high = is_weight_range
    for r in steps:
        s = r["step"]
        w = r.get("is_weight/mean")
        if w is None:
            raise SmokeCheckFailed(f"{where}: step {s} has no is_weight/mean (learner.importance_sampling off?)")
        out[f"step{s}/is_weight/mean"] = float(w)
        for key in ("is_weight/min", "is_weight/max", "memory/peak_allocated_gib", "time/step"):
            if key in r:
                out[f"step{s}/{key}"] = float(r[key])
        if not low <= float(w) <= high:
            raise SmokeCheckFailed(f"{where}: step {s} is_weight/mean {float(w):.4f} is outside [{low}, {high}]: "
                                   "behaviour logprobs are not the learner's policy")
        if colocated:
            for key in ("time/sleep", "time/wake"):
                if key not in r:
                    raise SmokeCheckFailed(f"{where}: step {s} has no {key}: the colocated engine did not sleep/wake")
                out[f"step{s}/{key}"] = float(r[key])
    return out


def parse_gpu_pids(nvidia_smi_csv: str) -> set[int]:
    """PIDs of `nvidia-smi --query-compute-apps=pid --format=csv,noheader` output."""
    return {int(line.strip()) for line in nvidia_smi_csv.splitlines() if line.strip().isdigit()}


def gpu_pids() -> set[int]:
    """Compute processes on this machine's GPUs now (nvidia-smi)."""
    run = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        raise SmokeCheckFailed(f"nvidia-smi failed (exit {run.returncode}): {run.stderr.strip()}")
    return parse_gpu_pids(run.stdout)


def new_gpu_pids(before: set[int], now: set[int]) -> set[int]:
    return now - before


def _wait_no_new_pids(before: set[int], wait_s: float) -> set[int]:
    deadline = time.monotonic() + wait_s
    while True:
        left = new_gpu_pids(before, gpu_pids())
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(2.0)


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["run-metrics"] and len(argv) >= 2:
            from learner.driver.step_metrics import read_metrics

            run_dir = Path(argv[1])
            colocated = "--colocated" in argv[2:]
            tag = "colocated" if colocated else "run"
            for name, value in run_metric_checks(read_metrics(run_dir), colocated,
                                                 where=str(run_dir / "metrics.jsonl")).items():
                print(f"{tag}/{name} {value:.6g}")
            return 0
        if argv[:1] == ["gpu-pids"]:
            print("\n".join(str(p) for p in sorted(gpu_pids())))
            return 0
        if argv[:1] == ["no-new-gpu-processes"] and len(argv) >= 2:
            before = parse_gpu_pids(Path(argv[1]).read_text())
            wait_s = float(argv[argv.index("--wait") + 1]) if "--wait" in argv else 60.0
            left = _wait_no_new_pids(before, wait_s)
            print(f"gpu/new_processes_left {len(left)}")
            if left:
                raise SmokeCheckFailed(f"processes {sorted(left)} still hold the GPU {wait_s:g} s after the run "
                                       "(nvidia-smi --query-compute-apps): an engine or actor outlived its run")
            return 0
    except SmokeCheckFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
