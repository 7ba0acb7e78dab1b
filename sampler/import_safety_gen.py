"""Build a pddl-grpo data root from a checkout of a Safety-gen repository, rewriting paths; print what it took.

    python -m sampler.import_safety_gen SRC --out DIR [--domains blocksworld,ferry] [--jsonl-dir data/grpo]
        [--problem-list DOMAIN=FILE ...]

Their layout: `pddl3/<domain>/domain3.pddl` (or `domain.pddl`) beside the problem files and `.soln` gold
plans; `<domain>.jsonl` records whose `meta.domain_file` / `meta.problem_file` are relative to their
repository root (also accepted: relative to the JSONL's folder, or absolute inside SRC), with a
`combined.jsonl` and a `metadata.json` beside them. A domain with no JSONL gets one record per problem
file in its folder, or per line of `--problem-list DOMAIN=FILE` (paths relative to SRC), with the
project's full prompt. Output: `DIR/<domain>.jsonl`, `DIR/pddl/<domain>/...` (files copied, paths
rewritten), `.soln` plans as `response` and `meta.reference_plan_length`, and `DIR/import.json`.
Afterwards the sampler's loader checks the result (every PDDL file parsed), as a run would at start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sampler.datagen.prompts import full_prompt
from sampler.difficulty import DEFAULT_SPECS

DOMAIN_FILE_NAMES = ("domain3.pddl", "domain.pddl")


@dataclass
class ImportReport:
    """What the import took and skipped, printed at the end and written to DIR/import.json."""

    domains: dict[str, int] = field(default_factory=dict)  # domain -> records written
    sources: dict[str, str] = field(default_factory=dict)  # domain -> where its records came from
    copied_files: int = 0
    gold_plans: int = 0
    skipped_records: Counter[str] = field(default_factory=Counter)  # "domain: reason" -> count
    skipped_files: list[str] = field(default_factory=list)  # "path (why)"

    def to_dict(self) -> dict[str, Any]:
        return {"domains": self.domains, "sources": self.sources, "copied_files": self.copied_files,
                "gold_plans": self.gold_plans, "skipped_records": dict(self.skipped_records),
                "skipped_files": self.skipped_files}


def find_domains(src: Path, wanted: Sequence[str] | None) -> dict[str, Path]:
    """Domain name -> its domain file under SRC/pddl3 (or SRC/pddl): one folder per domain."""
    for base in (src / "pddl3", src / "pddl"):
        if base.is_dir():
            break
    else:
        raise FileNotFoundError(f"{src}: no pddl3/ (or pddl/) folder with one folder per domain")
    found = {}
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        domain_file = next((folder / n for n in DOMAIN_FILE_NAMES if (folder / n).is_file()), None)
        if domain_file is not None and (wanted is None or folder.name in wanted):
            found[folder.name] = domain_file
    missing = sorted(set(wanted or ()) - set(found))
    if missing:
        raise FileNotFoundError(f"{base}: no folder with {' or '.join(DOMAIN_FILE_NAMES)} for {missing}")
    if not found:
        raise FileNotFoundError(f"{base}: no <domain>/{DOMAIN_FILE_NAMES[0]}")
    return found


def find_jsonl(src: Path, domains: Sequence[str], jsonl_dir: str | None, report: ImportReport) -> dict[str, Path]:
    """Domain -> its records file: `<domain>.jsonl` in --jsonl-dir, else the first one found under SRC."""
    roots = [src / jsonl_dir] if jsonl_dir else [src]
    found: dict[str, Path] = {}
    for root in roots:
        for path in sorted(root.rglob("*.jsonl")):
            if any(part.startswith(".") for part in path.relative_to(src).parts):
                continue
            rel = str(path.relative_to(src))
            if path.stem not in domains:
                report.skipped_files.append(f"{rel} (not a domain's records)")
            elif path.stem in found:
                report.skipped_files.append(f"{rel} (records of {path.stem} already taken from "
                                            f"{found[path.stem].relative_to(src)})")
            else:
                found[path.stem] = path
                for other in sorted(path.parent.iterdir()):
                    if other.is_file() and other.suffix != ".jsonl":
                        report.skipped_files.append(f"{other.relative_to(src)} (not records)")
    report.skipped_files = sorted(set(report.skipped_files))
    return found


def _inside(path: Path, src: Path) -> bool:
    return path.resolve().is_relative_to(src.resolve())


def locate(value: Any, src: Path, jsonl: Path | None) -> Path | None:
    """The file a meta path names: relative to SRC (their repository root), else to the JSONL's folder."""
    if not isinstance(value, str) or not value:
        return None
    candidates = [Path(value)] if Path(value).is_absolute() else [src / value]
    if jsonl is not None and not Path(value).is_absolute():
        candidates.append(jsonl.parent / value)
    for path in candidates:
        if path.is_file() and _inside(path, src):
            return path
    return None


