"""Validator throughput: plans/second per core for VAL one call per plan, VAL batched per problem, and native.

    python benchmarks/validator_throughput.py [--problems-per-domain 2] [--plans-per-problem 10] [--steps 20]

One corpus (random applicable walks of exactly --steps actions over generated problems of the fixture
domains that allow them; spanner's one-way corridor dead-ends sooner and is left out),
judged by all three in one run; every verdict is checked equal. Targets (issue 3):
native >= 40x VAL-per-plan and >= 2x VAL-batched. Each measurement runs one plan at a time on one core
(VAL's subprocess is waited for), so plans/second is per core. Native's cache is warmed first: a repeat
of the same problem costs no parse, which is how the reward pool uses it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from diffcases.generator import FIXTURES, walk_corpus  # noqa: E402

from reward_service.native import NativeValidator  # noqa: E402
from reward_service.plan_file import parse_plan_text  # noqa: E402
from reward_service.val import ValValidator  # noqa: E402


def _timed(fn) -> tuple[list, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems-per-domain", type=int, default=2)
    ap.add_argument("--plans-per-problem", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--native-repeats", type=int, default=20, help="passes over the corpus for native timing")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="valbench-"))
    tasks = []
    for i, (domain, ptext, plan_texts) in enumerate(
        walk_corpus(args.seed, args.steps, args.problems_per_domain, args.plans_per_problem)
    ):
        pf = tmp / f"problem-{i}.pddl"
        pf.write_text(ptext)
        tasks.append((FIXTURES / domain / "domain.pddl", pf, [parse_plan_text(t) for t in plan_texts]))
    n = sum(len(plans) for _, _, plans in tasks)

    val, native = ValValidator(timeout_s=30), NativeValidator()
    for d, p, plans in tasks:  # warm: VAL's pre-check task cache and native's parse cache, page cache
        val.validate(d, p, plans[0])
        native.validate(d, p, plans[0])

    per_plan, t_one = _timed(lambda: [val.validate(d, p, x) for d, p, plans in tasks for x in plans])
    batched, t_batch = _timed(lambda: [r for d, p, plans in tasks for r in val.validate_many(d, p, plans)])
    nat, t_nat = _timed(lambda: [native.validate(d, p, x) for _ in range(args.native_repeats)
                                 for d, p, plans in tasks for x in plans])
    t_nat /= args.native_repeats
    nat = nat[:n]

    def key(r):
        return replace(r, latency_ms=0.0, validator="", messages=(), violated_constraint=None,
                       unsatisfied_preconditions=())

    assert [key(r) for r in per_plan] == [key(r) for r in batched], "batched VAL differs from per-plan VAL"
    fields = ("label", "failed_step", "goals_satisfied", "goals_total", "plan_length")
    bad = [i for i, (a, b) in enumerate(zip(per_plan, nat, strict=True))
           if any(getattr(a, f) != getattr(b, f) for f in fields)]
    labels = sorted({r.label.value for r in per_plan})
    domains = sorted({d.parent.name for d, _, _ in tasks})
    print(f"corpus: {n} plans of {args.steps} steps over {len(tasks)} problems of {domains}; labels {labels}; "
          f"native/VAL disagreements: {len(bad)}")
    rates = {"VAL one call per plan": n / t_one, "VAL batched per problem": n / t_batch, "native": n / t_nat}
    for name, rate in rates.items():
        print(f"{name:>26}: {rate:10.1f} plans/s per core")
    r1 = rates["native"] / rates["VAL one call per plan"]
    r2 = rates["native"] / rates["VAL batched per problem"]
    print(f"native / VAL per plan: {r1:8.1f}x  (target >= 40x: {'met' if r1 >= 40 else 'NOT met'})")
    print(f"native / VAL batched:  {r2:8.1f}x  (target >= 2x: {'met' if r2 >= 2 else 'NOT met'})")
    print(f"VAL batched / VAL per plan: {rates['VAL batched per problem'] / rates['VAL one call per plan']:.1f}x")


if __name__ == "__main__":
    main()
