"""What a rendered stack was configured with, and copies of a project whose stack files a test
may edit.

Tests assert SPEC's facts as they are; a value SPEC leaves open (a memory limit, an image pin,
a schedule) is asserted against the config the render used, so changing it in a stack file
needs no test edit (issue 16 point 6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import yaml

from tools.render import ROOT, engine_config, load_project

_UNSET = object()


def configured(stack: str, path: str, default: Any = None, *, project_dir: Path | str = ROOT,
               overrides: Mapping[str, Any] | None = None) -> Any:
    """The value at ``path`` (``containers.echo.memoryMb``, ``images``) in the config the
    engine hands ``stack``'s program (its stack file, then ``overrides``, the offline
    stand-ins and Pulumi.yaml's defaults, as :func:`tools.render.render` applies them), or
    ``default`` where nothing sets it."""
    project = load_project(project_dir)
    config, _, _ = engine_config(stack, overrides, project=project)
    top, *fields = path.split(".")
    raw = config.get(f"{project.name}:{top}")
    if raw is None:
        return default
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # plain text, as the engine hands strings over
    for name in fields:
        if not isinstance(value, Mapping) or value.get(name, _UNSET) in (_UNSET, None):
            return default
        value = value[name]
    return value


# What a copy keeps as its own files; everything else links back to the project.
_OWN = ("offline.yaml",)
_LEFT_OUT = {".git", ".venv", ".pytest_cache", "__pycache__"}


def project_copy(project_dir: Path, into: Path) -> Path:
    """``project_dir`` as a new project directory ``into``: its stack files
    (Pulumi.<stack>.yaml) and offline.yaml copied, so a test can edit them; the program,
    Pulumi.yaml and the rest linked, so it is the same program."""
    into.mkdir(parents=True)
    for entry in Path(project_dir).iterdir():
        if entry.name in _LEFT_OUT:
            continue
        stack_file = entry.name.startswith("Pulumi.") and entry.name != "Pulumi.yaml"
        if stack_file or entry.name in _OWN:
            shutil.copy(entry, into / entry.name)
        else:
            (into / entry.name).symlink_to(entry.resolve())
    return into


def edit_stack(project_dir: Path, stack: str, changes: Mapping[str, Any]) -> None:
    """Set ``changes`` (``key`` or ``section.field`` -> value, in the project's namespace) in
    ``project_dir``'s Pulumi.<stack>.yaml, as ``pulumi config set [--path]`` would."""
    path = Path(project_dir) / f"Pulumi.{stack}.yaml"
    namespace = load_project(project_dir).name
    document = yaml.safe_load(path.read_text()) or {}
    config = document.setdefault("config", {})
    for key, value in changes.items():
        top, *fields = key.split(".")
        if not fields:
            config[f"{namespace}:{top}"] = value
            continue
        node = config.setdefault(f"{namespace}:{top}", {})
        for name in fields[:-1]:
            node = node.setdefault(name, {})
        node[fields[-1]] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def derive_stack(project_dir: Path, base: str, stack: str, changes: Mapping[str, Any]) -> None:
    """A new stack ``stack`` in ``project_dir``: ``base``'s stack file and offline stand-ins,
    with ``changes`` applied (see :func:`edit_stack`)."""
    project_dir = Path(project_dir)
    shutil.copy(project_dir / f"Pulumi.{base}.yaml", project_dir / f"Pulumi.{stack}.yaml")
    edit_stack(project_dir, stack, changes)
    offline = project_dir / "offline.yaml"
    if offline.exists():
        document = yaml.safe_load(offline.read_text()) or {}
        for table in ("standIns", "secretStandIns"):
            if base in (document.get(table) or {}):
                document[table][stack] = dict(document[table][base])
        offline.write_text(yaml.safe_dump(document, sort_keys=False))
