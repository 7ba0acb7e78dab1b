"""Size presets per domain (tiny, default, large), tiers and plan caps, and `--sizes` spec parsing into settings.

A domain's sizes are one or more tiers: a share of its problems and the ranges they are drawn from.
Untiered presets and specs are one tier of share 1. The `tiny` preset (the embedded CPU default)
gives each domain tiers of 45/40/15 % whose seed_doc difficulty scores increase, so the sampler's
40th/80th-percentile buckets are all non-empty (the seed's fallback never fires); its plan caps keep
every gold plan inside the tiny config's 64 new tokens.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from sampler.datagen.domains import DomainSizeError, get_generator

Ranges = dict[str, tuple[int, int]]  # param -> inclusive (lo, hi)


@dataclass(frozen=True)
class Tier:
    """`share` of a domain's problems, cycling through the settings of `ranges`."""

    share: float
    ranges: Ranges


# Shares 45/40/15 % put the p40 cut inside the first tier and the p80 cut inside the second, so easy,
# medium and hard each hold a tier's scores. Ranges measured on 300 candidates each (docs/data.md).
TIERS: dict[str, dict[str, tuple[Tier, ...]]] = {
    "tiny": {
        "blocksworld": (Tier(0.45, {"n": (2, 3)}), Tier(0.40, {"n": (4, 4)}), Tier(0.15, {"n": (5, 5)})),
        "ferry": (Tier(0.45, {"l": (2, 4), "c": (1, 1)}), Tier(0.40, {"l": (2, 3), "c": (2, 2)}),
                  Tier(0.15, {"l": (4, 4), "c": (2, 2)})),
        "grippers": (Tier(0.45, {"n": (1, 1), "r": (2, 4), "o": (1, 1)}),
                     Tier(0.40, {"n": (1, 1), "r": (2, 3), "o": (2, 2)}),
                     Tier(0.15, {"n": (1, 1), "r": (4, 4), "o": (2, 2)})),
        "spanner": (Tier(1.0, {"s": (1, 3), "n": (1, 2), "l": (1, 3)}),),  # nine scores: buckets fill untiered
        "delivery": (Tier(0.45, {"s": (2, 2), "p": (1, 2)}), Tier(0.40, {"s": (3, 3), "p": (1, 1)}),
                     Tier(0.15, {"s": (4, 4), "p": (1, 1)})),
    },
}

# Longest gold plan (actions) per preset and domain; a longer optimal plan is resampled (sampler.datagen.generate).
# tiny: the compact prompt's word-level tokens per action (blocksworld <= 6, delivery 7) times the cap,
# plus <eos>, stay <= rollout.max_new_tokens 64 of configs/tiny_cpu.yaml.
PLAN_CAPS: dict[str, dict[str, int]] = {"tiny": {"blocksworld": 10, "delivery": 9}}


def _hull(tiers: tuple[Tier, ...]) -> Ranges:
    names = tiers[0].ranges
    return {k: (min(t.ranges[k][0] for t in tiers), max(t.ranges[k][1] for t in tiers)) for k in names}


PRESETS: dict[str, dict[str, Ranges]] = {
    # the ranges each tiered preset spans (its tiers say how many problems come from where)
    "tiny": {d: _hull(tiers) for d, tiers in TIERS["tiny"].items()},
    # easy to hard inside the 10-minute budget of 500 problems per domain on 2 cores
    "default": {
        "blocksworld": {"n": (3, 6)},
        "ferry": {"l": (2, 4), "c": (1, 4)},
        "grippers": {"n": (1, 2), "r": (2, 3), "o": (2, 4)},
        "spanner": {"s": (1, 3), "n": (1, 2), "l": (2, 4)},
        "delivery": {"s": (3, 4), "p": (1, 2)},
    },
    # past the planner's node limit for the biggest settings: best-effort plans, flagged non-optimal
    "large": {
        "blocksworld": {"n": (6, 9)},
        "ferry": {"l": (3, 6), "c": (3, 6)},
        "grippers": {"n": (2, 3), "r": (3, 5), "o": (4, 6)},
        "spanner": {"s": (3, 6), "n": (2, 5), "l": (4, 8)},
        "delivery": {"s": (4, 6), "p": (2, 3)},
    },
}

