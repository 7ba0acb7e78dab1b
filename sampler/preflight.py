"""The run's pre-flight: every record of the train and test splits and every PDDL file they name, checked at start.

    report = preflight(cfg.sampler, cfg.reward.validator)   # RecordError / PddlFileError (file:line) before any
                                                             # model loads; report.task_validators for auto

The driver calls it once before SFT and model load; it applies the loader's rules (sampler/records.py,
the same the SamplerActor and the reward actors rely on): JSON and record fields, meta paths inside
the PDDL root, reference_plan_length and class_label types, each distinct domain and problem file
parsed once. Test records (`<data_root>/test/<domain>.jsonl`) name files under the same PDDL root.

It also decides, once per task (domain + problem file), which validator scores it (sampler.pddl_check,
docs/validators.md "Coverage") and logs one line per domain: which validator and why. A domain using a
feature the native validator does not simulate gets one warning naming the requirement and saying VAL
will be used (auto), or stops the run (native: PddlFileError, exit 2).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Literal

from reward_service.validators import ValidatorChoice, task_key
from sampler.config import SamplerConfig
from sampler.pddl_check import PddlFileCheck
from sampler.records import discover_domains, load_records, pddl_root

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreflightReport:
    """What the pre-flight found: the domains, records per split, skips, and how long it took."""

    domains: tuple[str, ...]
    records: dict[str, dict[str, int]]  # split -> domain -> records kept
    skipped: dict[str, dict[str, int]]  # split -> domain -> records skipped (on_bad_record: skip)
    seconds: float
    # reward.validator: auto: task_key(domain_file, problem_file) -> "val" | "native" (RewardConfig.task_validators)
    task_validators: dict[str, str] = field(default_factory=dict)
    validators: dict[str, dict[str, int]] = field(default_factory=dict)  # domain -> validator -> tasks


def preflight(cfg: SamplerConfig, validator: Literal["auto", "val", "native"] = "auto") -> PreflightReport:
    """Check the train split (and the test split when present) as the sampler loads them; raise on a bad one.

    `validator` is reward.validator: it decides what a task using a feature the native validator does not
    simulate means (auto, val: VAL scores it; native: PddlFileError naming the requirement)."""
    t0 = time.monotonic()
    pddl = PddlFileCheck(cfg.check_pddl, validator)
    train = load_records(cfg, pddl=pddl)
    records = {"train": {d: len(idx) for d, idx in train.domains.items()}}
    skipped = {"train": train.skipped}
    test_root = os.path.join(os.path.abspath(cfg.data_root), "test")
    if os.path.isdir(test_root):
        named = [d for d in train.domains if os.path.isfile(os.path.join(test_root, f"{d}.jsonl"))]
        if named:
            test_cfg = cfg.model_copy(update={"data_root": test_root, "pddl_root": pddl_root(cfg), "domains": named})
            discover_domains(test_cfg)
            test = load_records(test_cfg, pddl=pddl)
            records["test"] = {d: len(idx) for d, idx in test.domains.items()}
            skipped["test"] = test.skipped
            for idx in test.domains.values():
                idx.close()
    for idx in train.domains.values():
        idx.close()
    root = pddl_root(cfg)
    task_validators = ({task_key(d, p, root): c.validator for (d, p), c in pddl.choices.items()}
                       if validator == "auto" else {})  # the workers read it under auto only
    counts = _log_validators(pddl, validator, tuple(train.domains))
    report = PreflightReport(tuple(train.domains), records, skipped, time.monotonic() - t0, task_validators, counts)
    log.info("pre-flight: %s records checked in %.1f s, PDDL under %s",
             {s: sum(n.values()) for s, n in records.items()}, report.seconds, pddl_root(cfg))
    if any(n for split in skipped.values() for n in split.values()):
        log.warning("pre-flight: records skipped (on_bad_record: skip): %s",
                    {s: {d: n for d, n in split.items() if n} for s, split in skipped.items()})
    return report


def _log_validators(pddl: PddlFileCheck, validator: str, domains: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """One line per domain: the validator(s) of its tasks and why; a warning for those routed to VAL."""
    counts: dict[str, dict[str, int]] = {}
    for domain in domains:
        pairs = sorted(pddl.by_domain.get(domain, ()))
        if not pairs:
            if pddl.mode != "all" and validator == "auto":
                log.info("pre-flight: domain %s: validator decided per task by the reward workers "
                         "(sampler.check_pddl: %s parses no problem here)", domain, pddl.mode)
            continue
        choices: list[ValidatorChoice] = [pddl.choices[p] for p in pairs]
        n_val = sum(c.validator == "val" for c in choices)
        n_native = len(choices) - n_val
        if validator != "auto":
            counts[domain] = {validator: len(choices)}
            why = f"{n_val} of them use a feature only VAL simulates" if n_val else "every task parses"
            log.info("pre-flight: domain %s: validator %s for %d task(s) (reward.validator: %s; %s)",
                     domain, validator, len(choices), validator, why)
            continue
        counts[domain] = {k: n for k, n in (("native", n_native), ("val", n_val)) if n}
        if not n_val:
            log.info("pre-flight: domain %s: validator native for %d task(s): every task parses with supported "
                     "requirements only", domain, n_native)
            continue
        first = next(c for c in choices if c.validator == "val")
        requirements = sorted({c.requirement or "?" for c in choices if c.validator == "val"})
        mixed = f", native for {n_native}" if n_native else ""
        log.warning("pre-flight: domain %s: validator val for %d task(s)%s: it uses %s, which the native validator "
                    "does not simulate (%s); VAL will be used (reward.validator: auto)", domain, n_val, mixed,
                    ", ".join(requirements), first.reason)
    return counts
