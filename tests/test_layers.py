"""Layers depend one way (issue 16 point 4), read from the source with `ast`, importing nothing.

Three rules over every .py file of the repository:

- no import cycle among the repository's own modules; an import inside a function counts, since
  it only defers the cycle to the first call and still ties the two modules together;
- the deploy path (`__main__.py`, `jamjam_app.py`, `settings.py`, `components/`, `examples/`)
  imports nothing from `tools`, `rehearsal`, `bench` or `tests`, so `pulumi up` runs with only
  the library and the SDKs installed;
- no module reaches a `_private` name of another repository module, and only the offline render
  and the compat modules reach the Pulumi SDKs' private internals, so an SDK upgrade or a
  refactor of one module breaks one known place.

A module whose name ends in `_compat` is the one gateway to an SDK's internals for its package
(STYLE.md): the underscore says what it wraps, it exists to be imported, so importing the
module itself is allowed; its own `_names` stay private like any other.

A private module (`jamjam_infra._remote`) is internal to its package: its public names are what
its siblings share, and the tests of that package may use them too; other packages may not
(a private *name* stays private to its module, tests included).
"""

from __future__ import annotations

import ast
import importlib.util
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Where each import root's source lives (pyproject.toml installs components/ as jamjam_infra;
# the policy pack puts policies/ on sys.path).
PACKAGE_DIRS = {"jamjam_infra": ROOT / "components", "jamjam_policies": ROOT / "policies" / "jamjam_policies"}
DEPLOY_PATH = ("__main__", "jamjam_app", "settings", "jamjam_infra")  # and every example's modules
NOT_ON_DEPLOY_PATH = ("tools", "rehearsal", "bench", "tests")
# The offline render drives the SDK's engine-facing internals by design; the compat modules wrap
# the few internals the program, the plan tools and the pack need.
SDK_INTERNALS_ALLOWED = ("tools/render.py", "tools/_pulumi_compat.py", "components/_config_compat.py",
                         "policies/jamjam_policies/_compat.py")
SKIPPED_DIRS = {".venv", "venv", "node_modules", "__pycache__", "build", "dist"}


@dataclass(frozen=True)
class Use:
    """One reference from a module to another module or to a name in it."""

    target: str        # dotted module path (repo module or SDK module)
    name: str | None   # the attribute of `target` used, None for the module itself
    line: int


def _python_files() -> list[Path]:
    files = []
    # os.walk, pruned: rglob would walk the whole .venv before a filter could drop it.
    for directory, subdirs, names in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs
                      if d not in SKIPPED_DIRS and not d.startswith(".") and not d.endswith(".egg-info")]
        files += [Path(directory) / name for name in names if name.endswith(".py")]
    return sorted(files)


def module_name(path: Path) -> str:
    """The name a file is imported by; an example's modules are named after their folder, since
    each example runs with its own folder on sys.path (`examples/r-stream/rstream`)."""
    rel = path.relative_to(ROOT)
    for package, directory in PACKAGE_DIRS.items():
        if path.is_relative_to(directory):
            inner = path.relative_to(directory).with_suffix("").parts
            parts = (package, *inner)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    if rel.parts[0] in ("examples", "policies"):
        return "/".join(rel.with_suffix("").parts)
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {module_name(path): path for path in _python_files()}


def _is_package(module: str) -> bool:
    return _modules()[module].name == "__init__.py"


def _resolve(importer: str, dotted: str) -> str | None:
    """The repo module `dotted` names when imported from `importer`, or None if not ours."""
    modules = _modules()
    if "/" in importer:
        local = importer.rsplit("/", 1)[0] + "/" + dotted
        if local in modules:
            return local
    if dotted in modules:
        return dotted
    # A namespace package (tests/, no __init__.py) is ours if any module sits under it.
    if any(name.startswith(dotted + ".") for name in modules):
        return dotted
    return None


def _relative_base(importer: str, level: int) -> str:
    package = importer if importer in _modules() and _is_package(importer) else importer.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return package


@cache
def _uses(module: str) -> tuple[Use, ...]:
    """Every import and every attribute read through an imported module's alias, at any depth."""
    tree = ast.parse(_modules()[module].read_text(), filename=str(_modules()[module]))
    uses: list[Use] = []
    aliases: dict[str, str] = {}   # local name -> dotted module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                uses.append(Use(alias.name, None, node.lineno))
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = _relative_base(module, node.level)
                base = f"{prefix}.{base}" if base else prefix
            for alias in node.names:
                if alias.name == "*":
                    uses.append(Use(base, None, node.lineno))
                    continue
                submodule = f"{base}.{alias.name}"
                if _resolve(module, submodule) or _sdk_module_exists(submodule):
                    uses.append(Use(submodule, None, node.lineno))
                    aliases[alias.asname or alias.name] = submodule
                else:
                    uses.append(Use(base, alias.name, node.lineno))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain = []
            current: ast.expr = node
            while isinstance(current, ast.Attribute):
                chain.append(current.attr)
                current = current.value
            if isinstance(current, ast.Name) and current.id in aliases:
                uses.append(Use(".".join([aliases[current.id], *reversed(chain[1:])]), chain[0], node.lineno))
    return tuple(uses)


