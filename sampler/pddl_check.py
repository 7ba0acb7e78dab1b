"""PddlFileCheck: parse every referenced domain and problem file once at load, so bad PDDL stops a run at the door.

The sampler's loader asks it about each distinct (domain file, problem file) pair its records name;
a file that does not parse gives its `file:line: message` (PddlParseError / PddlSemanticError, as the
validators would raise them at reward time), and leniencies the parser accepts as VAL does (a surplus
`)` after the definition) are collected as warnings, each file once.

It also decides each pair's validator (reward.validator, docs/validators.md "Coverage"): a task that
parses is `native`; one using a feature the native validator does not simulate (PddlUnsupportedError:
durative actions, numeric fluents, derived predicates, timed initial literals) is `val` under auto and
val, and a refusal naming the requirement under native (the run cannot train on it).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, Literal

from reward_service.pddl import Domain, PddlError, PddlUnsupportedError, load_domain, load_problem
from reward_service.pddl.errors import PddlLeniencyWarning
from reward_service.validators import NATIVE_REASON, ValidatorChoice, choice_from_error

log = logging.getLogger(__name__)


class PddlFileError(ValueError):
    """A referenced domain or problem file that does not parse: `file:line: message`, then the records using it."""


class PddlFileCheck:
    """Verdicts per file, cached: None when it parses, else its error text (`file:line: message 'symbol'`).

    `mode` is SamplerConfig.check_pddl: "all" parses domains and problems, "domains" only domain
    files, "off" nothing (every verdict None). `validator` is RewardConfig.validator; `choices` holds
    the validator of every pair checked (keyed by the absolute paths), `by_domain` the pairs of each
    records domain named in `check(..., domain=)`.
    """

    def __init__(self, mode: Literal["all", "domains", "off"] = "all",
                 validator: Literal["auto", "val", "native"] = "auto") -> None:
        self.mode = mode
        self.validator = validator
        self._domains: dict[str, Domain | str | PddlUnsupportedError] = {}
        self._problems: dict[tuple[str, str], str | PddlUnsupportedError | None] = {}
        self.choices: dict[tuple[str, str], ValidatorChoice] = {}
        self.by_domain: dict[str, set[tuple[str, str]]] = {}
        self.warnings: list[str] = []
        self.parsed = 0

    def check(self, domain_file: str, problem_file: str | None, domain: str = "") -> str | None:
        """What is wrong with the domain file, else with the problem file read against it; None if they parse
        (or use only features VAL scores under reward.validator auto / val). Raises PddlFileError for a
        feature the native validator does not simulate under reward.validator: native."""
        if self.mode == "off":
            return None
        parsed = self._domain(domain_file)
        if isinstance(parsed, str):
            return parsed
        if isinstance(parsed, PddlUnsupportedError):  # the problem cannot be read without its domain
            return self._unsupported(parsed, domain_file, problem_file, domain)
        if problem_file is None or self.mode == "domains":
            return None
        key = (domain_file, problem_file)
        if key not in self._problems:
            result = self._parse(lambda: load_problem(problem_file, parsed), problem_file)
            self._problems[key] = result if isinstance(result, (str, PddlUnsupportedError)) else None
        verdict = self._problems[key]
        if isinstance(verdict, PddlUnsupportedError):
            return self._unsupported(verdict, domain_file, problem_file, domain)
        if verdict is None:
            self._choose(key, ValidatorChoice("native", NATIVE_REASON), domain)
        return verdict

    def _choose(self, key: tuple[str, str], choice: ValidatorChoice, domain: str) -> None:
        self.choices[key] = choice
        if domain:
            self.by_domain.setdefault(domain, set()).add(key)

    def _unsupported(self, err: PddlUnsupportedError, domain_file: str, problem_file: str | None,
                     domain: str) -> None:
        choice = choice_from_error(err)  # the one rule: VAL, naming the requirement
        requirement = choice.requirement
        if self.validator == "native":  # an error even with on_bad_record: skip (no record of it could be scored)
            name = f"domain '{domain}'" if domain else "this task"
            raise PddlFileError(f"{err}: {name} uses {requirement}, so it cannot be trained on with "
                                "reward.validator: native (auto or val scores it with VAL)")
        if problem_file is not None:
            self._choose((domain_file, problem_file), choice, domain)
        return None

    def _domain(self, path: str) -> Domain | str | PddlUnsupportedError:
        if path not in self._domains:
            self._domains[path] = self._parse(lambda: load_domain(path), path)
        return self._domains[path]

    def _parse(self, load: Callable[[], Any], path: str) -> Any:
        """What `load()` returns, or the error text when the file does not parse or cannot be read."""
        self.parsed += 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PddlLeniencyWarning)
            try:
                parsed = load()
            except PddlUnsupportedError as err:  # valid PDDL VAL may score: the caller decides
                return err
            except PddlError as err:
                return str(err)
            except (OSError, UnicodeError) as err:
                return f"{path}:0: cannot be read: {err}"
            except RecursionError:
                return f"{path}:0: nested too deeply to parse"
        for w in caught:
            if issubclass(w.category, PddlLeniencyWarning):
                self.warnings.append(str(w.message))
                log.warning("%s", w.message)
        return parsed
