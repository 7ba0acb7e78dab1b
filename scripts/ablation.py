"""Ablation of the learning switches on one shared SFT start: every arm runs only GRPO.

    python scripts/ablation.py --out runs/ablation --seeds 3407 1
    python scripts/ablation.py --out runs/ablation --sft-model runs/tiny-cpu-.../sft_model --arms step,uniform

Without --sft-model the default run's data and SFT are built once (`python -m learner.main max_steps=1
eval.before_after=false`, in OUT/sft) and its sft_model is the start of every arm. Each arm is then
`python -m learner.main learner.base_model=<sft_model> sft.enabled=false seed=<s>` plus the arm's overrides
(and any given after `--`), on the embedded default config. Held-out greedy success is read from each
run's eval_before_after.json. Results: OUT/ablation.json and OUT/ablation.md (success per domain after
GRPO, averaged over seeds, with the Wilson 95 % interval of the pooled trials, each seed's overall, and
the shared start). A run whose directory already holds eval_before_after.json is not run again, so a
killed ablation resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from learner.driver.step_metrics import read_metrics  # noqa: E402
from learner.eval.core import wilson_interval  # noqa: E402


@dataclass(frozen=True)
class Arm:
    name: str
    what: str
    overrides: tuple[str, ...]


ARMS: tuple[Arm, ...] = (
    Arm("step", "the seed's step curriculum (the default)", ()),
    Arm("uniform", "no curriculum: uniform buckets", ("sampler.schedule=fixed",)),
    Arm("adaptive", "adaptive curriculum (learnable buckets x4)", ("sampler.schedule=adaptive",)),
    Arm("refill", "zero-signal groups filtered and refilled, 2 rounds",
        ("filter_zero_std_groups=true", "max_refill_rounds=2")),
    Arm("bucket_temp", "temperature per bucket 0.9/1.0/1.3 (easy/medium/hard)",
        ("rollout.bucket_temperatures={easy: 0.9, medium: 1.0, hard: 1.3}",)),
    Arm("replay", "replay of hard problems that had signal, 25 % of draws", ("sampler.replay_fraction=0.25",)),
    Arm("emphasis", "success-weighted domain shares (>= 1 per domain)", ("sampler.domain_weighting=success",)),
)
ARM_NAMES = tuple(a.name for a in ARMS)


def arm_command(arm: Arm, sft_model: Path, data_root: Path, seed: int, out_dir: Path, max_steps: int | None,
                extra: list[str]) -> list[str]:
    """The `python -m learner.main` command of one (arm, seed) run."""
    cmd = [sys.executable, "-m", "learner.main", f"learner.base_model={sft_model}", "sft.enabled=false",
           f"seed={seed}", f"sampler.data_root={data_root}",
           "data.build_if_missing=false",  # every seed trains on the start's data
           f"output_dir={out_dir}", "logging.progress_bar=false"]
    if max_steps is not None:
        cmd.append(f"max_steps={max_steps}")
    return cmd + list(arm.overrides) + list(extra)


def build_sft_start(out: Path, extra: list[str]) -> Path:
    """The default run's data and SFT model, built once (one GRPO step, no evaluation)."""
    run_dir = out / "sft"
    model = run_dir / "sft_model"
    if (model / "config.json").exists():
        return model
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "learner.main", "max_steps=1", "eval.before_after=false",
           f"output_dir={run_dir}", "logging.progress_bar=false", *extra]
    print("building the shared SFT start:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    if not (model / "config.json").exists():
        raise SystemExit(f"error: the SFT run left no model at {model}")
    return model


def start_data_root(sft_model: Path) -> Path:
    """The data the SFT start was trained on: `sampler.data_root` of the run that built it (its config.yaml)."""
    import yaml

    config = sft_model.parent / "config.yaml"
    if not config.exists():
        raise SystemExit(f"error: {config} not found: give --data-root, the data {sft_model} was trained on")
    return Path(yaml.safe_load(config.read_text())["sampler"]["data_root"])


def run_arm(cmd: list[str], run_dir: Path) -> dict[str, Any]:
    """Run one arm unless its results exist; returns {before, after, wall_s, reward_first10, reward_last10}."""
    done = run_dir / "eval_before_after.json"
    if not done.exists():
        shutil.rmtree(run_dir, ignore_errors=True)  # a killed run's partial directory
        t = time.monotonic()
        print("running:", " ".join(cmd[1:]), flush=True)
        proc = subprocess.run(cmd, cwd=ROOT)
        if proc.returncode != 0 or not done.exists():
            raise SystemExit(f"error: {run_dir.name} failed (exit {proc.returncode}); its log: {run_dir}/run.log")
        (run_dir / "wall_s.txt").write_text(f"{time.monotonic() - t:.1f}\n")
    result = json.loads(done.read_text())
    wall = run_dir / "wall_s.txt"
    result["wall_s"] = float(wall.read_text()) if wall.exists() else None
    rewards = [r["reward/mean"] for r in read_metrics(run_dir) if r.get("reward/mean") is not None]
    result["reward_first10"] = sum(rewards[:10]) / len(rewards[:10]) if rewards else None
    result["reward_last10"] = sum(rewards[-10:]) / len(rewards[-10:]) if rewards else None
    return result


def pooled(results: list[dict[str, Any]], key: str = "after") -> dict[str, dict[str, Any]]:
    """Success per domain (and overall) over the runs of one arm: mean rate, pooled trials' Wilson interval."""
    names = list(results[0][key]["domains"]) + ["overall"]
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        cells = [r[key]["overall"] if name == "overall" else r[key]["domains"][name] for r in results]
        n = sum(c["n"] for c in cells)
        wins = sum(round(c["success_rate"] * c["n"]) for c in cells)
        out[name] = {"rate": wins / n if n else 0.0, "ci95": list(wilson_interval(wins, n)), "n": n,
                     "per_seed": [c["success_rate"] for c in cells]}
    return out


def markdown(start: dict[str, dict[str, Any]], arms: dict[str, dict[str, dict[str, Any]]],
             what: dict[str, str], seeds: list[int]) -> str:
    """The ablation table: one row per arm, success after GRPO per domain with its interval."""
    domains = [d for d in start if d != "overall"] + ["overall"]
    head = "| arm | " + " | ".join(domains) + f" | overall per seed ({', '.join(map(str, seeds))}) |"
    lines = [head, "|" + "---|" * (len(domains) + 2)]

    def cell(c: dict[str, Any]) -> str:
        return f"{c['rate']:.2f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]"

    lines.append("| SFT start (shared) | " + " | ".join(cell(start[d]) for d in domains) + " | - |")
    for name, table in arms.items():
        seeds_cell = ", ".join(f"{v:.2f}" for v in table["overall"]["per_seed"])
        lines.append(f"| {name}: {what[name]} | " + " | ".join(cell(table[d]) for d in domains)
                     + f" | {seeds_cell} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder of the runs and the tables")
    p.add_argument("--seeds", type=int, nargs="+", default=[3407, 1])
    p.add_argument("--arms", default=",".join(ARM_NAMES), help=f"comma-separated, of {', '.join(ARM_NAMES)}")
    p.add_argument("--sft-model", type=Path, default=None, help="the shared start; default: built in OUT/sft")
    p.add_argument("--data-root", type=Path, default=None,
                   help="the data of the SFT start; default: sampler.data_root of the run that built it")
    p.add_argument("--max-steps", type=int, default=None, help="GRPO steps per arm; default: the config's")
    args = p.parse_args(argv)
    by_name = {a.name: a for a in ARMS}
    chosen = [s.strip() for s in args.arms.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in by_name]
    if unknown:
        p.error(f"unknown arms {unknown}; known: {list(ARM_NAMES)}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sft = (args.sft_model.resolve() if args.sft_model else build_sft_start(out, extra))
    data_root = (args.data_root or start_data_root(sft)).resolve()
    results: dict[str, list[dict[str, Any]]] = {}
    for name in chosen:
        for seed in args.seeds:
            run_dir = out / f"{name}-s{seed}"
            cmd = arm_command(by_name[name], sft, data_root, seed, run_dir, args.max_steps, extra)
            results.setdefault(name, []).append(run_arm(cmd, run_dir))
    start = pooled([results[chosen[0]][0]], key="before")
    starts = {round(r["before"]["overall"]["success_rate"], 6) for runs in results.values() for r in runs}
    if len(starts) > 1:  # greedy evaluation of one model: every run must see the same start
        print(f"warning: the runs' SFT-start success differs ({sorted(starts)}): not one shared start", flush=True)
    tables = {name: pooled(runs) for name, runs in results.items()}
    what = {a.name: a.what for a in ARMS}
    text = markdown(start, tables, what, args.seeds)
    payload = {"sft_model": str(sft), "data_root": str(data_root), "seeds": args.seeds, "start": start, "arms": tables,
               "runs": {name: [{k: r[k] for k in ("wall_s", "reward_first10", "reward_last10")} for r in runs]
                        for name, runs in results.items()}}
    (out / "ablation.json").write_text(json.dumps(payload, indent=2))
    (out / "ablation.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
