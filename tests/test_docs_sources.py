"""Every table of measured numbers in docs/ names the command and JSON it comes from.

The rule (issue 15; the docs convention of the developers' guide):

* A *table* is a run of consecutive lines starting with ``|`` whose second line is a
  separator (``|---|``). Its *data cells* are the cells of the rows after the separator.
* A table is *measured* when some data cell holds a number outside inline code: a digit
  run such as ``0.51 s``, ``93.8%``, ``241x``, ``5/5`` or ``1e-6``. Numbers inside backticks
  (code, option names, shapes) do not count.
* A measured table needs, in the same section (the lines since the last Markdown heading)
  and before the table, one of:

  - ``Source: `python bench/<script>.py <args>` -> `docs/figures/<name>.json` `` where the
    script and the JSON file exist in the repository (the JSON is what the command wrote;
    text after it may name the machine, e.g. a GPU run);
  - ``Source: the paper (published figure)`` for numbers copied from the paper;
  - a line containing ``<!-- not measured: <reason> -->`` for tables whose numbers are
    not measurements (parameters, defaults, exit codes, shapes), which the reason states.

Sentences of measured numbers follow the same convention but are not checked here: only
tables can be told apart from prose mechanically.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

SOURCE = re.compile(r"^\s*Source:\s*`python (bench/[\w./-]+\.py)[^`]*`\s*->\s*`(docs/figures/[\w./-]+\.json)`")
PAPER = re.compile(r"^\s*Source:\s*the paper \(published figure\)")
NOT_MEASURED = re.compile(r"<!--\s*not measured:\s*\S.*-->")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
NUMBER = re.compile(r"\d")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _numeric(cell: str) -> bool:
    return bool(NUMBER.search(re.sub(r"`[^`]*`", "", cell)))


def tables(path: Path):
    """Yield (line number, section lines before the table, rows) for each table."""
    lines = path.read_text().splitlines()
    section_start = 0
    in_code = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_code = not in_code
        if not in_code and HEADING.match(line):
            section_start = i
        if not in_code and line.lstrip().startswith("|") and i + 1 < len(lines) and SEPARATOR.match(lines[i + 1]):
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            yield i + 1, lines[section_start:i], [_cells(r) for r in lines[i + 2 : j]]
            i = j
            continue
        i += 1


def problems(path: Path, root: Path = ROOT) -> list[str]:
    """The measured tables of ``path`` that break the rule, as ``file:line: why``."""
    out = []
    for lineno, before, rows in tables(path):
        if not any(_numeric(c) for row in rows for c in row):
            continue
        where = f"{path.relative_to(root)}:{lineno}"
        ok, errs = False, []
        for line in before:
            m = SOURCE.match(line)
            if m:
                script, fig = root / m.group(1), root / m.group(2)
                if not script.is_file():
                    errs.append(f"{where}: the Source script {m.group(1)} does not exist")
                elif not fig.is_file():
                    errs.append(f"{where}: the Source JSON {m.group(2)} is not in the repository")
                else:
                    ok = True
            elif PAPER.match(line) or NOT_MEASURED.search(line):
                ok = True
        if not ok:
            out += sorted(set(errs)) or [f"{where}: a table of numbers without a Source line (or a not-measured marker) in its section"]
    return out


PAGES = sorted(DOCS.rglob("*.md"))

#: Pages whose tables name their command but whose JSON has not been produced yet: the
#: runs take longer than this session allowed on a shared machine (a known, reported
#: defect; the lead reruns the named commands on a quiet machine, which makes these pass).
PENDING = {
}


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.xfail(reason=PENDING[p.name], strict=False)) if p.name in PENDING else p for p in PAGES],
    ids=[str(p.relative_to(DOCS)) for p in PAGES],
)
def test_measured_tables_name_their_source(page):
    assert problems(page) == []


def test_the_rule_itself(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text("# A\n\n| a | b |\n|---|---|\n| x | 0.5 s |\n")
    assert problems(bad, tmp_path)
    code_only = tmp_path / "code.md"
    code_only.write_text("# A\n\n| a | b |\n|---|---|\n| `--k 4` | `(m, n)` |\n")
    assert problems(code_only, tmp_path) == []
    marked = tmp_path / "marked.md"
    marked.write_text("# A\n<!-- not measured: defaults -->\n\n| a | b |\n|---|---|\n| k | 4 |\n")
    assert problems(marked, tmp_path) == []
    other_section = tmp_path / "other.md"
    other_section.write_text("# A\nSource: the paper (published figure)\n\n# B\n\n| a |\n|---|\n| 3 |\n")
    assert problems(other_section, tmp_path)
    missing = tmp_path / "missing.md"
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "tolerance_tau.py").write_text("")
    missing.write_text("# A\nSource: `python bench/tolerance_tau.py` -> `docs/figures/no-such.json`\n\n| a |\n|---|\n| 3 |\n")
    assert "not in the repository" in problems(missing, tmp_path)[0]


