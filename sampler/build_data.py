"""Build the five-domain dataset: `python -m sampler.build_data --out DIR [--per-domain N] [--sizes tiny]`."""

from __future__ import annotations

import argparse
import sys

from sampler.datagen.builder import build_dataset
from sampler.datagen.domains import DOMAIN_NAMES, DomainSizeError
from sampler.datagen.generate import CONSTRAINT_MODES
from sampler.datagen.prompts import PROMPT_STYLES
from sampler.datagen.sizes import PRESETS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sampler.build_data", description=__doc__)
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--domains", default=",".join(DOMAIN_NAMES), help="comma-separated domains (default: all five)")
    p.add_argument("--per-domain", type=int, default=100, help="problems per domain, train and test together")
    p.add_argument(
        "--sizes", default="default",
        help=f"a preset ({', '.join(PRESETS)}) or a spec like 'ferry:l=2-4,c=1-3;spanner:s=2,n=1-2,l=3'",
    )
    p.add_argument("--prompt-style", choices=PROMPT_STYLES, default="full")
    p.add_argument("--constraints", choices=CONSTRAINT_MODES, default="mix",
                   help="safety constraints on every problem, none, or a mix (see --mix-ratio)")
    p.add_argument("--mix-ratio", type=float, default=0.5, help="share of constrained problems with --constraints mix")
    p.add_argument("--test-fraction", type=float, default=0.1, help="share of each domain's problems held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="worker processes (the output does not depend on it)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        meta = build_dataset(
            args.out, domains=args.domains.split(","), per_domain=args.per_domain, sizes=args.sizes,
            prompt_style=args.prompt_style, constraints=args.constraints, test_fraction=args.test_fraction,
            seed=args.seed, workers=args.workers, mix_ratio=args.mix_ratio, progress=not args.no_progress,
        )
    except (ValueError, DomainSizeError) as e:  # bad arguments: a one-line message, no traceback
        print(f"build_data: error: {e}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{d} {m['train']}+{m['test']}" for d, m in meta["domains"].items())
    print(f"wrote {args.out}: {counts} (train+test) in {meta['build_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
