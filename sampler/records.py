"""Load and check `<data_root>/<domain>.jsonl` up front; index records by byte offset, read lines on demand."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from reward_service.result import Label
from sampler.config import SamplerConfig
from sampler.difficulty import DEFAULT_SPECS, DifficultySpec, spec_for
from sampler.pddl_check import PddlFileCheck, PddlFileError

log = logging.getLogger(__name__)

# Size caps of one record (docs/reliability.md). A line is read at most this far, so a
# multi-GB line cannot exhaust memory; a prompt this long is no planning task (Qwen3-14B's 32k-token context is
# about 130k characters) and would only be cut from the left by the prompt limit.
MAX_RECORD_BYTES = 1 << 20  # one JSONL line (a record), without its newline: 1 MiB
MAX_PROMPT_CHARS = 200_000  # characters of `prompt`


class RecordError(ValueError):
    """A JSONL line that breaks the record contract; the message starts with `file:line:`."""


__all__ = ["MAX_PROMPT_CHARS", "MAX_RECORD_BYTES", "PddlFileError", "RecordError", "discover_domains",
           "ignored_files", "load_records", "pddl_root"]


@dataclass
class DomainIndex:
    """One domain's checked records: where each line starts, its difficulty params and score.

    Memory grows with the number of records (about 50 bytes each), never with prompt text:
    a record is read back from its file when a batch needs it.
    """

    domain: str
    path: str
    line_index: np.ndarray  # 0-based line number of each record in its file (int32)
    offsets: np.ndarray  # byte offset of each record's line (int64)
    param_names: tuple[str, ...]
    params: np.ndarray  # one row of difficulty params per record (int64)
    scores: np.ndarray  # difficulty score per record (float64)
    skipped: int = 0
    _handle: IO[bytes] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.offsets)

    def record(self, i: int) -> dict[str, Any]:
        """The i-th record, parsed again from its line (a fresh dict every call)."""
        if self._handle is None:
            self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open for the index's lifetime
        self._handle.seek(int(self.offsets[i]))
        return json.loads(self._handle.readline())

    def difficulty_params(self, i: int) -> dict[str, int]:
        return dict(zip(self.param_names, self.params[i].tolist(), strict=True))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        # File handles do not cross processes; the receiver reopens the file on first read.
        return {**self.__dict__, "_handle": None}


@dataclass(frozen=True)
class RecordIndex:
    """Every selected domain's index, keyed by domain name in sorted order."""

    data_root: str
    domains: dict[str, DomainIndex]
    pddl_root: str = ""  # the folder meta paths are relative to ("" = data_root)

    @property
    def skipped(self) -> dict[str, int]:
        return {d: idx.skipped for d, idx in self.domains.items()}


class _PathChecker:
    """Checks meta paths stay inside the PDDL root and exist, listing each directory once (no stat per file).

    The rule is lexical (the same as reward_service.scoring.resolve_data_path): `..` or an absolute
    path that leaves the root is refused; symlinks inside it are followed, not resolved.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._listings: dict[str, frozenset[str]] = {}

    def problem(self, value: Any, key: str) -> str | None:
        """None when `value` is a path to an existing file inside the PDDL root, else what is wrong."""
        if not isinstance(value, str) or not value:
            return f"meta.{key} must be a non-empty string, got {value!r}"
        if value[0] != "/" and ".." not in value and "./" not in value and "//" not in value:
            directory, _, name = (self.root + "/" + value).rpartition("/")  # plain relative path: no normpath
        else:
            full = os.path.normpath(value if os.path.isabs(value) else os.path.join(self.root, value))
            if not full.startswith(self.root + os.sep):
                return f"meta.{key} {value!r} escapes pddl_root {self.root}"
            directory, name = os.path.split(full)
        listing = self._listings.get(directory)
        if listing is None:
            try:
                with os.scandir(directory) as entries:
                    listing = frozenset(e.name for e in entries if e.is_file())
            except (FileNotFoundError, NotADirectoryError):
                listing = frozenset()
            self._listings[directory] = listing
        if name not in listing:
            return f"meta.{key} {value!r} does not exist under pddl_root {self.root}"
        return None

    def full(self, value: str) -> str:
        """The checked path `value` as a normalised absolute path (call after `problem` returned None)."""
        return os.path.normpath(value if os.path.isabs(value) else os.path.join(self.root, value))


def known_domains(cfg: SamplerConfig) -> frozenset[str]:
    """Names a `<name>.jsonl` may have to be taken as a domain: the built-in five, configured specs, named ones."""
    return frozenset(DEFAULT_SPECS) | frozenset(cfg.difficulty_specs) | frozenset(cfg.domains or ())


def discover_domains(cfg: SamplerConfig) -> dict[str, str]:
    """Domain name -> JSONL path; a named domain without its file is an error.

    Only files of known or named domains are domains: a `combined.jsonl`, a `metadata.json` and any
    other file beside them are left alone (`ignored_files` lists them).
    """
    root = os.path.abspath(cfg.data_root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data_root {root} is not a directory")
    if cfg.domains is None:
        known = known_domains(cfg)
        stems = sorted(f[: -len(".jsonl")] for f in os.listdir(root) if f.endswith(".jsonl"))
        names = [s for s in stems if s in known]
        if not names:
            found = f"; found {[s + '.jsonl' for s in stems]}, none of a known domain" if stems else ""
            raise FileNotFoundError(f"data_root {root} holds no <domain>.jsonl file of a known domain "
                                    f"({', '.join(sorted(known))}){found}: name yours in sampler.domains "
                                    "or give them sampler.difficulty_specs")
    else:
        names = sorted(set(cfg.domains))
        for name in names:
            if not os.path.isfile(os.path.join(root, f"{name}.jsonl")):
                raise FileNotFoundError(f"domain '{name}' has no file {os.path.join(root, name + '.jsonl')}")
    return {name: os.path.join(root, f"{name}.jsonl") for name in names}


SIDECAR_FILES = frozenset({"metadata.json", "import.json"})  # written beside the records by build_data / the importer


def ignored_files(cfg: SamplerConfig, domains: dict[str, str] | None = None) -> list[str]:
    """Files directly in data_root that are not a selected domain's JSONL (combined.jsonl, metadata.json, ...)."""
    root = os.path.abspath(cfg.data_root)
    taken = {os.path.basename(p) for p in (domains or discover_domains(cfg)).values()}
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if e.is_file() and e.name not in taken)


