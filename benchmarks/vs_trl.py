"""Seconds per GRPO step and peak memory: TRL's GRPOTrainer against pddl-grpo sync and async, same tiny workload.

    python benchmarks/vs_trl.py [--steps 30] [--reps 3] [--sft-steps 300] [--warmup 3] [--keep DIR]

One data set (the tiny preset, 60 problems per domain, five domains) and one SFT'd tiny model are built first;
every arm starts from that model and reads the same prompts per step (B=10 prompts, G=8 completions each, from
configs/tiny_cpu.yaml). The arms run one at a time, each in its own process tree, in interleaved order
(rep 0: trl sync async, rep 1: sync async trl, ...), so a drift in the shared machine's load hits all arms:

- trl:   TRL's GRPOTrainer with a PEFT LoRA, the project's reward (`reward_service.trl.make_trl_reward`)
         and its TRL dataset view (`sampler.torch_dataset.trl_train_dataset`), in one process;
- sync / async: `python -m learner.main --config configs/tiny_cpu.yaml mode=sync|async ...` (a local Ray).

Printed: per arm the median seconds per step over reps (each rep: the median of its steps after --warmup),
the time outside the steps (start-up + teardown: process wall minus the sum of step walls), peak memory
(PSS summed over every process of the arm at one instant, Ray workers and system processes included; RSS
beside it; per role from benchmarks/proc_memory.py), the ratios sync/TRL, async/TRL, async/sync, whether
the arms saw the same prompts per step, their mean reward over the last 10 steps, and the load average.

Settings that differ between the arms (also printed; DIFFERENCES below):
- process layout: TRL generates, scores and updates in turn in one process; pddl-grpo runs a driver and Ray
  actors (sampler, 1 rollout, 1 reward worker, learner) plus Ray's own processes;
- threads: TRL uses torch's default intra-op threads (one per core); each pddl-grpo actor runs 1 torch thread
  (rollout.num_cpus_per_actor: 1, cluster.learner_num_cpus: 1);
- policy lag: async generates step t+1 while step t trains (one step off-policy, corrected by importance
  weights); TRL and sync are on-policy;
- importance weights: pddl-grpo multiplies by exp(old - behaviour) per token, truncated at 3 (behaviour =
  the engine's logprobs; ~1 in sync mode); TRL without vLLM applies none;
- optimizer: TRL uses transformers' default adamw_torch_fused, pddl-grpo torch.optim.AdamW; both lr 2e-4,
  betas (0.9, 0.99), eps 1e-8, no weight decay, constant schedule, no warmup, grad-norm clip 1.0;
- random streams: same seed, but LoRA initialisation and sampling draw from different RNG streams, so the
  completions (and rewards) differ between arms although the prompts are the same;
- prompt limit: pddl-grpo truncates prompts at learner.max_prompt_length 256; TRL 1.16 has no prompt limit
  (the tiny prompts are shorter, so nothing is cut);
- outputs: pddl-grpo writes metrics.jsonl, reward_debug.log, samples/ every 10 steps and one checkpoint
  after the last step (outside the step timings); TRL saves nothing (save_strategy: no) and logs every step.
Same in all arms: model and tokenizer, LoRA rank 16 / alpha 32 / all linear layers, loss grpo, beta 0,
clip 0.2, group-scaled advantages, temperature 1, top_p 1, top_k 0, 64 new tokens, one optimizer step per
generation batch, the reward code (native validator where the pre-flight picks it), float32 on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# idle OpenMP threads sleep (the arms and other users share the cores); set before torch is imported
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package `sampler`, not benchmarks/sampler.py beside this file
sys.path.insert(1, str(ROOT / "benchmarks"))

from proc_memory import MemoryPeaks, MemorySampler, become_subreaper, format_peaks, parent_map  # noqa: E402

TINY = ROOT / "configs" / "tiny_cpu.yaml"
ARMS = ("trl", "sync", "async")
DIFFERENCES = [line.strip("- ").strip() for line in
               __doc__.split("Settings that differ between the arms (also printed; DIFFERENCES below):")[1]
               .split("Same in all arms:")[0].strip().split("\n- ")]
SAME = "Same in all arms: " + " ".join(__doc__.split("Same in all arms:")[1].split())
MB = 1024 * 1024


def common_overrides(data: Path, model: str, steps: int) -> list[str]:
    """The config every arm is built from (TRL reads its settings from the same resolved config)."""
    return [f"sampler.data_root={data}", f"max_steps={steps}", f"save_steps={steps}", "eval.before_after=false",
            "logging.progress_bar=false", f"learner.base_model={model}", "sft.enabled=false",
            "data.build_if_missing=false"]


# -- the TRL arm (runs in its own process: `vs_trl.py --trl-worker ...`) ------------------------------------
def trl_worker(out: Path, data: Path, model_path: str, steps: int) -> None:
    import datasets  # noqa: F401  (TRL's dataset type; fail here, not inside the trainer)
    import torch
    import trl
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from learner.config.run import load_config
    from learner.driver.pipeline import preflight_config
    from reward_service.trl import make_trl_reward
    from sampler.stream import BalancedBatchStream
    from sampler.torch_dataset import trl_train_dataset

    cfg = preflight_config(load_config(TINY, common_overrides(data, model_path, steps)))  # as the driver does
    stream = BalancedBatchStream.from_config(cfg.sampler)
    reward_fn = make_trl_reward(data, cfg.reward)
    lc, rc, g = cfg.learner, cfg.rollout, cfg.rollout.num_generations
    args = trl.GRPOConfig(
        output_dir=str(out / "trl"), max_steps=steps, per_device_train_batch_size=cfg.sampler.batch_size * g,
        num_generations=g, gradient_accumulation_steps=1, learning_rate=lc.learning_rate,
        adam_beta1=lc.adam_beta1, adam_beta2=lc.adam_beta2, adam_epsilon=lc.adam_epsilon,
        weight_decay=lc.weight_decay, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=lc.max_grad_norm,
        loss_type=lc.loss_type, beta=lc.beta, epsilon=lc.epsilon_low, epsilon_high=lc.epsilon_high,
        scale_rewards=lc.scale_rewards, max_completion_length=rc.max_new_tokens, temperature=rc.temperature,
        top_p=rc.top_p, top_k=rc.top_k, shuffle_dataset=False, seed=cfg.seed, use_cpu=True, bf16=False,
        gradient_checkpointing=lc.use_gradient_checkpointing, logging_steps=1, save_strategy="no", report_to=[],
        disable_tqdm=True, dataloader_num_workers=0,
    )
    batches: list[list[str]] = []

    def pddl_reward(prompts: list, completions: list, **kwargs) -> list:
        batches.append(sorted(kwargs["sample_id"][::g]))  # TRL repeats each prompt g times in a row
        return reward_fn(prompts, completions, **kwargs)

    class Clock(TrainerCallback):
        marks: list[float] = []

        def on_train_begin(self, *a, **k) -> None:
            self.marks.append(time.monotonic())

        def on_step_end(self, *a, **k) -> None:
            self.marks.append(time.monotonic())

    clock = Clock()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    lora = LoraConfig(r=lc.lora_rank, lora_alpha=lc.lora_alpha, lora_dropout=lc.lora_dropout,
                      target_modules=lc.lora_target_modules, task_type="CAUSAL_LM")
    trainer = trl.GRPOTrainer(model=model, reward_funcs=[pddl_reward], args=args,
                              train_dataset=trl_train_dataset(stream, args), processing_class=tokenizer,
                              peft_config=lora, callbacks=[clock])
    trainer.train()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    walls = [b - a for a, b in zip(clock.marks, clock.marks[1:], strict=False)]
    (out / "steps.json").write_text(json.dumps({"walls": walls, "rewards": rewards, "sample_ids": batches,
                                                "torch_threads": torch.get_num_threads(), "trl": trl.__version__}))


# -- running and reading one arm ------------------------------------------------------------------------------
def arm_command(arm: str, out: Path, data: Path, model: str, steps: int, extra: Sequence[str] = ()) -> list[str]:
    if arm == "trl":
        return [sys.executable, str(Path(__file__).resolve()), "--trl-worker", str(out), "--data", str(data),
                "--model", model, "--steps", str(steps)]
    return [sys.executable, "-m", "learner.main", "--config", str(TINY), f"mode={arm}", f"output_dir={out}",
            *common_overrides(data, model, steps), *extra]


def read_steps(arm: str, out: Path) -> dict:
    """Step walls, rewards and sample ids of a finished arm, plus pddl-grpo's own phase and idle metrics."""
    if arm == "trl":
        return json.loads((out / "steps.json").read_text())
    from learner.driver.step_metrics import read_metrics  # a torn last line dropped with a warning

    records = read_metrics(out)
    res = {"walls": [r["time/wall"] for r in records], "rewards": [r["reward/mean"] for r in records],
           "sample_ids": [sorted(r["batch/sample_ids"]) for r in records]}
    for key in ("rollout/idle_ratio", "learner/idle_ratio", "time/weight_sync", "rollout/load_weights_s"):
        res[key] = [r[key] for r in records if r.get(key) is not None]
    return res