def _top(module: str) -> str:
    return module.split("/")[0] if "/" in module else module.split(".")[0]


def _private(segment: str) -> bool:
    return segment.startswith("_") and not (segment.startswith("__") and segment.endswith("__"))


@cache
def _sdk_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package) if package.startswith("pulumi") else None
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def _sdk_module_exists(dotted: str) -> bool:
    parts = dotted.split(".")
    directory = _sdk_dir(parts[0])
    if directory is None:
        return False
    path = directory.joinpath(*parts[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@cache
def _sdk_public(package: str) -> frozenset[str] | None:
    """The names an SDK package lists in `__all__` (None when it lists none)."""
    parts = package.split(".")
    directory = _sdk_dir(parts[0])
    init = directory.joinpath(*parts[1:], "__init__.py") if directory else None
    if init is None or not init.is_file():
        return None
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return frozenset(ast.literal_eval(node.value))
    return None


def sdk_internal(use: Use) -> str | None:
    """The part of a use that reaches past a Pulumi SDK's public surface, or None: a `_name`
    anywhere in the path or, in `pulumi` itself (which lists its API in `__all__`), a name its
    package does not export."""
    segments = use.target.split(".") + ([use.name] if use.name else [])
    if not segments[0].startswith("pulumi"):
        return None
    for depth, segment in enumerate(segments):
        if _private(segment):
            return ".".join(segments[: depth + 1])
    if segments[0] != "pulumi":
        return None
    for depth in range(1, len(segments)):
        exported = _sdk_public(".".join(segments[:depth]))
        if exported is None:
            return None
        if segments[depth] not in exported:
            return ".".join(segments[: depth + 1])
        if not _sdk_module_exists(".".join(segments[: depth + 1])):
            return None
    return None


@cache
def import_graph() -> dict[str, dict[str, int]]:
    """Repo module -> {repo module it imports: first line}."""
    graph: dict[str, dict[str, int]] = {}
    for module in _modules():
        edges: dict[str, int] = {}
        for use in _uses(module):
            target = _resolve(module, use.target)
            if target and target != module and target in _modules():
                edges.setdefault(target, use.line)
        graph[module] = edges
    return graph


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm,
    iterative so a deep chain cannot hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def _where(module: str, line: int) -> str:
    return f"{_modules()[module].relative_to(ROOT)}:{line}"


def private_uses() -> list[str]:
    """Each place a module reads another repo module's `_name`, a private module of another
    package, or an SDK internal outside the files allowed to."""
    found: dict[tuple[str, str], str] = {}   # (module, what) -> first place, one line each
    for module, path in _modules().items():
        rel = path.relative_to(ROOT).as_posix()
        for use in sorted(_uses(module), key=lambda use: use.line):
            target = _resolve(module, use.target)
            if target is None:
                internal = sdk_internal(use)
                if internal and rel not in SDK_INTERNALS_ALLOWED:
                    found.setdefault((module, f"SDK internal {internal}"), _where(module, use.line))
                continue
            if use.name and _private(use.name) and target != module:
                found.setdefault((module, f"{target}.{use.name}"), _where(module, use.line))
            leaf = target.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
            if (_private(leaf) and not leaf.endswith("_compat") and _top(target) != _top(module)
                    and _top(module) != "tests"):
                found.setdefault((module, f"private module {target}"), _where(module, use.line))
    return sorted(f"{where}: {what}" for (_, what), where in found.items())


def deploy_path_violations(graph: dict[str, dict[str, int]]) -> list[str]:
    found = []
    for module, edges in graph.items():
        if _top(module) not in DEPLOY_PATH and _top(module) != "examples":
            continue
        for target, line in edges.items():
            if _top(target) in NOT_ON_DEPLOY_PATH:
                found.append(f"{_where(module, line)}: imports {target}")
    return sorted(found)


def test_the_scan_sees_the_repository_modules():
    # Guards the rules below against passing because the walk found nothing or misnamed it.
    modules = _modules()
    for expected in ("__main__", "settings", "jamjam_infra.container", "jamjam_policies._props",
                     "tools.plan", "rehearsal.apply", "examples/r-stream/rstream"):
        assert expected in modules, f"{expected} not found among {sorted(modules)[:8]} ..."
    graph = import_graph()
    assert "jamjam_infra.container" in graph["jamjam_infra.host"]
    assert "examples/r-stream/rstream" in graph["examples/r-stream/__main__"]


def test_no_import_cycles():
    graph = import_graph()
    cycles = import_cycles(graph)
    described = []
    for component in cycles:
        members = set(component)
        edges = [f"{_where(a, line)} -> {b}" for a in component for b, line in graph[a].items() if b in members]
        described.append("cycle among " + ", ".join(component) + ": " + "; ".join(edges))
    assert not cycles, "\n".join(described)


def test_deploy_path_imports_no_tooling():
    violations = deploy_path_violations(import_graph())
    assert not violations, ("the deploy path must not import tools/, rehearsal/, bench/ or tests/:\n"
                            + "\n".join(violations))


def test_no_private_names_across_modules():
    found = private_uses()
    assert not found, ("private names reached from another module (make the name public in the "
                       "module that owns it, or keep its use inside that module):\n" + "\n".join(found))