def pddl_root(cfg: SamplerConfig) -> str:
    """The folder meta paths are relative to: sampler.pddl_root, else data_root (absolute, normalised)."""
    return os.path.normpath(os.path.abspath(cfg.pddl_root if cfg.pddl_root is not None else cfg.data_root))


def load_records(cfg: SamplerConfig, list_ignored: bool = True, pddl: PddlFileCheck | None = None) -> RecordIndex:
    """Check every line of every selected domain's JSONL and the PDDL it names, and index the good ones.

    `list_ignored` logs the files of data_root that are not a selected domain's records (once, at start:
    the SamplerActor passes False, the driver's pre-flight listed them). `pddl`: the pre-flight's checker
    (it keeps each task's validator choice); a new one from cfg.check_pddl when None.
    """
    root = pddl_root(cfg)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"pddl_root {root} is not a directory")
    checker = _PathChecker(root)
    files = discover_domains(cfg)
    if list_ignored and (ignored := ignored_files(cfg, files)):
        # the data builder's and the importer's own sidecar files are expected: listed, not warned about
        level = logging.INFO if set(ignored) <= SIDECAR_FILES else logging.WARNING
        log.log(level, "data_root %s: ignoring %d file(s) that are not a domain's records: %s",
                os.path.abspath(cfg.data_root), len(ignored), ", ".join(ignored))
    pddl = pddl if pddl is not None else PddlFileCheck(cfg.check_pddl)
    domains = {d: _load_domain(d, path, cfg, checker, pddl) for d, path in files.items()}
    return RecordIndex(data_root=os.path.abspath(cfg.data_root), domains=domains, pddl_root=root)


def _spec(domain: str, cfg: SamplerConfig) -> DifficultySpec | None:
    if cfg.difficulty == "plan_length":
        return None
    spec = spec_for(domain, cfg.difficulty_specs, cfg.difficulty)
    if spec is None:
        raise ValueError(f"no difficulty spec for domain '{domain}': add sampler.difficulty_specs.{domain} "
                         "or set sampler.difficulty: plan_length")
    return spec


def _load_domain(
    domain: str, path: str, cfg: SamplerConfig, checker: _PathChecker, pddl: PddlFileCheck
) -> DomainIndex:
    spec = _spec(domain, cfg)
    param_names = ("plan_length",) if spec is None else spec.param_names
    lines, offsets, params = [], [], []
    users: dict[tuple[str, str], list[int]] = {}  # (domain file, problem file) -> lines of the records using it
    skipped: Counter[str] = Counter()
    unparsed = 0
    offset = 0
    with open(path, "rb") as f:
        for lineno, (raw, size) in enumerate(_bounded_lines(f)):
            start, offset = offset, offset + size
            if raw is None:
                problem, row, meta = (f"record is {size:,} bytes with its newline, over the cap of {MAX_RECORD_BYTES:,}"
                                      " bytes per line (sampler.records.MAX_RECORD_BYTES)"), [], None
            elif not raw.strip():
                continue  # blank lines (e.g. a trailing newline) are not records
            else:
                problem, row, meta = _check_line(raw, spec, cfg, checker)
            if problem == "unparsed":
                unparsed += 1
                problem, row = None, [1] * len(param_names)
            if problem is not None:
                if cfg.on_bad_record == "error":
                    raise RecordError(f"{path}:{lineno + 1}: {problem}")
                skipped[problem.split(" ", 1)[0]] += 1
                log.debug("skipping %s:%d: %s", path, lineno + 1, problem)
                continue
            lines.append(lineno)
            offsets.append(start)
            params.append(row)
            if meta is not None and pddl.mode != "off":
                pair = (checker.full(meta["domain_file"]), checker.full(meta["problem_file"]))
                users.setdefault(pair, []).append(lineno)
    bad_lines = _check_pddl(path, users, pddl, cfg, domain)
    if bad_lines:
        skipped["pddl"] += len(bad_lines)
        keep = [k for k, ln in enumerate(lines) if ln not in bad_lines]
        lines, offsets, params = [lines[k] for k in keep], [offsets[k] for k in keep], [params[k] for k in keep]
    if unparsed:
        log.warning("domain %s: %d problem file names do not match %r; using params 1", domain, unparsed, spec.pattern)
    if skipped:
        log.warning("domain %s: skipped %d bad records (%s)", domain, sum(skipped.values()), dict(skipped))
    table = np.asarray(params, dtype=np.int64).reshape(len(lines), len(param_names))
    return DomainIndex(
        domain=domain,
        path=path,
        line_index=np.asarray(lines, dtype=np.int32),
        offsets=np.asarray(offsets, dtype=np.int64),
        param_names=param_names,
        params=table,
        scores=table[:, 0].astype(np.float64) if spec is None else spec.scores_of(table),
        skipped=sum(skipped.values()),
    )


