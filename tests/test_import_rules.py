"""The import rules of builder/, checked on the module graph read from the source files (ast).

- Nothing outside builder/cli imports builder.cli: the command lines sit on top of everything.
- Only builder/virt imports the libvirt and libguestfs bindings, so `he-build seed` and
  `inventory` run on a controller that has neither.
- builder/seed imports nothing of disk, ova, rpm, launch, pipeline, release or virt: seeds are
  rendered on a controller, and the launcher imports the seed, never the other way round.
- builder.model imports nothing of the project: every layer may import it.
- No import cycle between builder modules.

Which imports count: all of them, for every rule. A function-level import is the same
dependency, only paid later (importing lazily is about start-up time, never a permission), and
a cycle through one just moves the failure from import time to the first call. An import under
`if TYPE_CHECKING:` is a dependency of the types mypy checks: a layer that names another
layer's types knows that layer, and a cycle hidden that way is still a cycle. The tree has none
of either today, so no rule needs an exemption. Importing `a.b.c` also runs `a/__init__.py`
and `a/b/__init__.py`: the cycle rule follows those edges too (except into the importer's own
packages, which are already being imported when it runs).

Besides the graph: `he-build --help` and a `he-build seed` run are checked for what they load
(sys.modules in a subprocess): the parsers need none of the heavy machinery, and the seed path
needs PyYAML and pycdlib but no validation framework (the inventory's records check their own
fields), template engine, XML library, process pool or hypervisor binding.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT = "builder"

Kind = Literal["module", "function", "type_checking"]


@dataclass(frozen=True)
class Import:
    """One imported name: `target` is the module of the tree it names when it names one (for
    `from a.b import c`, `a.b.c` if that is a module, else `a.b`), else the name as written."""

    importer: str
    target: str
    path: Path
    line: int
    kind: Kind

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


@dataclass(frozen=True)
class ModuleGraph:
    root: Path
    modules: dict[str, Path]
    imports: tuple[Import, ...]


# ----- reading the tree -----


def read_graph(root: Path) -> ModuleGraph:
    """Every module under root/builder and every import statement in it."""
    modules = {module_name(root, path): path for path in sorted((root / PROJECT).rglob("*.py"))}
    imports = tuple(imp for name, path in modules.items()
                    for imp in imports_of(name, path, modules))
    return ModuleGraph(root, modules, imports)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return [Import(name, target, path, line, kind)
            for target, line, kind in _walk(tree.body, "module", package, modules)]


def _walk(body: Iterable[ast.AST], kind: Kind, package: str,
          modules: dict[str, Path]) -> Iterator[tuple[str, int, Kind]]:
    for node in body:
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno, kind) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield (submodule if submodule in modules else base), node.lineno, kind
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.body, "type_checking" if kind == "module" else kind, package,
                             modules)
            yield from _walk(node.orelse, kind, package, modules)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(ast.iter_child_nodes(node), "function", package, modules)
        else:
            yield from _walk(ast.iter_child_nodes(node), kind, package, modules)


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def within(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


# ----- the rules: each returns its violations, one line each -----

CLI = "builder.cli"
VIRT = "builder.virt"
BINDINGS = ("libvirt", "libvirtmod", "guestfs", "libguestfsmod")
SEED = "builder.seed"
NOT_FOR_SEED = ("builder.disk", "builder.ova", "builder.rpm", "builder.launch", "builder.pipeline",
                "builder.release", "builder.virt")
MODEL = "builder.model"


def cli_on_top(graph: ModuleGraph) -> list[str]:
    return [f"{imp.where(graph.root)}: {imp.importer} imports {imp.target}: nothing outside "
            f"{CLI} may import it" for imp in graph.imports
            if within(imp.target, CLI) and not within(imp.importer, CLI)]


def bindings_in_virt(graph: ModuleGraph) -> list[str]:
    return [f"{imp.where(graph.root)}: {imp.importer} imports {imp.target}: only {VIRT} may "
            "import the libvirt and libguestfs bindings" for imp in graph.imports
            if within(imp.target, *BINDINGS) and not within(imp.importer, VIRT)]


def seed_stays_below(graph: ModuleGraph) -> list[str]:
    return [f"{imp.where(graph.root)}: {imp.importer} imports {imp.target}: {SEED} may not "
            f"import {', '.join(NOT_FOR_SEED)}" for imp in graph.imports
            if within(imp.importer, SEED) and within(imp.target, *NOT_FOR_SEED)]


def model_is_a_leaf(graph: ModuleGraph) -> list[str]:
    return [f"{imp.where(graph.root)}: {MODEL} imports {imp.target}: it may import nothing of "
            "the project" for imp in graph.imports
            if imp.importer == MODEL and within(imp.target, PROJECT)]


def no_cycles(graph: ModuleGraph) -> list[str]:
    edges = runtime_edges(graph)
    return sorted(describe_cycle(graph, edges, component)
                  for component in strongly_connected(graph.modules, edges)
                  if len(component) > 1)


Edges = dict[str, dict[str, Import]]


def runtime_edges(graph: ModuleGraph) -> Edges:
    """module -> module it makes Python import -> the first statement that does."""
    edges: Edges = {name: {} for name in graph.modules}
    for imp in graph.imports:
        for target in _executed(imp, graph.modules):
            edges[imp.importer].setdefault(target, imp)
    return edges


def _executed(imp: Import, modules: dict[str, Path]) -> list[str]:
    """The modules of the tree an import runs: the target and its packages' __init__, minus
    the importer itself and its own packages."""
    parts = imp.target.split(".")
    chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return [name for name in chain if name in modules and name != imp.importer
            and not imp.importer.startswith(name + ".")]


def strongly_connected(nodes: Iterable[str], edges: Edges) -> list[list[str]]:
    """Tarjan's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def describe_cycle(graph: ModuleGraph, edges: Edges, component: Sequence[str]) -> str:
    """One cycle through the component's first module, each step with the line that makes it."""
    members = set(component)
    start = component[0]
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(edges[node]):
            if nxt == start:
                cycle = [*paths[node], start]
                steps = ", ".join(f"{a} -> {b} ({edges[a][b].where(graph.root)}, "
                                  f"{edges[a][b].kind})" for a, b in itertools.pairwise(cycle))
                return f"import cycle: {' -> '.join(cycle)}: {steps}"
            if nxt in members and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start} in {component}")