_ITEM = re.compile(r"(?P<k>[a-z]+)=(?P<lo>\d+)(?:-(?P<hi>\d+))?")


def parse_sizes(sizes: str | dict[str, Ranges], domains: list[str]) -> dict[str, Ranges]:
    """A preset name, or `domain:k=lo-hi,k=v;domain:...` (unnamed domains take the default preset)."""
    if isinstance(sizes, dict):
        spec = {d: dict(sizes.get(d, PRESETS["default"][d])) for d in domains}
    elif sizes in PRESETS:
        spec = {d: dict(PRESETS[sizes][d]) for d in domains}
    else:
        spec = {d: dict(PRESETS["default"][d]) for d in domains}
        for part in filter(None, (p.strip() for p in sizes.split(";"))):
            dom, sep, body = part.partition(":")
            if not sep:
                raise ValueError(
                    f"--sizes {sizes!r}: {part!r} is neither a preset ({', '.join(PRESETS)}) nor domain:k=lo-hi,..."
                )
            dom = dom.strip()
            get_generator(dom)  # unknown domain -> ValueError listing the known ones
            if dom not in spec:
                raise ValueError(f"--sizes names domain {dom!r}, which is not among the domains built: {domains}")
            ranges: Ranges = {}
            for item in filter(None, (x.strip() for x in body.split(","))):
                m = _ITEM.fullmatch(item)
                if m is None:
                    raise ValueError(f"--sizes {sizes!r}: cannot read {item!r}; write k=v or k=lo-hi, e.g. n=3-6")
                lo = int(m["lo"])
                hi = int(m["hi"]) if m["hi"] is not None else lo
                if hi < lo:
                    raise ValueError(f"--sizes {sizes!r}: range {item!r} is empty ({lo} > {hi})")
                ranges[m["k"]] = (lo, hi)
            spec[dom].update(ranges)
    for dom, ranges in spec.items():
        expected = set(get_generator(dom).param_names)
        if set(ranges) != expected:
            raise DomainSizeError(f"{dom}: sizes need the parameters {sorted(expected)}, got {sorted(ranges)}")
    return spec


def tiers_for(sizes: str | dict[str, Ranges], domain: str, ranges: Ranges) -> tuple[Tier, ...]:
    """The tiers of `domain`: a tiered preset's own, else one tier of share 1 over the parsed `ranges`."""
    if isinstance(sizes, str) and sizes in TIERS:
        return TIERS[sizes][domain]
    return (Tier(1.0, ranges),)


def plan_cap(sizes: str | dict[str, Ranges], domain: str) -> int | None:
    """Longest gold plan the preset allows for `domain` (actions), None for no cap."""
    return PLAN_CAPS.get(sizes, {}).get(domain) if isinstance(sizes, str) else None


def tier_counts(tiers: tuple[Tier, ...], n: int) -> list[int]:
    """`n` problems split by the tiers' shares (largest remainder, ties to the earlier tier); sums to n."""
    total = sum(t.share for t in tiers)
    exact = [n * t.share / total for t in tiers]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(tiers)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def settings_for(domain: str, ranges: Ranges) -> list[dict[str, int]]:
    """Every valid combination of the ranges, in file-name parameter order; DomainSizeError if none is valid."""
    gen = get_generator(domain)
    names = gen.param_names
    out: list[dict[str, int]] = []
    first_error: DomainSizeError | None = None
    for combo in itertools.product(*(range(ranges[k][0], ranges[k][1] + 1) for k in names)):
        params = dict(zip(names, combo, strict=True))
        try:
            gen.check_params(params)
        except DomainSizeError as e:
            first_error = first_error or e
            continue
        out.append(params)
    if not out:
        raise DomainSizeError(f"no valid sizes for {domain} in {ranges}: {first_error}")
    return out


def setting_label(params: dict[str, int]) -> str:
    """`l=3,c=2`: a stable key for counts per setting."""
    return ",".join(f"{k}={v}" for k, v in params.items())
