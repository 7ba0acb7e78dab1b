"""Held-out evaluation of a checkpoint or a base model: success per domain and bucket, 95 % CIs, pass@k.

    python -m learner.evaluate --checkpoint runs/tiny-cpu-.../checkpoints/step-200 --data-root data/tiny
    python -m learner.evaluate --base-model PATH --data-root DIR --num-samples 4 --temperature 0.8 --json

Runs in-process (HF engine, the reward scorer) — fine for held-out sets of a few hundred problems;
the training driver evaluates with its Ray rollout and reward actors instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from learner.eval.core import evaluate, format_table, load_test_samples


def _checkpoint_model(checkpoint: Path) -> tuple[str, Path]:
    """(base model path, adapter dir) of a checkpoint written by learner.policy.checkpoint (a PEFT adapter dir)."""
    config = checkpoint / "adapter_config.json"
    if not (checkpoint / "state.json").exists() or not config.exists():
        raise FileNotFoundError(f"{checkpoint}: not a checkpoint (expected state.json and adapter_config.json)")
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{config}: no base_model_name_or_path recorded; pass --base-model")
    return str(base), checkpoint


def build_engine(base_model: str, adapter: Path | None, temperature: float, max_new_tokens: int, seed: int):
    """An HF engine on the base model with the checkpoint's LoRA loaded (no LoRA for a bare base model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from actors.engines.config import RolloutConfig
    from actors.engines.hf import HFEngine

    rollout = RolloutConfig(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                            top_p=1.0, top_k=0)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return HFEngine(model, rollout, tokenizer=tokenizer)


def run_evaluation(args: argparse.Namespace) -> dict[str, Any]:
    from reward_service.config import RewardConfig
    from reward_service.scoring import RewardScorer

    if args.checkpoint:
        base, adapter = _checkpoint_model(Path(args.checkpoint))
        base = args.base_model or base
    else:
        base, adapter = args.base_model, None
    samples = load_test_samples(args.data_root, args.domains, split=args.split,
                                max_per_domain=args.max_problems)
    engine = build_engine(base, adapter, args.temperature, args.max_new_tokens, args.seed)
    scorer = RewardScorer(RewardConfig(validator=args.validator), args.pddl_root or args.data_root)
    report = evaluate(lambda p, i, k: engine.generate(p, i, k), scorer.score, samples, k=args.num_samples)
    report["model"] = {"base_model": base, "adapter": str(adapter) if adapter else None}
    report["settings"] = {"split": args.split, "temperature": args.temperature, "validator": args.validator}
    return report


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m learner.evaluate", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint directory (checkpoints/step-N)")
    src.add_argument("--base-model", help="model path or hub name, evaluated without an adapter")
    p.add_argument("--data-root", required=True, help="data root with <split>/<domain>.jsonl")
    p.add_argument("--pddl-root", default=None, help="folder meta.*_file paths are relative to (default: --data-root)")
    p.add_argument("--split", default="test", help="held-out split folder (default: test)")
    p.add_argument("--domains", nargs="*", help="domains to evaluate (default: all)")
    p.add_argument("--num-samples", type=int, default=1, help="completions per problem, k of pass@k")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--max-problems", type=int, default=None, help="problems per domain (default: all)")
    p.add_argument("--validator", choices=["val", "native"], default="val")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--out", help="write the JSON report to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    if args.num_samples < 1:
        print("error: --num-samples must be >= 1", file=sys.stderr)
        return 2
    try:
        report = run_evaluation(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(None, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
