"""The project stands on its own: its theory page, citations of it, license and metadata."""

from __future__ import annotations

import re
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THEORY = ROOT / "docs" / "theory.md"
# The old name of the specification, which users never had. Built from pieces so that this
# file does not contain it.
FORBIDDEN = "THEORY" + ".md"
SECTIONS = [
    "Conventions",
    "The perfect masked LM",
    "Prompts",
    "Downstream tasks",
    "Theorem H (head tuning)",
    "Theorem P (prompt tuning)",
    "Reachable prompt supports",
    "Tolerance mode",
    "Memory-augmented HMMs",
    "Theorem M (attention heads)",
    "The paper's experiments",
]


def tracked_files() -> list[Path]:
    """The repository's tracked files (every file but .git, venvs and builds without git)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
        files = [ROOT / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "site", "__pycache__", "results", ".pytest_cache", ".hypothesis"}
        files = [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    return [p for p in files if p.is_file()]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def test_no_mention_of_a_missing_specification():
    files = tracked_files()
    assert any(p.name == "README.md" for p in files)
    bad = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in files
        if (text := _text(p)) is not None
        for i, line in enumerate(text.splitlines(), 1)
        if FORBIDDEN in line
    ]
    assert not bad, f"cite docs/theory.md and one of its sections instead: {bad}"


def theory_headings() -> list[str]:
    return [line[3:].strip() for line in THEORY.read_text(encoding="utf-8").splitlines() if line.startswith("## ")]


def test_theory_page_has_the_cited_sections():
    assert theory_headings() == SECTIONS


_CITE = re.compile(r'docs/theory\.md,((?:\s*"[^"]+",?)+)')
_LINK = re.compile(r"theory\.md#([a-z0-9-]+)")


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def test_citations_of_the_theory_page_resolve():
    """Every `docs/theory.md, "Section"` in code and docs and every theory.md#anchor link
    names a section that exists."""
    sections, anchors = set(theory_headings()), {_slug(t) for t in theory_headings()}
    cited, bad = 0, []
    for p in tracked_files():
        text = _text(p)
        if text is None or p == Path(__file__).resolve():
            continue
        text = re.sub(r"\s*\n\s*(#|\*)?\s*", " ", text)  # citations may wrap across comment lines
        for m in _CITE.finditer(text):
            for title in re.findall(r'"([^"]+)"', m.group(1)):
                cited += 1
                if title not in sections:
                    bad.append(f"{p.relative_to(ROOT)}: {title!r}")
        for a in _LINK.findall(text):
            cited += 1
            if a not in anchors:
                bad.append(f"{p.relative_to(ROOT)}: #{a}")
    assert cited > 50
    assert not bad, bad


def test_theory_page_is_in_the_site_navigation():
    assert "theory.md" in (ROOT / "mkdocs.yml").read_text()


def test_license_file_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "WITHOUT WARRANTY OF ANY KIND" in text


def test_installed_metadata_names_license_authors_urls_classifiers():
    """What `pip show hmmtune` prints comes from this metadata."""
    meta = metadata.metadata("hmmtune")
    assert (meta.get("License-Expression") or meta.get("License")) == "MIT"
    assert "hmmtune developers" in (meta.get("Author") or meta.get("Author-email") or "")
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Source"} <= set(urls)
    classifiers = meta.get_all("Classifier") or []
    assert any(c.startswith("Programming Language :: Python :: 3") for c in classifiers)
    assert any(c.startswith("Topic :: Scientific/Engineering") for c in classifiers)


def test_docs_extra_installs_the_site_tools():
    extras = metadata.metadata("hmmtune").get_all("Provides-Extra") or []
    assert "docs" in extras
    reqs = [r for r in metadata.requires("hmmtune") or [] if 'extra == "docs"' in r]
    names = {re.split(r"[\[<>=; ]", r, maxsplit=1)[0] for r in reqs}
    assert {"mkdocs", "mkdocs-material", "mkdocstrings"} <= names


@pytest.mark.parametrize("title", SECTIONS)
def test_each_section_has_substance(title):
    text = THEORY.read_text(encoding="utf-8")
    body = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    assert len(body.split()) > 60, title
