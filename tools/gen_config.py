"""Write every project's config declarations from its schema rows: the ``config:`` block of its
Pulumi.yaml and the configuration reference in its README (between the marker lines below).

    python -m tools.gen_config           # rewrite what is stale, name each file written
    python -m tools.gen_config --check   # write nothing; exit 1 naming each stale file

A project is jamjam (the repository root) or a directory under examples/ with a Pulumi.yaml;
its rows are ``TOP_LEVEL`` in the one module of the directory that assigns it (settings.py for
jamjam, <name>.py for an example), so a new project needs no entry here.
tests/test_gen_config.py runs ``--check``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
from pathlib import Path
import yaml

from jamjam_infra.schema import pulumi_yaml_config, reference_markdown

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- BEGIN generated: configuration reference -->"
END = "<!-- END generated: configuration reference -->"
PULUMI_YAML_HEAD = (
    "# Every key of this project, generated from its schema rows by `python -m tools.gen_config`\n"
    "# (tests/test_gen_config.py fails when this block is stale): `pulumi config` describes them\n"
    "# and the CLI type-checks each stack's values before the program runs. A key without a\n"
    "# default must be set in every stack. The CLI applies a default only to a key the stack\n"
    "# does not set, as a whole value; the reader fills a map's missing fields with the same\n"
    "# per-field defaults. An optional secret declares an empty default and no `secret: true`\n"
    "# (the CLI would reject the empty default as unencrypted); the reader refuses plaintext.\n")


def projects() -> list[Path]:
    return [ROOT, *sorted(p.parent for p in (ROOT / "examples").glob("*/Pulumi.yaml"))]


def _rows_module(project_dir: Path) -> Path:
    found = []
    for path in sorted(project_dir.glob("*.py")):
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else \
                getattr(node, "targets", [])
            if any(isinstance(t, ast.Name) and t.id == "TOP_LEVEL" for t in targets):
                found.append(path)
    if len(found) != 1:
        raise SystemExit(f"{project_dir}: {len(found)} modules assign TOP_LEVEL (the project's "
                         "config rows); exactly one must")
    return found[0]


def rows_of(project_dir: Path) -> tuple[str, tuple, Path]:
    """(namespace, rows, the module declaring them) of a project."""
    namespace = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"]
    module_path = _rows_module(project_dir)
    added = str(project_dir) not in sys.path
    if added:
        sys.path.insert(0, str(project_dir))
    try:
        spec = importlib.util.spec_from_file_location(
            f"_gen_config_{namespace.replace('-', '_')}", module_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while building
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        if added:
            sys.path.remove(str(project_dir))
    return namespace, module.TOP_LEVEL, module_path


def pulumi_yaml(project_dir: Path, namespace: str, rows: tuple) -> str:
    text = (project_dir / "Pulumi.yaml").read_text()
    lines = text.splitlines(keepends=True)
    head = []
    for line in lines:
        if line.startswith("config:") or line == PULUMI_YAML_HEAD.splitlines(True)[0]:
            break
        head.append(line)
    # Comments that introduced an older hand-written block stay out: the generated head says it.
    while head and head[-1].startswith("#"):
        head.pop()
    block = yaml.safe_dump({"config": pulumi_yaml_config(namespace, rows)}, sort_keys=False,
                           width=1000, allow_unicode=True)
    return "".join(head) + PULUMI_YAML_HEAD + block


def reference(project_dir: Path, namespace: str, rows: tuple, module: Path) -> str:
    where = module.relative_to(project_dir)
    return (f"All keys are in the `{namespace}:` namespace, declared once as rows in "
            f"`{where}` (`TOP_LEVEL`, with the rows every project shares from "
            "`jamjam_infra.schema`) and generated here by `python -m tools.gen_config`. Every "
            "key is checked before any resource is registered; an unknown key is refused, "
            "naming the closest known one.\n\n" + reference_markdown(namespace, rows))


def readme(project_dir: Path, text: str) -> str:
    path = project_dir / "README.md"
    current = path.read_text() if path.exists() else ""
    if BEGIN not in current or END not in current:
        raise SystemExit(f"{path}: needs the lines {BEGIN} and {END} where the configuration "
                         "reference goes")
    start = current.index(BEGIN) + len(BEGIN)
    return current[:start] + "\n" + text + current[current.index(END):]


def wanted() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for project_dir in projects():
        namespace, rows, module = rows_of(project_dir)
        files[project_dir / "Pulumi.yaml"] = pulumi_yaml(project_dir, namespace, rows)
        files[project_dir / "README.md"] = readme(project_dir,
                                                  reference(project_dir, namespace, rows, module))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming each stale file")
    args = parser.parse_args(argv)
    files = wanted()
    stale = [path for path, text in files.items() if path.read_text() != text]
    for path in stale:
        shown = path.relative_to(ROOT)
        if args.check:
            print(f"{shown}: stale; fix: python -m tools.gen_config", file=sys.stderr)
        else:
            path.write_text(files[path])
            print(f"wrote {shown} ({len(files[path].splitlines())} lines)")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
