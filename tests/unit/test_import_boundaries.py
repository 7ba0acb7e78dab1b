"""Import boundaries (DESIGN.md "Layout"): the libraries import neither ray, vllm nor actors; actors import no
driver code.

Two checks, because each misses something the other sees:
- static (AST of every module of the four packages): an import anywhere in a library file, function bodies
  included, is found even if no test ever calls that function; the module-level import graph gives the chain
  (a -> b -> actors.x) of a transitive violation.
- runtime (one fresh interpreter imports every library module, then reads sys.modules): catches what Python
  really loads at import, third-party packages included (a dependency that imports ray), which the static graph
  does not follow. It sees lazy imports only when they run, hence the static check.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sampler", "reward_service", "learner", "actors")
FORBIDDEN_IN_LIBRARIES = ("ray", "vllm", "actors")
# The only learner modules that may import ray or actors: the driver's run setup and step loop, and the entry
# points that start roles (main; evaluate builds an HF engine; recipe_check reads the placement plan). Every
# other module of learner (grpo, policy, config, eval, reporting, sft, report, the rest of driver) is a
# plain library; the layout says so, and this test holds it (the list names the exceptions, not the rule).
LEARNER_MAY_IMPORT_ACTORS = ("learner.driver.loop", "learner.driver.pipeline", "learner.main", "learner.evaluate",
                             "learner.recipe_check")
DRIVER = ("learner.driver", "learner.main")  # the whole driver package and the entry that runs it


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of `packages` under `root`."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported module, line, at import time?) of one file; `at import time` is False inside a function body
    or an `if TYPE_CHECKING:` block. `from a import b` names `a.b` when that is a module of the project."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, eager: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, False)
                continue
            if isinstance(child, ast.If) and _is_type_checking(child):
                visit(child, False)
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, eager) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append((sub if sub in known else base, child.lineno, eager))
            visit(child, eager)

    visit(tree, True)
    return found


def _is_under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]  # importing a.b.c runs a and a.b too


def import_graph(root: Path, packages: tuple[str, ...]) -> tuple[dict[str, list[tuple[str, int, bool]]], dict]:
    files = module_files(root, packages)
    known = set(files)
    return {m: imports_of(m, p, known) for m, p in files.items()}, files


def chain_to(start: str, graph: dict[str, list[tuple[str, int, bool]]], forbidden: tuple[str, ...]) -> list[str]:
    """The shortest chain of import-time imports from `start` to a forbidden module, [] when none."""
    seen, frontier = {start}, [[start]]
    while frontier:
        nxt = []
        for path in frontier:
            for target, line, eager in graph.get(path[-1], []):
                if not eager:
                    continue
                for mod in _with_parents(target):
                    step = [*path[:-1], f"{path[-1]}:{line}", mod]
                    if _is_under(mod, forbidden):
                        return step
                    if mod in graph and mod not in seen:
                        seen.add(mod)
                        nxt.append(step)
        frontier = nxt
    return []


def boundary_violations(root: Path, libraries: list[str], forbidden: tuple[str, ...],
                        graph: dict, files: dict[str, Path]) -> list[str]:
    """One line per violation: a direct import anywhere in the file (lazy ones too), or an import-time chain."""
    problems = []
    for module in libraries:
        for target, line, _ in graph[module]:
            if _is_under(target, forbidden):
                problems.append(f"{files[module].relative_to(root)}:{line}: {module} imports {target}")
        chain = chain_to(module, graph, forbidden)
        if chain and not any(p.startswith(f"{files[module].relative_to(root)}:") for p in problems):
            problems.append(f"{module} imports {chain[-1]} at import time: {' -> '.join(chain)}")
    return problems


GRAPH, FILES = import_graph(ROOT, PACKAGES)
LIBRARIES = sorted(m for m in FILES if _is_under(m, ("sampler", "reward_service", "learner"))
                   and m not in LEARNER_MAY_IMPORT_ACTORS)


def test_the_named_modules_exist() -> None:
    missing = [m for m in [*LEARNER_MAY_IMPORT_ACTORS, *DRIVER] if m not in FILES]
    assert not missing, f"modules named in this test are gone (update the lists): {missing}"
    assert len(LIBRARIES) > 70  # every module of sampler and reward_service and all but five of learner
    assert {"learner.grpo.loss", "learner.policy.model", "learner.config.run", "learner.sft"} <= set(LIBRARIES)


def test_libraries_import_neither_ray_vllm_nor_actors() -> None:
    problems = boundary_violations(ROOT, LIBRARIES, FORBIDDEN_IN_LIBRARIES, GRAPH, FILES)
    assert not problems, "libraries must not import ray, vllm or actors (DESIGN.md Layout):\n" + "\n".join(problems)


def test_actors_import_no_driver_code() -> None:
    actors = sorted(m for m in FILES if _is_under(m, ("actors",)))
    problems = boundary_violations(ROOT, actors, DRIVER, GRAPH, FILES)
    assert not problems, "actors must not import the driver (learner.driver.*, learner.main):\n" + "\n".join(problems)


def test_a_fresh_interpreter_loads_no_ray_vllm_or_actors_with_the_libraries() -> None:
    code = (
        "import importlib, json, sys\n"
        "for m in sys.argv[1:]:\n"
        "    importlib.import_module(m)\n"
        f"print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in {FORBIDDEN_IN_LIBRARIES!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *LIBRARIES], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing the libraries loaded {loaded}"


# the checker itself: a violation in a throwaway package is found, with its line or chain


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("")
    (tmp_path / "lib" / "clean.py").write_text("import math\nfrom . import helper\n")
    (tmp_path / "lib" / "helper.py").write_text("from actors import engine\n")
    (tmp_path / "lib" / "lazy.py").write_text("def f():\n    import ray\n    return ray\n")
    (tmp_path / "lib" / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                "    from actors.engine import X\n")
    (tmp_path / "actors").mkdir()
    (tmp_path / "actors" / "__init__.py").write_text("")
    (tmp_path / "actors" / "engine.py").write_text("X = 1\n")
    return tmp_path


def test_the_checker_finds_direct_lazy_and_transitive_imports(tree: Path) -> None:
    graph, files = import_graph(tree, ("lib", "actors"))
    found = boundary_violations(tree, ["lib.clean", "lib.helper", "lib.lazy", "lib.typed"], FORBIDDEN_IN_LIBRARIES,
                                graph, files)
    assert found == [
        "lib.clean imports actors at import time: lib.clean:2 -> lib.helper:1 -> actors",
        "lib/helper.py:1: lib.helper imports actors.engine",
        "lib/lazy.py:2: lib.lazy imports ray",
        "lib/typed.py:3: lib.typed imports actors.engine",
    ]
