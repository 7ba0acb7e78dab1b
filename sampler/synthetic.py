"""Synthetic JSONL + dummy PDDL in the five domains' file-name conventions, for tests, benchmarks and demos.

Not training data: prompts are filler text and PDDL files are empty stubs. Real data comes
from `python -m sampler.build_data`.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Mapping


def _blocksworld(r: random.Random, s: int) -> tuple[str, int]:
    n = r.randint(3, 12)
    return f"bw_ops{r.choice((3, 4))}_n{n}_seed{s}", 2 * n


def _ferry(r: random.Random, s: int) -> tuple[str, int]:
    cars = r.randint(1, 8)
    return f"ferry-l{r.randint(2, 6)}-c{cars}-s{s}", 4 * cars + 1


def _grippers(r: random.Random, s: int) -> tuple[str, int]:
    balls = r.randint(2, 8)
    return f"grippers-n{r.randint(1, 3)}-r{r.randint(2, 5)}-o{balls}-s{s}", 3 * balls


def _spanner(r: random.Random, s: int) -> tuple[str, int]:
    nuts, locations = r.randint(1, 4), r.randint(3, 6)
    return f"spanner-s{r.randint(nuts, 5)}-n{nuts}-l{locations}-s{s}", locations + 2 * nuts


def _delivery(r: random.Random, s: int) -> tuple[str, int]:
    size, packages = r.randint(3, 6), r.randint(1, 4)
    return f"delivery-s{size}-p{packages}-seed{s}", 4 * packages + size


# domain -> (rng, seed) -> (file stem in the domain's naming convention, plausible gold plan length)
_NAMERS: dict[str, Callable[[random.Random, int], tuple[str, int]]] = {
    "blocksworld": _blocksworld, "ferry": _ferry, "grippers": _grippers, "spanner": _spanner, "delivery": _delivery,
}
DOMAINS: tuple[str, ...] = tuple(sorted(_NAMERS))


def problem_stem(domain: str, rng: random.Random, seed: int) -> tuple[str, int]:
    """A file stem following `domain`'s naming convention, and a gold plan length for it."""
    return _NAMERS[domain](rng, seed)


def write_synthetic_dataset(
    root: str | os.PathLike[str],
    counts: Mapping[str, int],
    *,
    seed: int = 0,
    prompt_chars: int = 200,
    unique_problems: int | None = None,
) -> dict[str, str]:
    """Write `<root>/<domain>.jsonl` with counts[domain] records and the PDDL stubs they name.

    unique_problems caps the distinct problem files per domain (records then share files,
    as when one problem gets several prompt templates); None gives every record its own file.
    Returns domain -> JSONL path.
    """
    root = os.fspath(root)
    rng = random.Random(seed)
    filler = ("Plan the following task. " * (prompt_chars // 25 + 1))[:prompt_chars]
    paths = {}
    for domain, count in counts.items():
        os.makedirs(os.path.join(root, "domains"), exist_ok=True)
        os.makedirs(os.path.join(root, "problems", domain), exist_ok=True)
        domain_file = f"domains/{domain}.pddl"
        with open(os.path.join(root, domain_file), "w") as f:
            f.write(f"(define (domain {domain}))\n")
        n_files = count if unique_problems is None else min(count, unique_problems)
        problems = []
        for k in range(n_files):
            stem, length = problem_stem(domain, rng, 1000 + k)
            rel = f"problems/{domain}/{stem}.pddl"
            with open(os.path.join(root, rel), "w") as f:
                f.write(f"(define (problem {stem}) (:domain {domain}) (:goal (and)))\n")
            problems.append((rel, length))
        paths[domain] = os.path.join(root, f"{domain}.jsonl")
        with open(paths[domain], "w") as f:
            for i in range(count):
                rel, length = problems[i % n_files]
                meta = {"problem_file": rel, "domain_file": domain_file, "reference_plan_length": length}
                f.write(json.dumps({"prompt": f"[{domain} {i}] {filler}", "meta": meta}) + "\n")
    return paths