def gold_plan(problem: Path) -> str | None:
    """The `.soln` beside a problem, as one action per line (comments and blank lines dropped)."""
    soln = problem.with_suffix(".soln")
    if not soln.is_file():
        return None
    lines = [ln.split(";", 1)[0].strip() for ln in soln.read_text(encoding="utf-8", errors="replace").splitlines()]
    return "\n".join(ln for ln in lines if ln.startswith("(")) or None


class _Copier:
    """Copies PDDL into DIR/pddl/<domain>/ once per source file, keeping base names unique per domain."""

    def __init__(self, out: Path, report: ImportReport) -> None:
        self.out, self.report = out, report
        self._done: dict[Path, str] = {}
        self._names: dict[str, Path] = {}

    def copy(self, domain: str, path: Path) -> str:
        path = path.resolve()
        if path in self._done:
            return self._done[path]
        rel = f"pddl/{domain}/{path.name}"
        if rel in self._names:  # same name from another folder: keep both
            rel = f"pddl/{domain}/{len(self._done)}-{path.name}"
        target = self.out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        soln = path.with_suffix(".soln")
        if soln.is_file():
            shutil.copyfile(soln, target.with_suffix(".soln"))
        self._done[path], self._names[rel] = rel, path
        self.report.copied_files += 1
        return rel


def _records_from_jsonl(domain: str, jsonl: Path, src: Path, report: ImportReport):
    for lineno, line in enumerate(jsonl.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            report.skipped_records[f"{domain}: invalid JSON"] += 1
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("meta"), dict) or not rec.get("prompt"):
            report.skipped_records[f"{domain}: no prompt or meta"] += 1
            continue
        yield lineno, rec


def _records_from_problems(domain: str, domain_file: Path, problems: list[Path]):
    domain_text = domain_file.read_text(encoding="utf-8", errors="replace")
    for k, problem in enumerate(problems, 1):
        rec = {"prompt": full_prompt(domain_text, problem.read_text(encoding="utf-8", errors="replace")),
               "meta": {"scenario": domain, "problem_id": problem.stem, "domain_file": str(domain_file),
                        "problem_file": str(problem)}}
        yield k, rec


