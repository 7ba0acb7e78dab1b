"""Seconds per GRPO step of the tiny config in sync and async mode, measured side by side in one run.

    python benchmarks/pipeline.py [--steps 30] [--sft-steps 100] [--reps 1] [--data DIR --model DIR]

Both modes start from the same SFT'd tiny model (built once, or --model/--data: e.g. the start that
`benchmarks/vs_trl.py --keep DIR` left in DIR/start/sft_model and DIR/data) and read the same data with the
same seed; each run is `python -m learner.main --config configs/tiny_cpu.yaml mode=sync|async ...` in its own
process tree, the modes interleaved when --reps > 1. The first 3 steps of each run are left out as warm-up.
Prints the async/sync ratio of median seconds per step (target <= 0.6), the mean seconds of each phase the
driver times (sample, rollout = its wait for completions, reward, learn, weight_sync) and its share, the
per-role idle ratios measured where the roles run (rollout/idle_ratio, learner/idle_ratio), the weight
push (time/weight_sync on the driver, rollout/load_weights_s on the actor) in ms, and the peak memory per
role (PSS and RSS from /proc, benchmarks/proc_memory.py), with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads sleep
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package `sampler`, not benchmarks/sampler.py beside this file
sys.path.insert(1, str(ROOT / "benchmarks"))

from proc_memory import become_subreaper, format_peaks  # noqa: E402
from vs_trl import MB, build_start, merged_peaks, run_arm  # noqa: E402

PHASES = ("sample", "rollout", "reward", "learn", "weight_sync")
WARMUP = 3


def phases(out: Path) -> dict[str, float]:
    """Mean seconds per step of each phase after the warm-up, and the medians of the idle/push metrics."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    records = records[WARMUP:]
    res = {p: statistics.mean(r.get(f"time/{p}", 0.0) for r in records) for p in PHASES}
    for key in ("rollout/idle_ratio", "learner/idle_ratio", "time/weight_sync", "rollout/load_weights_s"):
        vals = [r[key] for r in records if r.get(key) is not None]
        res[key] = statistics.median(vals) if vals else float("nan")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sft-steps", type=int, default=100)
    parser.add_argument("--reps", type=int, default=1, help="interleaved repetitions of sync and async")
    parser.add_argument("--data", type=Path, help="data root to reuse (with --model)")
    parser.add_argument("--model", help="SFT'd start to reuse (with --data)")
    args = parser.parse_args()
    if args.steps <= WARMUP:
        parser.error(f"--steps must exceed the {WARMUP} warm-up steps")
    if (args.data is None) != (args.model is None):
        parser.error("--data and --model go together")
    become_subreaper()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.model:
            data, model = args.data.resolve(), str(Path(args.model).resolve())
            print(f"start: {model}, data {data}")
        else:
            data, model, sft_s = build_start(work, args.sft_steps)
            print(f"start: {args.sft_steps} SFT steps in {sft_s:.0f} s")
        runs: dict[str, list[dict]] = {"sync": [], "async": []}
        for rep in range(args.reps):
            for mode in (("sync", "async") if rep % 2 == 0 else ("async", "sync")):
                out = work / f"{mode}-{rep}"
                res = run_arm(mode, out, data, model, args.steps, 0.5)
                res.update(phases(out))
                runs[mode].append(res)
                print(f"rep {rep} {mode}: {statistics.median(res['walls'][WARMUP:]):.2f} s/step, load "
                      f"{res['load'][0]:.2f}-{res['load'][1]:.2f}", flush=True)
    per_step = {m: statistics.median(statistics.median(r["walls"][WARMUP:]) for r in rs) for m, rs in runs.items()}
    print(f"\n{args.steps} steps per run, {args.reps} rep(s), first {WARMUP} left out; phases: mean s per step")
    print(f"{'mode':<6} {'s/step':>7}  " + "  ".join(f"{p:>11}" for p in PHASES))
    for mode, rs in runs.items():
        mean = {p: statistics.mean(r[p] for r in rs) for p in PHASES}
        total = sum(mean.values()) or 1.0
        print(f"{mode:<6} {per_step[mode]:>7.2f}  " + "  ".join(f"{mean[p]:>6.2f}s {mean[p] / total:>3.0%}"
                                                               for p in PHASES))
    print()
    for mode, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in
               ("rollout/idle_ratio", "learner/idle_ratio", "time/weight_sync", "rollout/load_weights_s")}
        print(f"{mode:<6} rollout idle {med['rollout/idle_ratio']:.2f}, learner idle {med['learner/idle_ratio']:.2f}, "
              f"weight sync {1000 * med['time/weight_sync']:.0f} ms (driver), adapter load "
              f"{1000 * med['rollout/load_weights_s']:.0f} ms (actor), peak PSS "
              f"{max(r['peaks'].total_pss for r in rs) / MB:.0f} MB (all processes at once)")
    ratio = per_step["async"] / per_step["sync"]
    print(f"\nasync / sync median seconds per step: {ratio:.2f} (target <= 0.6)")
    loads = [x for rs in runs.values() for r in rs for x in r["load"]]
    print(f"load average (1 min) at the runs' starts and ends: {min(loads):.2f}-{max(loads):.2f} on "
          f"{os.cpu_count()} CPUs")
    for mode, rs in runs.items():
        print("\n" + format_peaks(merged_peaks(rs), f"role ({mode})"))


if __name__ == "__main__":
    main()
