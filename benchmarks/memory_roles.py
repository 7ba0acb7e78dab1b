"""Where a pddl-grpo run's memory goes: peak PSS/RSS per role, by default and with Ray's optional parts off.

    python benchmarks/memory_roles.py --data DIR/data --model DIR/start/sft_model [--steps 8] [--mode sync]
    python benchmarks/memory_roles.py --model DIR/start/sft_model --learner-probe [--micro-batch 0 20]

Runs `python -m learner.main --config configs/tiny_cpu.yaml` from a given SFT'd start (e.g. the one that
`benchmarks/vs_trl.py --keep DIR` leaves) in variants, one after another, each in its own process tree:

- default: the shipped tiny config;
- no-prestart: RAY_prestart_worker_first_driver=0 (Ray does not start idle workers when the driver connects);
- soft-limit-0: RAY_num_workers_soft_limit=0 (Ray keeps no idle workers in its pool);
- no-dashboard: cluster.include_dashboard=false (no dashboard process, its module processes or its
  multiprocessing helpers; the Prometheus gauges and the dashboard's pages go with it: docs/monitoring.md);
- micro-batch-20: learner.micro_batch_size=20 (the 80 completions of a step in 4 forward/backward passes;
  the same gradient);
- both: micro-batch-20 and no-dashboard.

Prints per variant the per-role table of benchmarks/proc_memory.py and the median seconds per step, then the
saving of each variant against the default (total PSS at one instant). Nothing here changes the project's
defaults; it measures what they cost.

--learner-probe: the learner's own memory without Ray. One fresh process per micro-batch size (0 = the
default: all B x G = 80 completions in one forward/backward) loads the policy as LearnerActor does
(learner.policy.model.load_policy, the tiny config's LoRA) and runs 4 GRPOTrainerCore steps on 80 random completions
of 64 tokens after 15-60 prompt tokens (the tiny data's lengths); prints its PSS after the imports, after the
load and after each step, with the step's seconds (and, first, after `import torch` alone).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

from proc_memory import become_subreaper, format_peaks, is_ray_system, parse_smaps_rollup  # noqa: E402
from vs_trl import MB, run_arm  # noqa: E402

VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "default": ([], {}),
    "no-prestart": ([], {"RAY_prestart_worker_first_driver": "0"}),
    "soft-limit-0": ([], {"RAY_num_workers_soft_limit": "0"}),
    "no-dashboard": (["cluster.include_dashboard=false"], {}),
    "micro-batch-20": (["learner.micro_batch_size=20"], {}),
    "both": (["learner.micro_batch_size=20", "cluster.include_dashboard=false"], {}),
}


def own_pss_mb() -> int:
    text = Path("/proc/self/smaps_rollup").read_text()
    return parse_smaps_rollup(text)[1] // MB


def learner_probe_worker(model_path: str, micro_batch: int) -> None:
    """One process: the learner's PSS after imports, policy load and each of 4 steps (see --learner-probe)."""
    import random
    import time

    bare = own_pss_mb()
    import torch

    torch.set_num_threads(1)  # as LearnerActor with cluster.learner_num_cpus: 1
    with_torch = own_pss_mb()
    from learner.config.run import load_config
    from learner.grpo.train_step import GRPOTrainerCore, TrainSample
    from learner.policy.model import load_policy

    print(f"micro_batch_size={micro_batch or 'null'}: bare {bare} MB, after import torch {with_torch} MB, after "
          f"transformers, PEFT and the learner's modules {own_pss_mb()} MB", flush=True)
    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", [f"learner.base_model={model_path}"]).learner
    cfg = cfg.model_copy(update={"micro_batch_size": micro_batch or None})
    model, tokenizer = load_policy(cfg)
    core = GRPOTrainerCore(model, tokenizer, cfg, num_training_steps=10)
    print(f"  after load_policy {own_pss_mb()} MB", flush=True)
    rng = random.Random(0)
    vocab = model.config.vocab_size
    for step in range(4):
        samples = [TrainSample(tuple(rng.randrange(4, vocab) for _ in range(rng.randint(15, 60))),
                               tuple(rng.randrange(4, vocab) for _ in range(64)), rng.uniform(-1, 1))
                   for _ in range(80)]
        t0 = time.monotonic()
        core.step(samples)
        print(f"  step {step}: {time.monotonic() - t0:.2f} s, {own_pss_mb()} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--mode", choices=("sync", "async"), default="sync")
    parser.add_argument("--learner-probe", action="store_true", help="the learner alone, per micro-batch size")
    parser.add_argument("--micro-batch", type=int, nargs="+", default=[0, 20], help="0 = all 80 in one")
    parser.add_argument("--probe-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_worker is not None:
        learner_probe_worker(args.model, args.probe_worker)
        return
    if args.learner_probe:
        for mb in args.micro_batch:  # a fresh process each: freed heap is not given back within one
            subprocess.run([sys.executable, __file__, "--model", args.model, "--probe-worker", str(mb)], check=True)
        return
    if args.data is None:
        parser.error("--data is needed unless --learner-probe")
    become_subreaper()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (overrides, env) in VARIANTS.items():
            res = run_arm(args.mode, Path(tmp) / name, args.data.resolve(), str(Path(args.model).resolve()),
                          args.steps, 0.5, extra=overrides, env=env)
            results[name] = res
            print(f"{name}: peak PSS {res['peaks'].total_pss / MB:.0f} MB, "
                  f"{statistics.median(res['walls'][1:]):.2f} s/step, load {res['load'][0]:.2f}-{res['load'][1]:.2f}",
                  flush=True)
    for name, res in results.items():
        print("\n" + format_peaks(res["peaks"], f"role ({name}, {args.mode})"))
    base = results["default"]["peaks"]
    print(f"\n{'variant':<14} {'total PSS MB':>12} {'saved MB':>9} {'Ray system PSS MB':>18} "
          f"{'idle workers peak':>18} {'idle at total peak':>19} {'s/step':>7}")
    for name, res in results.items():
        p = res["peaks"]
        idle = p.roles.get("ray: idle worker", (0, 0, 0))
        at = p.at_peak.get("ray: idle worker", (0, 0, 0))
        print(f"{name:<14} {p.total_pss / MB:>12.0f} {(base.total_pss - p.total_pss) / MB:>9.0f} "
              f"{p.ray_system_pss / MB:>18.0f} {f'{idle[1] / MB:.0f} MB/{idle[2]}':>18} "
              f"{f'{at[1] / MB:.0f} MB/{at[2]}':>19} {statistics.median(res['walls'][1:]):>7.2f}")
    roles = sorted({r for res in results.values() for r in res["peaks"].roles if is_ray_system(r)})
    print("Ray system roles seen: " + ", ".join(roles))


if __name__ == "__main__":
    main()