Rule = Callable[[ModuleGraph], list[str]]
RULES: dict[str, Rule] = {
    "cli_on_top": cli_on_top,
    "bindings_in_virt": bindings_in_virt,
    "seed_stays_below": seed_stays_below,
    "model_is_a_leaf": model_is_a_leaf,
    "no_cycles": no_cycles,
}


# ----- the tree passes every rule -----


@pytest.fixture(scope="module")
def tree() -> ModuleGraph:
    return read_graph(REPO)


def test_the_graph_reads_the_whole_tree(tree: ModuleGraph) -> None:
    """A sanity check, so the rules below cannot pass on an empty or misread graph."""
    assert {"builder.cli.he_build", "builder.seed.master", "builder.virt.hypervisor",
            MODEL} <= set(tree.modules)
    kinds = {imp.kind for imp in tree.imports}
    assert kinds == {"module", "function", "type_checking"}
    targets = {(imp.importer, imp.target) for imp in tree.imports}
    assert ("builder.cli.he_build", "builder.cli.seed") in targets
    assert ("builder.virt.hypervisor", "libvirt") in targets


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_tree_keeps_the_rule(tree: ModuleGraph, rule: str) -> None:
    violations = RULES[rule](tree)
    assert not violations, "\n".join(violations)


# ----- a tree that breaks each rule fails it -----

BROKEN_TREE = {
    "builder/__init__.py": "",
    "builder/errors.py": "class BuilderError(Exception): ...\n",
    # Imports the project (through a relative import).
    "builder/model.py": "from .errors import BuilderError\n",
    "builder/cli/__init__.py": "",
    "builder/cli/handler.py": "from builder.errors import BuilderError\n",
    "builder/cli/he_build.py": "from builder.cli import handler\nfrom builder.seed import render\n",
    "builder/launch/__init__.py": "",
    # Borrows from the command line, at module level.
    "builder/launch/options.py": "from builder.cli.handler import BuilderError\n",
    "builder/disk/__init__.py": "",
    # Imports libvirt, lazily.
    "builder/disk/backend.py": "def connect():\n    import libvirt\n    return libvirt.open()\n",
    "builder/seed/__init__.py": "",
    # Knows the launcher's types, and the pipeline (relative import in a function).
    "builder/seed/render.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from builder.launch.options import BuilderError\n"
        "def render():\n"
        "    from ..pipeline import store\n"
        "    return store\n"
    ),
    "builder/pipeline/__init__.py": "",
    "builder/pipeline/store.py": "",
    # A cycle closed by a function-level import: ova.pack -> rpm.spec -> ova.pack.
    "builder/ova/__init__.py": "",
    "builder/ova/pack.py": "from builder.rpm.spec import render\n",
    "builder/rpm/__init__.py": "",
    "builder/rpm/spec.py": "def render():\n    from builder.ova import pack\n    return pack\n",
    # A cycle through a package's __init__: its re-export runs a module that imports it back.
    "builder/release/__init__.py": "from builder.release.gates import check\n",
    "builder/release/gates.py": "from builder.inventory import load\ndef check(): ...\n",
    "builder/inventory/__init__.py": "",
    "builder/inventory/load.py": "from builder.release.sbom import x\n",
    "builder/release/sbom.py": "x = 1\n",
}