def _bounded_lines(f: IO[bytes]):
    """(line, bytes it takes in the file) for each line of `f`; (None, bytes) for a line over MAX_RECORD_BYTES,
    read past in chunks rather than into memory."""
    while raw := f.readline(MAX_RECORD_BYTES + 1):
        if len(raw) <= MAX_RECORD_BYTES or raw.endswith(b"\n"):
            yield raw, len(raw)
            continue
        size = len(raw)
        while chunk := f.readline(1 << 20):
            size += len(chunk)
            if chunk.endswith(b"\n"):
                break
        yield None, size


_decode = json.JSONDecoder().decode
LABELS = frozenset(label.value for label in Label)


def _check_pddl(path: str, users: dict[tuple[str, str], list[int]], pddl: PddlFileCheck,
                cfg: SamplerConfig, domain: str = "") -> set[int]:
    """0-based lines of records whose PDDL does not parse; with on_bad_record: error, the first bad file raises."""
    bad: set[int] = set()
    for (domain_file, problem_file), record_lines in users.items():
        error = pddl.check(domain_file, problem_file, domain)
        if error is None:
            continue
        if cfg.on_bad_record == "error":
            bad_file = domain_file if pddl.check(domain_file, None) else problem_file
            every = sorted(ln for pair, ls in users.items() if bad_file in pair for ln in ls)
            raise PddlFileError(f"{error}\n  used by {len(every)} record(s): {_lines_text(path, every)}")
        bad.update(record_lines)
        log.debug("skipping %d records of %s: %s", len(record_lines), path, error)
    return bad


def _lines_text(path: str, lines: list[int], most: int = 10) -> str:
    shown = ", ".join(str(ln + 1) for ln in lines[:most])
    return f"{path}:{shown}" + (f" and {len(lines) - most} more" if len(lines) > most else "")


def _check_line(
    raw: bytes, spec: DifficultySpec | None, cfg: SamplerConfig, checker: _PathChecker
) -> tuple[str | None, list[int], dict[str, Any] | None]:
    """(what is wrong or None, difficulty params row, meta); "unparsed" when only the file name failed."""
    try:
        rec = _decode(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        return f"invalid UTF-8 at byte {err.start}", [], None
    except json.JSONDecodeError as err:
        return f"invalid JSON: {err.msg} at column {err.colno}", [], None
    if not isinstance(rec, dict):
        return f"record must be a JSON object, got {type(rec).__name__}", [], None
    prompt = rec.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return f"prompt must be a non-empty string, got {type(prompt).__name__}", [], None
    if len(prompt) > MAX_PROMPT_CHARS:
        return (f"prompt is {len(prompt):,} characters, over the cap of {MAX_PROMPT_CHARS:,} "
                "(sampler.records.MAX_PROMPT_CHARS)"), [], None
    meta = rec.get("meta")
    if not isinstance(meta, dict):
        return f"meta must be a JSON object, got {type(meta).__name__}", [], None
    for key in ("problem_file", "domain_file"):
        if (problem := checker.problem(meta.get(key), key)) is not None:
            return problem, [], None
    length = meta.get("reference_plan_length")
    if spec is None or length is not None:  # the reward reads it too: "4" or 7.0 must fail here, not there
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            why = " for difficulty: plan_length" if spec is None else ""
            return f"meta.reference_plan_length must be an integer >= 0{why}, got {length!r}", [], None
    label = rec.get("class_label")
    if label is not None and label not in LABELS:
        return f"class_label must be one of {sorted(LABELS)}, got {label!r}", [], None
    if spec is None:
        return None, [length], meta
    row = spec.parse_row(meta["problem_file"])
    if row is None:
        if cfg.on_unparsed_name == "default":
            return "unparsed", [], meta
        return (f"problem file name {os.path.basename(meta['problem_file'])!r} of domain '{spec.domain}' "
                f"does not match {spec.pattern!r}"), [], None
    return None, row, meta
