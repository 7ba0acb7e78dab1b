"""Show what the sampler would serve: weights and batch composition per step, then the bucket table.

    python -m sampler.preview --data-root DIR --batch-size 8 --steps 20 [--max-steps M] [--json]
    python -m sampler.preview --data-root THEIRS/data/grpo --pddl-root THEIRS --difficulty safety_gen_code ...
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

from sampler.config import BUCKETS, SamplerConfig
from sampler.pddl_check import PddlFileError
from sampler.stream import BalancedBatchStream


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sampler.preview", description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, help="directory with <domain>.jsonl files")
    p.add_argument("--pddl-root", default=None, help="folder meta.*_file paths are relative to (default: --data-root)")
    p.add_argument("--difficulty", choices=["seed_doc", "safety_gen_code", "plan_length"], default="seed_doc",
                   help="difficulty preset: 5n+3r+2o (seed_doc), the seed trainer's products, or the gold length")
    p.add_argument("--check-pddl", choices=["all", "domains", "off"], default="all",
                   help="parse the referenced domain and problem files at load")
    p.add_argument("--batch-size", type=int, required=True, help="prompts per learner step")
    p.add_argument("--steps", type=int, default=20, help="steps to show, from 0")
    p.add_argument("--max-steps", type=int, default=None, help="steps of the run (progress = step/max-steps); "
                   "default: --steps")
    p.add_argument("--domains", nargs="+", default=None, help="domains to use (default: every JSONL)")
    p.add_argument("--schedule", choices=["step", "adaptive", "per_domain", "fixed"], default="step")
    p.add_argument("--data-parallel-size", type=int, default=1)
    p.add_argument("--on-bad-record", choices=["error", "skip"], default="error")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object per step, then one for the bucket table")
    return p.parse_args(argv)


def step_record(step: int, stream: BalancedBatchStream, batch: list[dict[str, Any]]) -> dict[str, Any]:
    """What --json prints for one step."""
    return {
        "step": step,
        "weights": stream.last_weights,
        "samples": [
            {k: s[k] for k in ("sample_id", "domain", "bucket", "difficulty_score")}
            | {"problem_file": s["meta"]["problem_file"]}
            for s in batch
        ],
    }


def _weights_text(weights: dict[str, dict[str, float]]) -> str:
    distinct = {tuple(w.values()) for w in weights.values()}
    if len(distinct) == 1:
        return " ".join(f"{b}={v:.2f}" for b, v in next(iter(weights.values())).items())
    return "; ".join(f"{d}: " + "/".join(f"{v:.2f}" for v in w.values()) for d, w in weights.items())


def run(args: argparse.Namespace, out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up per call, so redirected stdout is honoured
    cfg = SamplerConfig(
        data_root=args.data_root, pddl_root=args.pddl_root, difficulty=args.difficulty, check_pddl=args.check_pddl,
        domains=args.domains, batch_size=args.batch_size, seed=args.seed,
        max_steps=args.max_steps or args.steps, schedule=args.schedule,
        data_parallel_size=args.data_parallel_size, on_bad_record=args.on_bad_record,
    )
    stream = BalancedBatchStream.from_config(cfg)
    for step in range(args.steps):
        batch = stream.batch(step)
        if args.json:
            print(json.dumps(step_record(step, stream, batch)), file=out)
            continue
        domains = Counter(s["domain"] for s in batch)
        buckets = Counter(s["bucket"] for s in batch)
        print(f"step {step:4d}  weights {_weights_text(stream.last_weights)}", file=out)
        print("           domains " + " ".join(f"{d}={domains[d]}" for d in stream.domains)
              + "  buckets " + " ".join(f"{b}={buckets[b]}" for b in BUCKETS), file=out)
    rows = stream.bucket_rows()
    if args.json:
        print(json.dumps({"buckets": rows, "skipped": stream.index.skipped}), file=out)
        return
    print(f"\n{'domain':<14}{'bucket':<8}{'count':>7}  score range", file=out)
    for r in rows:
        span = "-" if r["count"] == 0 else f"{r['min_score']:g} .. {r['max_score']:g}"
        note = "  (empty: drawn from the whole domain)" if r["fallback"] else ""
        print(f"{r['domain']:<14}{r['bucket']:<8}{r['count']:>7}  {span}{note}", file=out)
    stream.close()


def main(argv: Sequence[str] | None = None) -> None:
    try:
        run(parse_args(argv))
    except (ValueError, FileNotFoundError, PddlFileError) as err:  # bad data or options: no traceback
        raise SystemExit(f"sampler.preview: {err}") from None


if __name__ == "__main__":
    main()