def run_arm(arm: str, out: Path, data: Path, model: str, steps: int, interval_s: float,
            extra: Sequence[str] = (), env: Mapping[str, str] | None = None) -> dict:
    """One arm in its own process tree (extra: config overrides, env: added environment), memory sampled."""
    out.mkdir(parents=True)
    env = dict(os.environ, RAY_ADDRESS="local", OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **(env or {}))
    log_path = out.parent / f"{out.name}.log"
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    with log_path.open("w") as log_fh:
        child = subprocess.Popen(arm_command(arm, out, data, model, steps, extra), cwd=ROOT, env=env,
                                 stdout=log_fh, stderr=subprocess.STDOUT)
        with MemorySampler(child.pid, interval_s) as mem:
            rc = child.wait()
    wall = time.monotonic() - t0
    _reap_leftovers(log_path)
    if rc != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"arm {arm} exited {rc}; its log {log_path} ends:\n{tail}")
    res = read_steps(arm, out)
    res.update(wall=wall, peaks=mem.peaks, load=(load0, os.getloadavg()[0]))
    return res


def _reap() -> None:
    """Collect the exit status of adopted descendants that ended (a subreaper must, or they stay zombies)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _reap_leftovers(log_path: Path) -> None:
    """Processes of an arm still alive after it exited (adopted by this subreaper): named, then ended by pid."""
    _reap()
    for pid in sorted(p for p, pp in parent_map().items() if pp == os.getpid()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
        except OSError:
            continue
        print(f"warning: pid {pid} ({cmd[:80]}) of the arm logged in {log_path} outlived it; ending it",
              file=sys.stderr)
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
    time.sleep(1)
    _reap()


# -- summary --------------------------------------------------------------------------------------------------
def summarize(arm: str, runs: list[dict], warmup: int) -> dict:
    per_rep = [statistics.median(r["walls"][warmup:]) for r in runs]
    outside = [r["wall"] - sum(r["walls"]) for r in runs]
    out = {
        "s_per_step": statistics.median(per_rep), "per_rep": per_rep, "outside": statistics.median(outside),
        "pss": [r["peaks"].total_pss / MB for r in runs], "rss": [r["peaks"].total_rss / MB for r in runs],
        "ray_pss": [r["peaks"].ray_system_pss / MB for r in runs],
        "reward_last10": statistics.mean(statistics.mean(r["rewards"][-10:]) for r in runs),
    }
    for key in ("rollout/idle_ratio", "learner/idle_ratio", "time/weight_sync", "rollout/load_weights_s"):
        vals = [statistics.median(r[key][warmup:]) for r in runs if r.get(key, [])[warmup:]]
        if vals:
            out[key] = statistics.median(vals)
    return out


def merged_peaks(runs: list[dict]) -> MemoryPeaks:
    """Per role the largest peak over the reps; totals likewise, with the roles at the largest total."""
    merged = MemoryPeaks()
    for r in runs:
        p = r["peaks"]
        for role, (rss, pss, n) in p.roles.items():
            a, b, c = merged.roles.get(role, (0, 0, 0))
            merged.roles[role] = (max(a, rss), max(b, pss), max(c, n))
        if p.total_pss > merged.total_pss:
            merged.total_pss, merged.at_peak = p.total_pss, dict(p.at_peak)
        merged.total_rss = max(merged.total_rss, p.total_rss)
        merged.ray_system_pss = max(merged.ray_system_pss, p.ray_system_pss)
        merged.samples += p.samples
    return merged


def same_prompts(results: dict[str, list[dict]]) -> str:
    reference = results["sync"][0]["sample_ids"]
    lines = []
    for arm, runs in results.items():
        for i, r in enumerate(runs):
            n = sum(a == b for a, b in zip(r["sample_ids"], reference, strict=False))
            lines.append(f"{arm}[{i}] {n}/{len(reference)}")
    return "steps whose prompts equal sync[0]'s: " + ", ".join(lines)


def report(results: dict[str, list[dict]], warmup: int, steps: int, sft_s: float) -> None:
    s = {arm: summarize(arm, runs, warmup) for arm, runs in results.items()}
    print(f"\nB=10 G=8, {steps} GRPO steps per run, {len(results['trl'])} interleaved reps, first {warmup} steps "
          f"of each run left out; SFT start built once in {sft_s:.0f} s")
    print(f"\n{'arm':<6} {'s/step':>7} {'per rep':>22} {'outside steps s':>16} {'peak PSS MB':>18} "
          f"{'peak RSS MB':>18} {'Ray sys PSS':>12} {'reward last10':>14}")
    for arm, v in s.items():
        reps = " ".join(f"{x:.2f}" for x in v["per_rep"])
        pss = f"{min(v['pss']):.0f}-{max(v['pss']):.0f}"
        rss = f"{min(v['rss']):.0f}-{max(v['rss']):.0f}"
        ray = f"{max(v['ray_pss']):.0f}"
        print(f"{arm:<6} {v['s_per_step']:>7.2f} {reps:>22} {v['outside']:>16.1f} {pss:>18} {rss:>18} {ray:>12} "
              f"{v['reward_last10']:>14.3f}")
    for arm in ("sync", "async"):
        v = s[arm]
        print(f"{arm}: rollout idle {v.get('rollout/idle_ratio', float('nan')):.2f}, learner idle "
              f"{v.get('learner/idle_ratio', float('nan')):.2f}, weight sync "
              f"{1000 * v.get('time/weight_sync', float('nan')):.0f} ms (driver), adapter load on the actor "
              f"{1000 * v.get('rollout/load_weights_s', float('nan')):.0f} ms (medians per step)")
    t, sy, asy = s["trl"]["s_per_step"], s["sync"]["s_per_step"], s["async"]["s_per_step"]
    print(f"\nratios of median s/step: sync/TRL {sy / t:.2f}, async/TRL {asy / t:.2f} (target <= 0.5), "
          f"async/sync {asy / sy:.2f} (target <= 0.6)")
    print(f"peak PSS (median over reps) pddl-grpo async / TRL: "
          f"{statistics.median(s['async']['pss']) / statistics.median(s['trl']['pss']):.2f}")
    print(same_prompts(results))
    for arm, runs in results.items():
        title = "role (trl: driver = trainer)" if arm == "trl" else f"role ({arm})"
        print("\n" + format_peaks(merged_peaks(runs), title))
    loads = [x for runs in results.values() for r in runs for x in r["load"]]
    print(f"\nload average (1 min) at the arms' starts and ends: min {min(loads):.2f}, max {max(loads):.2f} "
          f"on {os.cpu_count()} CPUs")
    trl_info = results["trl"][0]
    print(f"TRL {trl_info.get('trl')} with {trl_info.get('torch_threads')} torch threads")
    print("\nsettings that differ between TRL and pddl-grpo:")
    for line in DIFFERENCES:
        print("- " + " ".join(line.split()))
    print(SAME)


def build_start(work: Path, sft_steps: int) -> tuple[Path, str, float]:
    """The data and the one SFT'd tiny model every arm starts from (reused when --keep DIR already has them)."""
    from learner.config.run import load_config
    from learner.driver.bootstrap import ensure_model
    from sampler.datagen.builder import build_dataset

    data, start = work / "data", work / "start"
    record = start / "sft.json"
    if record.exists():
        done = json.loads(record.read_text())
        if done["sft_steps"] != sft_steps:
            raise SystemExit(f"{record}: the kept start has {done['sft_steps']} SFT steps, not {sft_steps}")
        print(f"reusing the data and SFT'd start in {work} ({record})")
        return data, done["model"], done["seconds"]
    build_dataset(data, per_domain=60, sizes="tiny", prompt_style="compact", test_fraction=0.2, seed=0)
    cfg = load_config(TINY, [f"sampler.data_root={data}", f"sft.steps={sft_steps}", "sft.minutes=null",
                             "logging.progress_bar=false"])
    start.mkdir()
    t0 = time.monotonic()
    model = ensure_model(cfg, data, start)
    seconds = time.monotonic() - t0
    record.write_text(json.dumps({"sft_steps": sft_steps, "model": model, "seconds": seconds}))
    return data, model, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="GRPO steps per run")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions of the three arms")
    parser.add_argument("--sft-steps", type=int, default=300, help="SFT steps of the shared start")
    parser.add_argument("--warmup", type=int, default=3, help="first steps of each run left out of s/step")
    parser.add_argument("--interval", type=float, default=0.5, help="memory sampling interval (s)")
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one)")
    parser.add_argument("--trl-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trl_worker:
        trl_worker(args.trl_worker, args.data, args.model, args.steps)
        return
    if args.steps <= args.warmup:
        parser.error(f"--steps ({args.steps}) must exceed --warmup ({args.warmup})")
    become_subreaper()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data, model, sft_s = build_start(work, args.sft_steps)
        results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
        for rep in range(args.reps):
            for arm in ARMS[rep % 3:] + ARMS[:rep % 3]:
                res = run_arm(arm, work / f"{arm}-{rep}", data, model, args.steps, args.interval)
                print(f"rep {rep} {arm}: {statistics.median(res['walls'][args.warmup:]):.2f} s/step, "
                      f"{res['wall']:.0f} s wall, peak PSS {res['peaks'].total_pss / MB:.0f} MB, "
                      f"load {res['load'][0]:.2f}-{res['load'][1]:.2f}", flush=True)
                results[arm].append(res)
        report(results, args.warmup, args.steps, sft_s)


if __name__ == "__main__":
    main()
