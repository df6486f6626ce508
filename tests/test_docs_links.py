"""Every relative link in the docs points at something that exists: README.md, docs/*.md and
examples/*/README.md link each other by path and by heading (`file.md#anchor`, `#anchor`), and
a moved section or renamed heading must not leave a reader at a dead end.

Parsed with markdown-it-py (CommonMark, tables on) rather than regexes, so links in code spans
and fenced blocks, and `#` lines inside code, are not mistaken for links or headings.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
PARSER = MarkdownIt("commonmark").enable("table")


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md")),
            *sorted((root / "examples").glob("*/README.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: lowercase, punctuation dropped (letters, digits,
    `-` and `_` kept), each space a `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _inline_text(token) -> str:
    # A heading's anchor is made from its rendered text: `code` keeps its content, links their text.
    return "".join(child.content for child in token.children or ()
                   if child.type in ("text", "code_inline"))


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a file's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    tokens = PARSER.parse(path.read_text())
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type != "heading_open":
            continue
        base = slug(_inline_text(inline))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    def walk(tokens):
        for token in tokens:
            if token.type == "link_open":
                yield token.attrs["href"]
            yield from walk(token.children or ())
    return list(walk(PARSER.parse(path.read_text())))


def broken_links(path: Path) -> list[str]:
    """One line per relative link of `path` that points at no file, or at no heading of it."""
    problems = []
    for href in links(path):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc:
            continue
        target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
        if not target.exists():
            problems.append(f"{path.relative_to(ROOT)}: {href}: no such file")
        elif parts.fragment and (target.suffix != ".md"
                                 or unquote(parts.fragment) not in anchors(target)):
            problems.append(f"{path.relative_to(ROOT)}: {href}: no heading "
                            f"#{parts.fragment} in {target.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_exists(path):
    assert broken_links(path) == []


def test_the_readme_links_the_reference_it_moved_out():
    """README keeps a summary and a link for each topic moved to docs/, never a copy."""
    linked = {urlsplit(href).path for href in links(ROOT / "README.md")}
    moved = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    assert [doc for doc in moved if doc not in linked] == []


def test_a_broken_link_or_anchor_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "host.md").write_text(
        "# The host\n\n## Debian release\n\n```sh\n# not a heading\n```\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "## Component library (`jamjam_infra`)\n\n"
        "[ok](docs/host.md#debian-release) [ok](#component-library-jamjam_infra) "
        "[ok](docs/host.md) [web](https://example.com/x#y) `[code](missing.md)`\n\n"
        "[gone](docs/hardening.md) [bad anchor](docs/host.md#firewall) "
        "[code heading](docs/host.md#not-a-heading) [self](#quick-start)\n")
    assert broken_links(readme) == [
        "README.md: docs/hardening.md: no such file",
        "README.md: docs/host.md#firewall: no heading #firewall in docs/host.md",
        "README.md: docs/host.md#not-a-heading: no heading #not-a-heading in docs/host.md",
        "README.md: #quick-start: no heading #quick-start in README.md",
    ]
