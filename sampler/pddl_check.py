"""PddlFileCheck: parse every referenced domain and problem file once at load, so bad PDDL stops a run at the door.

The sampler's loader asks it about each distinct (domain file, problem file) pair its records name;
a file that does not parse gives its `file:line: message` (PddlParseError / PddlSemanticError, as the
validators would raise them at reward time), and leniencies the parser accepts as VAL does (a surplus
`)` after the definition) are collected as warnings, each file once.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, Literal

from reward_service.pddl import Domain, PddlError, load_domain, load_problem
from reward_service.pddl.errors import PddlLeniencyWarning

log = logging.getLogger(__name__)


class PddlFileError(ValueError):
    """A referenced domain or problem file that does not parse: `file:line: message`, then the records using it."""


class PddlFileCheck:
    """Verdicts per file, cached: None when it parses, else its error text (`file:line: message 'symbol'`).

    `mode` is SamplerConfig.check_pddl: "all" parses domains and problems, "domains" only domain
    files, "off" nothing (every verdict None).
    """

    def __init__(self, mode: Literal["all", "domains", "off"] = "all") -> None:
        self.mode = mode
        self._domains: dict[str, Domain | str] = {}
        self._problems: dict[tuple[str, str], str | None] = {}
        self.warnings: list[str] = []
        self.parsed = 0

    def check(self, domain_file: str, problem_file: str | None) -> str | None:
        """What is wrong with the domain file, else with the problem file read against it; None if they parse."""
        if self.mode == "off":
            return None
        domain = self._domain(domain_file)
        if isinstance(domain, str):
            return domain
        if problem_file is None or self.mode == "domains":
            return None
        key = (domain_file, problem_file)
        if key not in self._problems:
            parsed = self._parse(lambda: load_problem(problem_file, domain), problem_file)
            self._problems[key] = parsed if isinstance(parsed, str) else None
        return self._problems[key]

    def _domain(self, path: str) -> Domain | str:
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
