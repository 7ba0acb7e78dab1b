"""Reward pool throughput: scored plans/s with 1 and 2 workers (ratio, target >= 1.7x) and pool overhead per plan.

    python benchmarks/reward_pool.py [--plans 600] [--validator val|native] [--repeats 3]

Measured side by side in one run on one corpus (the PDDL fixtures' plans, cycled): in-process
RewardScorer on the same chunks the 1-worker pool gets, then RewardPool with 1 and 2 workers (warmed up
first: actor start-up is not counted). Overhead per plan = pool(1 worker) - in-process time per plan.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reward_service.config import RewardConfig  # noqa: E402
from reward_service.contracts import Completion  # noqa: E402
from reward_service.scoring import RewardScorer  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "pddl"


def corpus(n: int) -> tuple[list[Completion], list[dict]]:
    plans = sorted(p for p in FIXTURES.glob("*/p01.*.plan"))
    if not plans:
        raise SystemExit(f"no fixture plans under {FIXTURES}")
    completions, samples = [], {}
    for i in range(n):
        plan = plans[i % len(plans)]
        domain = plan.parent.name
        sid = f"{domain}:1"
        completions.append(Completion(sid, plan.read_text()))
        meta = {"problem_file": f"{domain}/p01.pddl", "domain_file": f"{domain}/domain.pddl"}
        samples[sid] = {"sample_id": sid, "domain": domain, "meta": meta}
    return completions, list(samples.values())


def best_rate(score, completions, samples, repeats: int) -> float:
    """Plans per second, the median of `repeats` timed runs."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = score(completions, samples)
        rates.append(len(out) / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=600)
    parser.add_argument("--validator", choices=["val", "native"], default="val")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import ray

    from actors.reward import RewardPool, plan_chunks

    completions, samples = corpus(args.plans)
    config = RewardConfig(validator=args.validator)
    scorer = RewardScorer(config, FIXTURES)
    by_id = {s["sample_id"]: s for s in samples}
    chunks = plan_chunks(completions, by_id, config.chunk_size, 1)  # the 1-worker pool's partition

    def in_process(batch, samples):
        return [s for chunk in chunks for s in scorer.score([batch[i] for i in chunk], samples)]

    in_process(completions, samples)  # warm caches and imports
    inproc = best_rate(in_process, completions, samples, args.repeats)

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    rates = {}
    for workers in (1, 2):
        cfg = config.model_copy(update={"num_workers": workers, "cpus_per_worker": 1.0})
        with RewardPool(cfg, str(FIXTURES), name_prefix=f"bench{workers}") as pool:
            pool.wait_ready()
            pool.score(completions[:100], samples)  # warm each worker's validator
            rates[workers] = best_rate(pool.score, completions, samples, args.repeats)
    ray.shutdown()

    overhead_ms = (1 / rates[1] - 1 / inproc) * 1000
    print(f"validator={args.validator} plans={args.plans} repeats={args.repeats} (median)")
    print(f"in-process          {inproc:9.1f} plans/s  ({1000 / inproc:.3f} ms/plan)")
    print(f"pool, 1 worker      {rates[1]:9.1f} plans/s  ({1000 / rates[1]:.3f} ms/plan)")
    print(f"pool, 2 workers     {rates[2]:9.1f} plans/s  ({1000 / rates[2]:.3f} ms/plan)")
    print(f"ratio 2/1 workers   {rates[2] / rates[1]:9.2f}x  (target >= 1.7x)")
    print(f"pool overhead       {overhead_ms:9.3f} ms/plan vs in-process")


if __name__ == "__main__":
    main()