def import_data(src: str | Path, out: str | Path, domains: Sequence[str] | None = None,
                jsonl_dir: str | None = None, problem_lists: dict[str, str] | None = None) -> ImportReport:
    """Write a project data root at `out` from the Safety-gen checkout `src` (see the module docstring)."""
    src, out = Path(src).resolve(), Path(out)
    report = ImportReport()
    domain_files = find_domains(src, domains)
    jsonl = find_jsonl(src, list(domain_files), jsonl_dir, report)
    out.mkdir(parents=True, exist_ok=True)
    copier = _Copier(out, report)
    for domain, domain_file in domain_files.items():
        if domain in (problem_lists or {}):
            listed = (src / problem_lists[domain]).read_text().split()
            problems = [src / p for p in listed]
            report.sources[domain] = f"problem list {problem_lists[domain]}"
            records = _records_from_problems(domain, domain_file, problems)
        elif domain in jsonl:
            report.sources[domain] = str(jsonl[domain].relative_to(src))
            records = _records_from_jsonl(domain, jsonl[domain], src, report)
        else:
            problems = sorted(p for p in domain_file.parent.glob("*.pddl") if p.name not in DOMAIN_FILE_NAMES)
            report.sources[domain] = f"problem files in {domain_file.parent.relative_to(src)}/"
            records = _records_from_problems(domain, domain_file, problems)
        written = 0
        with (out / f"{domain}.jsonl").open("w") as fh:
            for _, rec in records:
                meta = rec["meta"]
                found = {k: locate(meta.get(k), src, jsonl.get(domain)) for k in ("domain_file", "problem_file")}
                if found["problem_file"] is None:
                    report.skipped_records[f"{domain}: problem_file not found inside SRC"] += 1
                    continue
                meta["domain_file"] = copier.copy(domain, found["domain_file"] or domain_file)
                meta["problem_file"] = copier.copy(domain, found["problem_file"])
                meta.setdefault("scenario", domain)
                plan = gold_plan(found["problem_file"])
                if plan is not None:
                    report.gold_plans += 1
                    meta.setdefault("reference_plan_length", plan.count("\n") + 1)
                    if not rec.get("response"):
                        rec["response"], rec["class_label"] = plan, "success_plans"
                fh.write(json.dumps(rec) + "\n")
                written += 1
        report.domains[domain] = written
    (out / "import.json").write_text(json.dumps({"source": str(src), **report.to_dict()}, indent=2) + "\n")
    return report


def print_report(report: ImportReport, out: Path, file: Any = None) -> None:
    file = file or sys.stdout
    print(f"took {sum(report.domains.values())} records of {len(report.domains)} domains into {out}:", file=file)
    for domain, n in report.domains.items():
        note = "" if domain in DEFAULT_SPECS else "  (no built-in difficulty spec: add sampler.difficulty_specs)"
        print(f"  {domain:<14}{n:>6} records  from {report.sources[domain]}{note}", file=file)
    print(f"  {report.copied_files} PDDL files copied, {report.gold_plans} records with a .soln gold plan", file=file)
    for reason, n in sorted(report.skipped_records.items()):
        print(f"skipped {n} records ({reason})", file=file)
    for entry in report.skipped_files:
        print(f"skipped {entry}", file=file)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sampler.import_safety_gen", description=__doc__.splitlines()[0])
    p.add_argument("src", help="root of the Safety-gen checkout (the folder holding pddl3/)")
    p.add_argument("--out", required=True, help="data root to write (sampler.data_root of the run)")
    p.add_argument("--domains", default=None, help="comma-separated domains to take (default: every pddl3/ folder)")
    p.add_argument("--jsonl-dir", default=None, help="folder of their <domain>.jsonl, relative to SRC "
                   "(default: the first <domain>.jsonl found under SRC)")
    p.add_argument("--problem-list", action="append", default=[], metavar="DOMAIN=FILE",
                   help="records from a list of problem paths (relative to SRC), one per line")
    p.add_argument("--no-check", action="store_true", help="skip loading the result with the sampler's checks")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    lists = dict(item.split("=", 1) for item in args.problem_list)
    try:
        report = import_data(args.src, args.out, args.domains.split(",") if args.domains else None,
                             args.jsonl_dir, lists)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"sampler.import_safety_gen: {err}") from None
    print_report(report, Path(args.out))
    if not args.no_check:
        from sampler.config import SamplerConfig
        from sampler.records import load_records

        try:
            index = load_records(SamplerConfig(data_root=args.out, domains=list(report.domains),
                                               on_unparsed_name="default"))
        except ValueError as err:
            raise SystemExit(f"sampler.import_safety_gen: the imported data does not load: {err}") from None
        print(f"checked: {sum(len(d) for d in index.domains.values())} records load, every PDDL file parses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
