"""Size presets per domain (tiny, default, large) and `--sizes` spec parsing into parameter settings."""

from __future__ import annotations

import itertools
import re

from sampler.datagen.domains import DomainSizeError, get_generator

Ranges = dict[str, tuple[int, int]]  # param -> inclusive (lo, hi)

PRESETS: dict[str, dict[str, Ranges]] = {
    # plans of roughly 2-8 steps: the embedded CPU default run
    "tiny": {
        "blocksworld": {"n": (2, 3)},
        "ferry": {"l": (2, 3), "c": (1, 2)},
        "grippers": {"n": (1, 1), "r": (2, 3), "o": (1, 2)},
        "spanner": {"s": (1, 3), "n": (1, 2), "l": (1, 3)},
        "delivery": {"s": (2, 3), "p": (1, 1)},
    },
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
