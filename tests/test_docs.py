"""The documentation's code runs: every ```python block of the executable pages.

Executable pages are

- every Markdown page under ``docs/tutorials/`` (new tutorials are picked up by themselves);
- any other page under ``docs/`` that contains the marker line ``<!-- docs-test: run -->``.

The blocks of one page run in order, in one namespace (a later block may use names an
earlier one defined), with a fresh temporary directory as the working directory, so a page
may write files. A block preceded by the line ``<!-- docs-test: skip -->`` is left out (for
code that needs a network, a GPU or a long time). Each block keeps its line numbers in the
page, so a traceback points at the Markdown line that failed.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
RUN_MARKER = "<!-- docs-test: run -->"
SKIP_MARKER = "<!-- docs-test: skip -->"

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?:python|py)(?:[\s{].*)?$")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown text as ``(first line number, code)`` pairs.

    Line numbers count from 1 and point at the block's first code line. Indented blocks
    (inside lists or admonitions) are dedented. Blocks after a skip marker are dropped.
    """
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m.group("indent"), m.group("fence")
        close = re.compile(rf"^{re.escape(indent)}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        if j == len(lines):
            raise ValueError(f"line {i + 1}: code block is not closed")
        previous = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        if previous != SKIP_MARKER:
            blocks.append((i + 2, textwrap.dedent("\n".join(lines[i + 1 : j]))))
        i = j + 1
    return blocks


def page_source(text: str) -> str:
    """All python blocks of a page as one program, each block at its own line numbers."""
    out: list[str] = []
    for first, code in python_blocks(text):
        out.extend([""] * (first - 1 - len(out)))
        out.extend(code.splitlines())
    return "\n".join(out) + "\n"


def executable_pages() -> list[Path]:
    pages = set(DOCS.glob("tutorials/**/*.md"))
    pages |= {p for p in DOCS.rglob("*.md") if RUN_MARKER in p.read_text(encoding="utf-8")}
    return sorted(pages)


PAGES = executable_pages()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_code_runs(page, tmp_path, monkeypatch):
    text = page.read_text(encoding="utf-8")
    source = page_source(text)
    assert python_blocks(text), f"{page.relative_to(DOCS)} is executable but has no ```python block"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__docs__", "__file__": str(page)}
    exec(compile(source, str(page), "exec"), namespace)


def test_tutorials_are_in_the_nav():
    """A tutorial that the site does not list is easy to miss; mkdocs only says so at INFO."""
    config = (DOCS.parent / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [str(p.relative_to(DOCS)) for p in DOCS.glob("tutorials/**/*.md") if str(p.relative_to(DOCS)) not in config]
    assert not missing, f"add these tutorials to the nav of mkdocs.yml: {missing}"


def test_block_extraction():
    text = "\n".join(
        [
            "# Title",  # 1
            "```python",  # 2
            "a = 1",  # 3
            "```",  # 4
            "```bash",  # 5
            "echo no",  # 6
            "```",  # 7
            SKIP_MARKER,  # 8
            "",  # 9
            "```python",  # 10
            "raise SystemExit('skipped')",  # 11
            "```",  # 12
            "1. a list item",  # 13
            "",  # 14
            '    ```python title="x.py"',  # 15
            "    b = a + 1",  # 16
            "    if b:",  # 17
            "        c = b",  # 18
            "    ```",  # 19
            "~~~~py",  # 20
            "```",  # 21: inside a longer tilde fence, so code, not a fence
            "~~~~",  # 22
        ]
    )
    blocks = python_blocks(text)
    assert [first for first, _ in blocks] == [3, 16, 21]
    assert blocks[1][1] == "b = a + 1\nif b:\n    c = b"
    assert blocks[2][1] == "```"
    runnable = text.rsplit("~~~~py", 1)[0]
    source = page_source(runnable)
    assert source.splitlines()[15] == "b = a + 1"  # keeps line 16 of the page
    namespace: dict = {}
    exec(compile(source, "page.md", "exec"), namespace)
    assert namespace["c"] == 2


def test_extraction_error_on_unclosed_block():
    with pytest.raises(ValueError, match="line 2"):
        python_blocks("text\n```python\nx = 1\n")
