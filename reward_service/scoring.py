"""Scoring a batch: extract each completion's plan, validate it (VAL or native), turn the verdict into a Score.

    scorer = RewardScorer(RewardConfig(), data_root="data")
    scores = scorer.score(completions, samples)   # one Score per completion, in order

Parse -> validate -> reward are three steps with typed results (extract.Extraction, ValidationResult,
dense.reward_for). A validator that fails or runs over `timeout_s` gives reward None, never a number.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reward_service.config import RewardConfig
from reward_service.contracts import Completion, Score
from reward_service.dense import reference_length, reward_for
from reward_service.extract import Extraction, PlanExtractor
from reward_service.result import Label, ValidationResult, Validator

log = logging.getLogger(__name__)


class ValidationTimeout(Exception):
    """A validation ran over its deadline."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[bool]:
    """Raise ValidationTimeout in the block after `seconds`; yields whether the deadline is enforced.

    Uses SIGALRM, so it is enforced only on the main thread of a POSIX process (a Ray actor's sync
    methods run there). Elsewhere the validators' own timeouts apply and the pool's watchdog kills
    a worker that hangs.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield False
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise ValidationTimeout(f"validation ran over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def build_validator(name: str, timeout_s: float | None = None) -> Validator:
    """The validator named "val" or "native", imported only when first needed (auto picks one per task).

    VAL gets the per-plan timeout for its subprocess (it cannot be interrupted by a signal mid-call).
    """
    from reward_service.validators import make_validator  # lazy: validators load the PDDL core

    if name == "val" and timeout_s is not None:
        return make_validator(name, timeout_s=timeout_s)
    return make_validator(name)  # type: ignore[arg-type]  # checked by make_validator


def resolve_data_path(data_root: str | Path, relative: str | Path, what: str) -> Path:
    """`data_root / relative`, refusing paths that escape the data root or do not exist.

    Lexical, the sampler's rule (sampler/records.py): `..` or an absolute path leaving the root is
    refused; a symlink inside the root is followed, so what the sampler accepted is scored here too.
    """
    root = Path(os.path.normpath(os.path.abspath(data_root)))
    path = Path(os.path.normpath(root / relative))
    if not path.is_relative_to(root):
        raise ValueError(f"meta.{what} {str(relative)!r} escapes the data root {str(root)!r}")
    if not path.is_file():
        raise FileNotFoundError(f"meta.{what} {str(relative)!r} not found under data root {str(root)!r}")
    return path


def sample_domain(sample: Mapping[str, Any]) -> str:
    """The domain name a Score carries: the sample's `domain`, else `meta.scenario`, else ""."""
    return str(sample.get("domain") or sample.get("meta", {}).get("scenario") or "")


@dataclass
class ScorerStats:
    """Running counters of one RewardScorer."""

    plans: int = 0
    timeouts: int = 0
    validator_errors: int = 0
    cross_checked: int = 0
    disagreements: int = 0


class RewardScorer:
    """Scores batches of completions against their samples' PDDL problems."""

    def __init__(
        self,
        config: RewardConfig,
        data_root: str | Path,
        validator: Validator | None = None,
        cross_validator: Validator | None = None,
    ) -> None:
        self.config = config
        self.data_root = Path(data_root)
        self.extractor = PlanExtractor(config.max_completion_bytes)
        self._validator = validator
        self._cross_validator = cross_validator
        self._built: dict[str, Validator] = {}
        self._task_choice: dict[tuple[Path, Path], str] = {}  # auto: the validator of each task
        self._rng = random.Random(config.seed)
        self.stats = ScorerStats()

    def _named(self, name: str) -> Validator:
        if name not in self._built:
            self._built[name] = build_validator(name, self.config.timeout_s)
        return self._built[name]

    @property
    def validator(self) -> Validator:
        """The validator given, else the one configured (under auto: native, the one most tasks get)."""
        if self._validator is None:
            self._validator = self._named("native" if self.config.validator == "auto" else self.config.validator)
        return self._validator

    def validator_for(self, domain_path: Path, problem_path: Path) -> tuple[Validator, bool]:
        """The validator of one task and whether the other validator can cross-check it.

        Under auto: the pre-flight's decision (RewardConfig.task_validators), else decided here once per task
        by the same rule (reward_service.validators.choose_validator) and logged. A task routed to VAL because
        the native validator cannot simulate it is not cross-checked (native has no verdict on it).
        """
        if self._validator is not None or self.config.validator != "auto":
            return self.validator, True
        key = (domain_path, problem_path)
        if key not in self._task_choice:
            from reward_service.validators import choose_validator, task_key

            name = self.config.task_validators.get(task_key(domain_path, problem_path, self.data_root))
            if name is None:
                try:
                    choice = choose_validator(domain_path, problem_path)
                    name, why = choice.validator, choice.reason
                except Exception as exc:  # the parser cannot read it: VAL may (it gives the verdict or the error)
                    name, why = "val", f"the parser cannot read it: {exc}"
                log.info("task %s %s: validator %s (not decided at pre-flight: %s)", domain_path.name,
                         problem_path.name, name, why)
            self._task_choice[key] = name
        name = self._task_choice[key]
        return self._named(name), name == "native"  # a task routed to VAL has no native verdict to compare

    def _cross_for(self, first: Validator) -> Validator:
        if self._cross_validator is not None:
            return self._cross_validator
        return self._named("native" if first.name == "val" else "val")

    def score(self, completions: Sequence[Completion], samples: Sequence[Mapping[str, Any]]) -> list[Score]:
        """One Score per completion, in order; `samples` are looked up by `sample_id` (duplicates allowed)."""
        by_id = {str(s["sample_id"]): s for s in samples}
        scores: list[Score | None] = [None] * len(completions)
        groups: dict[tuple[Path, Path], list[tuple[int, Extraction, Score]]] = {}
        # A GRPO group shares one sample: resolve its files and reference length once per sample_id, not per plan.
        # The gold length is looked up only when it is p's denominator (progress_denominator: reference_length).
        by_reference = self.config.progress_denominator == "reference_length"
        resolved: dict[str, tuple[Path, Path, str, int | None]] = {}
        # A file the pre-flight saw but that is gone now (deleted or unmounted mid-run) is an infrastructure
        # fault, not a bad plan: that sample's completions score None naming the file (the max_none_steps
        # guard stops a run where it lasts), and the other samples of the batch are scored as usual.
        missing: dict[str, str] = {}
        for i, completion in enumerate(completions):
            sample = by_id.get(completion.sample_id)
            if sample is None:
                raise ValueError(f"no sample with sample_id {completion.sample_id!r} for completion {i}")
            if completion.sample_id not in resolved and completion.sample_id not in missing:
                meta = sample["meta"]
                try:
                    domain_file = resolve_data_path(self.data_root, meta["domain_file"], "domain_file")
                    problem = resolve_data_path(self.data_root, meta["problem_file"], "problem_file")
                except FileNotFoundError as exc:
                    missing[completion.sample_id] = str(exc)
                    log.error("sample %s: %s; its completions score None", completion.sample_id, exc)
                else:
                    resolved[completion.sample_id] = (
                        domain_file,
                        problem,
                        sample_domain(sample),
                        reference_length(meta, self.data_root, problem) if by_reference else None,
                    )
            t0 = time.perf_counter()
            extraction = self.extractor.extract(completion.text)
            _, _, domain, reference = resolved.get(completion.sample_id, (None, None, sample_domain(sample), None))
            base = Score(
                reward=None,
                label=Label.VALIDATOR_ERROR,
                plan=extraction.plan.to_text(),
                plan_length=len(extraction.plan),
                sample_id=completion.sample_id,
                domain=domain,
                reference_length=reference,
                dropped_lines=extraction.dropped_lines,
                trailing_text=extraction.trailing_text,
            )
            if completion.sample_id in missing:
                scores[i] = replace(base, error=missing[completion.sample_id],
                                    latency_ms=(time.perf_counter() - t0) * 1000)
                continue
            domain_path, problem_path = resolved[completion.sample_id][:2]
            if extraction.label is not None:  # decided without a validator
                decided = ValidationResult(label=extraction.label, plan_length=len(extraction.plan))
                scores[i] = replace(
                    base,
                    reward=reward_for(decided, base.reference_length, self.config),
                    label=extraction.label,
                    validator="extract",
                    latency_ms=(time.perf_counter() - t0) * 1000,
                    error=extraction.reason,
                )
            else:
                groups.setdefault((domain_path, problem_path), []).append((i, extraction, base))
        for (domain_path, problem_path), items in groups.items():
            for (i, _, _), score in zip(items, self._validate_group(domain_path, problem_path, items), strict=True):
                scores[i] = score
        self.stats.plans += len(completions)
        return scores  # type: ignore[return-value]  # every slot was filled above

    def _validate_group(
        self, domain_path: Path, problem_path: Path, items: list[tuple[int, Extraction, Score]]
    ) -> list[Score]:
        plans = [extraction.plan for _, extraction, _ in items]
        validator, cross_ok = self.validator_for(domain_path, problem_path)
        t0 = time.perf_counter()
        results: list[ValidationResult | str] | None = None
        try:
            with deadline(self.config.timeout_s * len(plans)):
                results = list(validator.validate_many(domain_path, problem_path, plans))
        except ValidationTimeout:
            results = None  # find the slow plan(s): one deadline each
        except ImportError:
            raise  # a broken install is not a validator verdict: fail loudly
        except Exception as exc:  # a broken validator is not a bad plan: reward None with the reason (STYLE 5)
            log.exception("validator %s failed on %s", validator.name, problem_path)
            results = [f"{type(exc).__name__}: {exc}"] * len(plans)
        share_ms = (time.perf_counter() - t0) * 1000 / max(len(plans), 1)
        if results is None:
            results = [self._validate_one(validator, domain_path, problem_path, plan) for plan in plans]
        scores = []
        for (_, extraction, base), result in zip(items, results, strict=True):
            scores.append(self._to_score(validator, base, result, share_ms))
            if (isinstance(result, ValidationResult) and cross_ok
                    and self._rng.random() < self.config.cross_check_fraction):
                self._cross_check(validator, domain_path, problem_path, extraction, result)
        return scores

    def _validate_one(self, validator: Validator, domain_path: Path, problem_path: Path,
                      plan: Any) -> ValidationResult | str:
        try:
            with deadline(self.config.timeout_s):
                return validator.validate(domain_path, problem_path, plan)
        except ValidationTimeout as exc:
            return f"timeout: {exc}"
        except ImportError:
            raise
        except Exception as exc:  # see _validate_group
            log.exception("validator %s failed on %s", validator.name, problem_path)
            return f"{type(exc).__name__}: {exc}"

    def _to_score(self, validator: Validator, base: Score, result: ValidationResult | str, share_ms: float) -> Score:
        if isinstance(result, str):  # the validator raised or ran over its deadline
            timed_out = result.startswith("timeout:")
            self.stats.timeouts += timed_out
            self.stats.validator_errors += not timed_out
            return replace(base, validator=validator.name, latency_ms=share_ms, error=result, timed_out=timed_out)
        reward = reward_for(result, base.reference_length, self.config)
        timed_out = result.label is Label.VALIDATOR_ERROR and "timed out" in (result.error or "")
        if result.label is Label.VALIDATOR_ERROR:
            self.stats.timeouts += timed_out
            self.stats.validator_errors += not timed_out
        return replace(
            base,
            reward=reward,
            label=result.label,
            plan_length=result.plan_length or base.plan_length,
            failed_step=result.failed_step,
            violation_state_index=result.violation_state_index,
            goals_satisfied=result.goals_satisfied,
            goals_total=result.goals_total,
            violated_constraint=result.violated_constraint,
            validator=result.validator or validator.name,
            latency_ms=result.latency_ms or share_ms,
            error=result.error,
            timed_out=timed_out,
        )

    def _cross_check(self, validator: Validator, domain_path: Path, problem_path: Path, extraction: Extraction,
                     first: ValidationResult):
        other = self._cross_for(validator)
        try:
            with deadline(self.config.timeout_s):
                second = other.validate(domain_path, problem_path, extraction.plan)
        except ValidationTimeout:
            log.warning("cross-check with %s timed out on %s", other.name, problem_path)
            return
        self.stats.cross_checked += 1
        keys = ("label", "failed_step", "goals_satisfied", "goals_total")
        # Goal counts only matter (to the reward) for goal_not_satisfied and success.
        compared = keys if first.label in (Label.GOAL_NOT_SATISFIED, Label.SUCCESS) else keys[:2]
        if any(getattr(first, k) != getattr(second, k) for k in compared):
            self.stats.disagreements += 1
            log.warning(
                "validators disagree on %s plan %r: %s says %s, %s says %s",
                problem_path,
                extraction.plan.to_text(),
                first.validator or validator.name,
                {k: getattr(first, k) for k in keys},
                second.validator or other.name,
                {k: getattr(second, k) for k in keys},
            )
