"""The docs' formulas render: every $..$ and $$..$$ of the Markdown pages goes through the
site's own copy of KaTeX (docs/javascripts/katex, served by the site, no CDN) with
throwOnError, in node. Skipped where node is not installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
KATEX = DOCS / "javascripts" / "katex" / "katex.min.js"

_CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.S | re.M)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$(?!\$)")


def formulas(text: str) -> list[tuple[str, bool]]:
    text = _CODE.sub("", text)
    out = [(m.group(1).strip(), True) for m in _DISPLAY.finditer(text)]
    text = _DISPLAY.sub("", text)
    out += [(m.group(1), False) for m in _INLINE.finditer(text)]
    return out


def test_the_site_serves_its_own_katex():
    config = (DOCS.parent / "mkdocs.yml").read_text()
    assert "javascripts/katex/katex.min.js" in config and "cdn" not in config.lower()
    assert KATEX.exists() and (DOCS / "javascripts" / "katex" / "katex.min.css").exists()
    assert len(list((DOCS / "javascripts" / "katex" / "fonts").glob("*.woff2"))) >= 19


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_every_formula_of_the_theory_page_renders_with_katex(tmp_path):
    items = formulas((DOCS / "theory.md").read_text(encoding="utf-8"))
    assert len(items) > 100
    script = tmp_path / "render.js"
    script.write_text(
        f"const katex = require({json.dumps(str(KATEX))});\n"
        "const items = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "const bad = [];\n"
        "for (const [tex, display] of items) {\n"
        "  try { katex.renderToString(tex, {displayMode: display, throwOnError: true}); }\n"
        "  catch (e) { bad.push(tex + ' : ' + e.message); }\n"
        "}\n"
        "process.stdout.write(JSON.stringify(bad));\n"
    )
    res = subprocess.run(["node", str(script)], input=json.dumps(items), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []
