"""The driver of a pddl-grpo run: the only place that knows the order of the step loop.

    python -m learner.main                                   # tiny CPU default (configs/tiny_cpu.yaml)
    python -m learner.main --config configs/qwen2.5-7b-lora.yaml learner.learning_rate=5e-6
    python -m learner.main --config FILE --print-config      # validate, print resolved YAML, exit
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from learner.config.run import ConfigError, dump_config, load_config

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "tiny_cpu.yaml"


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m learner.main", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help=f"YAML config (default: {DEFAULT_CONFIG.name} when it exists)")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. learner.learning_rate=5e-6")
    parser.add_argument("--print-config", action="store_true", help="validate, print the resolved config and exit")
    parser.add_argument(
        "--smoke", action="store_true", help="2 SFT + 2 GRPO steps with the smallest settings, then exit"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    config_path = args.config
    if config_path is None and DEFAULT_CONFIG.exists():
        config_path = str(DEFAULT_CONFIG)
    try:
        cfg = load_config(config_path, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(dump_config(cfg))
        return 0
    from actors.scheduling import ActorsNotPlacedError
    from learner.driver.bootstrap import DataRootError
    from learner.driver.none_guard import AllNoneRewardsError
    from learner.driver.pipeline import run
    from learner.grpo.train_step import NonFiniteTrainingError
    from sampler.pddl_check import PddlFileError
    from sampler.records import RecordError

    try:
        return run(cfg, smoke=args.smoke)
    except (RecordError, PddlFileError, DataRootError) as exc:  # bad data: stopped before any model loaded
        print(f"error: bad data, nothing was trained: {exc}", file=sys.stderr)
        return 2
    except ActorsNotPlacedError as exc:  # the cluster lacks what the config asks for
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (AllNoneRewardsError, NonFiniteTrainingError) as exc:
        print(f"error: run stopped: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
