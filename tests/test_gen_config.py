"""Pulumi.yaml's config: block and README's configuration reference of every project are what
its schema rows generate (python -m tools.gen_config), and a changed row makes them stale."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tools import gen_config
from tools.render import ROOT, load_project


def test_every_project_declares_what_its_rows_generate():
    result = subprocess.run([sys.executable, "-m", "tools.gen_config", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_every_project_under_examples_is_covered():
    covered = {path.parent for path in gen_config.wanted() if path.name == "Pulumi.yaml"}
    assert covered == {ROOT, *(p.parent for p in (ROOT / "examples").glob("*/Pulumi.yaml"))}


def test_a_changed_row_shows_as_stale(monkeypatch):
    import settings
    from jamjam_infra.schema import Setting, text
    row = Setting("motd", text, "hello", "A greeting no stack sets.", default="hi")
    monkeypatch.setattr(settings, "TOP_LEVEL", settings.TOP_LEVEL + (row,))
    monkeypatch.setattr(gen_config, "rows_of",
                        lambda d: ("jamjam", settings.TOP_LEVEL, ROOT / "settings.py")
                        if d == ROOT else _rows_of(d))
    files = gen_config.wanted()
    declared = yaml.safe_load(files[ROOT / "Pulumi.yaml"])["config"]
    assert declared["jamjam:motd"] == {"type": "string", "description": "A greeting no stack sets.",
                                       "default": "hi"}
    assert "| `jamjam:motd` | string | `hi` | A greeting no stack sets. |" in files[ROOT / "README.md"]
    assert files[ROOT / "Pulumi.yaml"] != (ROOT / "Pulumi.yaml").read_text()


_rows_of = gen_config.rows_of


def test_the_generated_block_is_what_the_render_reads_as_defaults():
    for project_dir in gen_config.projects():
        namespace, rows, _ = gen_config.rows_of(project_dir)
        declared = load_project(project_dir).config
        assert set(declared) == {f"{namespace}:{row.key}" for row in rows}, project_dir