EXPECTED = {
    "cli_on_top": [
        "builder/launch/options.py:1: builder.launch.options imports builder.cli.handler",
    ],
    "bindings_in_virt": [
        "builder/disk/backend.py:2: builder.disk.backend imports libvirt",
    ],
    "seed_stays_below": [
        "builder/seed/render.py:3: builder.seed.render imports builder.launch.options",
        "builder/seed/render.py:5: builder.seed.render imports builder.pipeline.store",
    ],
    "model_is_a_leaf": [
        "builder/model.py:1: builder.model imports builder.errors",
    ],
    "no_cycles": [
        "import cycle: builder.inventory.load -> builder.release -> builder.release.gates -> "
        "builder.inventory.load",
        "import cycle: builder.ova.pack -> builder.rpm.spec -> builder.ova.pack: "
        "builder.ova.pack -> builder.rpm.spec (builder/ova/pack.py:1, module), "
        "builder.rpm.spec -> builder.ova.pack (builder/rpm/spec.py:2, function)",
    ],
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> ModuleGraph:
    root = tmp_path_factory.mktemp("broken")
    for name, text in BROKEN_TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return read_graph(root)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_broken_tree_fails_the_rule(broken: ModuleGraph, rule: str) -> None:
    """Each rule finds exactly the planted violations, whichever way they were written."""
    violations = RULES[rule](broken)
    assert len(violations) == len(EXPECTED[rule]), "\n".join(violations)
    for line, expected in zip(violations, EXPECTED[rule], strict=True):
        assert line.startswith(expected), f"{line}\ndoes not start with\n{expected}"


# ----- what the commands load -----

PROBE = """\
import contextlib, io, json, sys
from builder.cli.he_build import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(sys.argv[2:])
    except SystemExit as exc:
        code = exc.code
with open(sys.argv[1], "w") as out:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, out)
"""
# Needed by no parser: the inventory models, the seed, the build and launch machinery.
HEAVY = ("pydantic", "pydantic_core", "yaml", "jinja2", "lxml", "pycdlib", "pykickstart",
         "libvirt", "guestfs", "multiprocessing", "concurrent", "builder.inventory", "builder.seed",
         "builder.disk", "builder.ova", "builder.rpm", "builder.pipeline", "builder.launch",
         "builder.virt", "builder.release")
# Needed by no seed of a few sites (the inventory's records check their own fields; the runner
# script is fixed text; a pool only for big batches; XML, OVA, RPM and the hypervisor are other
# commands' business).
NOT_FOR_SEEDS = ("pydantic", "pydantic_core", "jinja2", "lxml", "pykickstart", "libvirt",
                 "guestfs", "multiprocessing", "concurrent", "urllib.request", "builder.disk",
                 "builder.ova", "builder.rpm", "builder.pipeline", "builder.launch",
                 "builder.virt", "builder.release")


def loaded_by(tmp_path: Path, *argv: str) -> tuple[int, set[str]]:
    """Run `he-build ARGV` in a fresh interpreter: its exit code and every module it loaded."""
    report = tmp_path / "modules.json"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    subprocess.run([sys.executable, "-c", PROBE, str(report), *argv], cwd=tmp_path, env=env,
                   check=True, timeout=120)
    result = json.loads(report.read_text())
    return result["exit"], set(result["modules"])


def test_help_loads_no_machinery(tmp_path: Path) -> None:
    code, modules = loaded_by(tmp_path, "--help")
    assert code == 0
    assert "builder.cli.seed" in modules and "argparse" in modules
    heavy = sorted(m for m in modules if within(m, *HEAVY))
    assert not heavy, f"he-build --help loaded {', '.join(heavy)}"


def test_a_seed_run_loads_only_the_seed_path(tmp_path: Path) -> None:
    out = tmp_path / "seeds"
    code, modules = loaded_by(tmp_path, "seed", "--all", "--out", str(out),
                              "--inventory", str(REPO / "examples" / "inventory.yaml"))
    assert code == 0
    assert (out / "dc1" / "seed.iso").is_file() and (out / "dc2" / "seed.iso").is_file()
    assert {"yaml", "pycdlib", "builder.inventory.fields", "builder.seed.master"} <= modules
    needless = sorted(m for m in modules if within(m, *NOT_FOR_SEEDS))
    assert not needless, f"he-build seed loaded {', '.join(needless)}"
