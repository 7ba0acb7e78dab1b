"""The run's pre-flight: every record of the train and test splits and every PDDL file they name, checked at start.

    report = preflight(cfg.sampler)     # RecordError / PddlFileError (file:line) before any model loads

The driver calls it once before SFT and model load; it applies the loader's rules (sampler/records.py,
the same the SamplerActor and the reward actors rely on): JSON and record fields, meta paths inside
the PDDL root, reference_plan_length and class_label types, each distinct domain and problem file
parsed once. Test records (`<data_root>/test/<domain>.jsonl`) name files under the same PDDL root.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from sampler.config import SamplerConfig
from sampler.records import discover_domains, load_records, pddl_root

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreflightReport:
    """What the pre-flight found: the domains, records per split, skips, and how long it took."""

    domains: tuple[str, ...]
    records: dict[str, dict[str, int]]  # split -> domain -> records kept
    skipped: dict[str, dict[str, int]]  # split -> domain -> records skipped (on_bad_record: skip)
    seconds: float


def preflight(cfg: SamplerConfig) -> PreflightReport:
    """Check the train split (and the test split when present) as the sampler loads them; raise on a bad one."""
    t0 = time.monotonic()
    train = load_records(cfg)
    records = {"train": {d: len(idx) for d, idx in train.domains.items()}}
    skipped = {"train": train.skipped}
    test_root = os.path.join(os.path.abspath(cfg.data_root), "test")
    if os.path.isdir(test_root):
        named = [d for d in train.domains if os.path.isfile(os.path.join(test_root, f"{d}.jsonl"))]
        if named:
            test_cfg = cfg.model_copy(update={"data_root": test_root, "pddl_root": pddl_root(cfg), "domains": named})
            discover_domains(test_cfg)
            test = load_records(test_cfg)
            records["test"] = {d: len(idx) for d, idx in test.domains.items()}
            skipped["test"] = test.skipped
            for idx in test.domains.values():
                idx.close()
    for idx in train.domains.values():
        idx.close()
    report = PreflightReport(tuple(train.domains), records, skipped, time.monotonic() - t0)
    log.info("pre-flight: %s records checked in %.1f s, PDDL under %s",
             {s: sum(n.values()) for s, n in records.items()}, report.seconds, pddl_root(cfg))
    if any(n for split in skipped.values() for n in split.values()):
        log.warning("pre-flight: records skipped (on_bad_record: skip): %s",
                    {s: {d: n for d, n in split.items() if n} for s, split in skipped.items()})
    return report
