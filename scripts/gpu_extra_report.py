"""Checks a resolved `[gpu]` set (pip's --report JSON, or the installed packages) against the project's CI pins.

    python scripts/gpu_extra_report.py report /tmp/report.json        # after pip install --dry-run --report
    python scripts/gpu_extra_report.py installed                      # the packages of this interpreter
    python scripts/gpu_extra_report.py conflict pip-output.log        # the lines that name pip's conflict

scripts/check_gpu_extra.sh calls it. It checks that the set holds vllm, unsloth, bitsandbytes and the
libraries they patch; that every package's requirement on another package of the set holds (pip's
resolver guarantees it for a dry run; an environment assembled with --no-deps or by hand may break it);
that vllm is the version .ci/vllm_cpu.sh tests on CPU, torch the one .ci/run installs, and transformers
inside the range the vllm tests ran with. Prints one `name version` line per key package, then one line
per problem; exit 1 when there is a problem.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("vllm", "unsloth", "unsloth-zoo", "bitsandbytes", "torch", "transformers", "trl", "peft")
KEY = REQUIRED + ("tokenizers", "accelerate", "xformers", "triton", "torchvision", "ray")


@dataclass(frozen=True)
class Dist:
    """One package of a resolved set: its version and its requirement strings (Requires-Dist)."""

    version: str
    requires: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()  # the extras asked of it ("gpu" of pddl-grpo): their requirements count too


@dataclass(frozen=True)
class CiPins:
    """What CI runs: the vLLM version and transformers range of .ci/vllm_cpu.sh, the torch of .ci/run."""

    vllm: str
    torch: str
    transformers: SpecifierSet


def read_ci_pins(root: Path = ROOT) -> CiPins:
    """The pins as the CI scripts spell them (VLLM_VERSION=, TRANSFORMERS_SPEC=, `pip install torch==`)."""
    vllm_sh = (root / ".ci" / "vllm_cpu.sh").read_text()
    ci_run = (root / ".ci" / "run").read_text()
    found = {
        "VLLM_VERSION": re.search(r'^VLLM_VERSION="([^"]+)"', vllm_sh, re.M),
        "TRANSFORMERS_SPEC": re.search(r'^TRANSFORMERS_SPEC="transformers([^"]+)"', vllm_sh, re.M),
        "torch==": re.search(r"pip install .*\btorch==([0-9][^\s\"']*)", ci_run),
    }
    missing = [name for name, m in found.items() if m is None]
    if missing:
        raise ValueError(f"{root / '.ci'}: cannot read {', '.join(missing)} (vllm_cpu.sh / run changed their form)")
    return CiPins(vllm=found["VLLM_VERSION"].group(1), torch=found["torch=="].group(1),
                  transformers=SpecifierSet(found["TRANSFORMERS_SPEC"].group(1)))


def dists_from_report(report: Mapping) -> dict[str, Dist]:
    """`pip install --dry-run --report` JSON -> {canonical name: Dist} of what pip would install."""
    out = {}
    for item in report.get("install", []):
        meta = item["metadata"]
        out[canonicalize_name(meta["name"])] = Dist(meta["version"], tuple(meta.get("requires_dist") or ()),
                                                    tuple(item.get("requested_extras") or ()))
    return out


def dists_installed() -> dict[str, Dist]:
    """The distributions of this interpreter, as `dists_from_report` gives them."""
    from importlib.metadata import distributions

    out = {canonicalize_name(d.metadata["Name"]): Dist(d.version, tuple(d.requires or ()))
           for d in distributions() if d.metadata["Name"]}
    if "pddl-grpo" in out:  # installed with .[gpu]: its gpu requirements are the ones to check
        out["pddl-grpo"] = Dist(out["pddl-grpo"].version, out["pddl-grpo"].requires, ("gpu",))
    return out


def requirement_conflicts(dists: Mapping[str, Dist], environment: Mapping[str, str] | None = None) -> list[str]:
    """Every requirement of a package of the set on another package of the set that the set's version breaks.

    Markers are evaluated for this machine (or `environment`) with no extra and with each extra asked of
    the package; requirements on packages outside the set are not checked (an absent optional one is fine).
    """
    problems = []
    for name, dist in sorted(dists.items()):
        for line in dist.requires:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                problems.append(f"{name} {dist.version}: unreadable requirement {line!r}")
                continue
            envs = [{**(environment or {}), "extra": extra} for extra in ("", *dist.extras)]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            other = dists.get(canonicalize_name(req.name))
            if other is None:
                continue
            if not req.specifier.contains(base_version(other.version), prereleases=True):
                problems.append(f"{name} {dist.version} requires {req.name}{req.specifier}, the set has "
                                f"{req.name} {other.version}")
    return problems


def base_version(version: str) -> str:
    """`2.13.0+cu130` -> `2.13.0` (pre- and post-release parts kept): a local build tag is the same release."""
    return Version(version).public


def check_set(dists: Mapping[str, Dist], pins: CiPins) -> list[str]:
    """Problems of a resolved [gpu] set: missing packages, broken requirements, versions CI does not test."""
    problems = [f"{name} is not in the set (the [gpu] extra lists it or needs it)"
                for name in REQUIRED if name not in dists]
    problems += requirement_conflicts(dists)
    if "vllm" in dists and dists["vllm"].version != pins.vllm:
        problems.append(f"vllm {dists['vllm'].version} is not the {pins.vllm} that .ci/vllm_cpu.sh tests on CPU "
                        "(VLLM_VERSION): move both together")
    if "torch" in dists and base_version(dists["torch"].version) != pins.torch:
        problems.append(f"torch {dists['torch'].version} is not the {pins.torch} that .ci/run installs: the CPU "
                        "suite would test another torch than the GPU set runs")
    tf = dists.get("transformers")
    if tf is not None and not pins.transformers.contains(base_version(tf.version), prereleases=True):
        problems.append(f"transformers {tf.version} is outside {pins.transformers}, the range .ci/vllm_cpu.sh "
                        "runs the vllm tests with (TRANSFORMERS_SPEC)")
    return problems


def key_versions(dists: Mapping[str, Dist], names: Iterable[str] = KEY) -> list[str]:
    """`name version` lines of the key packages present, in KEY order."""
    return [f"{name} {dists[name].version}" for name in names if name in dists]


def conflict_lines(pip_output: str) -> list[str]:
    """The lines of pip's output that say why it could not resolve (its ERROR lines and the conflict block)."""
    lines = pip_output.splitlines()
    out = [ln.strip() for ln in lines if ln.startswith("ERROR:")]
    for i, ln in enumerate(lines):
        if ln.strip().startswith("The conflict is caused by"):
            for nxt in lines[i + 1:]:
                if not nxt.strip():
                    break
                out.append(nxt.strip())
    return out


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("report", "installed", "conflict"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "conflict":
        text = Path(argv[1]).read_text(errors="replace")
        lines = conflict_lines(text) or ["(pip printed no conflict block; see the log: " + argv[1] + ")"]
        print("\n".join(lines))
        return 0
    dists = dists_from_report(json.loads(Path(argv[1]).read_text())) if argv[0] == "report" else dists_installed()
    for line in key_versions(dists):
        print(line)
    problems = check_set(dists, read_ci_pins())
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
