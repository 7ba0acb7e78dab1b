"""Seconds per GRPO step of the tiny config in sync and async mode, measured side by side in one run.

    python benchmarks/pipeline.py [--steps 30] [--sft-steps 100]

Prints the async/sync ratio (target <= 0.65 once rollout and learning take similar time) and the share
of each phase (sample, rollout, reward, learn, weight sync) in both modes. Both runs use the same data,
the same SFT'd start and the same seed; the first 3 steps of each are left out as warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package `sampler`, not benchmarks/sampler.py beside this file

from learner.config import load_config  # noqa: E402
from learner.pipeline import run  # noqa: E402
from sampler.datagen.builder import build_dataset  # noqa: E402

PHASES = ("sample", "rollout", "reward", "learn", "weight_sync")


def measure(mode: str, data: Path, out: Path, steps: int, sft_steps: int) -> dict[str, float]:
    overrides = [
        f"mode={mode}", f"output_dir={out}", f"sampler.data_root={data}", f"max_steps={steps}",
        f"save_steps={steps}", "eval.before_after=false", "logging.progress_bar=false",
        f"sft.steps={sft_steps}", "sft.minutes=null",
    ]
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", overrides)
    run(cfg)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][3:]
    # wall time per step: a step's record is written when its update is done, so take the spacing of
    # the steps' own phase clocks; async overlaps rollout with learn, so the sum of phases overstates it
    walls = [r["time/wall"] for r in records if "time/wall" in r]
    per_step = statistics.mean(walls) if walls else statistics.mean(r["time/step"] for r in records)
    phases = {p: statistics.mean(r[f"time/{p}"] for r in records) for p in PHASES}
    return {"seconds_per_step": per_step, **phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sft-steps", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        build_dataset(data, per_domain=60, sizes="tiny", prompt_style="compact", test_fraction=0.2, seed=0)
        results = {mode: measure(mode, data, Path(tmp) / mode, args.steps, args.sft_steps)
                   for mode in ("sync", "async")}
    print(f"\n{'mode':<6} {'s/step':>7}  " + "  ".join(f"{p:>11}" for p in PHASES))
    for mode, res in results.items():
        total = sum(res[p] for p in PHASES)
        shares = "  ".join(f"{res[p]:>6.2f}s {res[p] / total:>3.0%}" for p in PHASES)
        print(f"{mode:<6} {res['seconds_per_step']:>7.2f}  {shares}")
    ratio = results["async"]["seconds_per_step"] / results["sync"]["seconds_per_step"]
    print(f"\nasync / sync seconds per step: {ratio:.2f} (target <= 0.65)")


if __name__ == "__main__":
    main()
