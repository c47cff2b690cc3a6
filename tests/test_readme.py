"""The README as a newcomer reads it: two commands, the CPU tip before them, its code runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(m.start(), m.group(1)) for m in re.finditer(rf"^```{lang}\n(.*?)^```$", text, re.S | re.M)]


def test_exactly_two_commands_with_the_cpu_tip_before_the_first():
    text = README.read_text(encoding="utf-8")
    bash = _blocks("bash")
    assert len(bash) == 2
    assert [len(code.strip().splitlines()) for _, code in bash] == [1, 1]
    assert bash[0][1].strip() == "pip install . && hmmtune check --example prompt"
    assert bash[1][1].strip() == 'pip install -e ".[test]" && python -m pytest'
    tip = text.index("download.pytorch.org/whl/cpu")
    assert tip < bash[0][0], "the CPU-torch tip must come before the first command"


def test_readme_says_how_to_serve_the_docs():
    text = README.read_text(encoding="utf-8")
    assert 'pip install ".[docs]"' in text and "mkdocs serve" in text
    assert "docs/theory.md" in text and "LICENSE" in text


def test_first_look_runs_and_its_shape_comments_are_true():
    (start, code), = _blocks("python")
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)  # the README's own block, nothing from a file we do not ship
    checked = 0
    for line in code.splitlines():
        m = re.match(r"^(\S.*?)\s*#\s*\(([\d, ]+)\)", line)
        if not m or "=" in m.group(1).split("(")[0]:
            continue
        shape = tuple(int(v) for v in m.group(2).replace(" ", "").strip(",").split(","))
        value = eval(m.group(1), namespace)
        assert tuple(value.shape) == shape, line
        checked += 1
    assert checked == 4
