"""The house rules that the code's structure must keep (docs/index.md, the house plan):
models never import io, and no module imports a private name from another module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import hmmtune

PACKAGE = Path(hmmtune.__file__).resolve().parent
#: the deprecated aliases of moved modules (they forward to hmmtune.io for one release)
SHIMS = {"models/io.py", "models/expr.py", "models/_deprecated.py"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        parts = ["hmmtune"] + rel[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
            package = parts
        else:
            package = parts[:-1]
        yield rel, ".".join(parts), ".".join(package), ast.parse(path.read_text(), str(path))


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_models_never_import_io():
    """No static import of hmmtune.io anywhere in hmmtune.models (function-local ones
    included), apart from the deprecated aliases, which reach io only by name when used."""
    bad = []
    for rel, _, package, tree in _modules():
        if not rel.startswith("models/") or rel in SHIMS:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(node, package)
                names = [target + "." + a.name for a in node.names]
                if target == "hmmtune.io" or target.startswith("hmmtune.io.") or "hmmtune.io" in names:
                    bad.append(f"{rel}:{node.lineno}")
            elif isinstance(node, ast.Import):
                if any(a.name == "hmmtune.io" or a.name.startswith("hmmtune.io.") for a in node.names):
                    bad.append(f"{rel}:{node.lineno}")
    assert bad == []


def test_using_the_models_does_not_load_io():
    code = (
        "import sys, hmmtune\n"
        "from hmmtune.models import HMM, MemoryHMM, inference, paper_hmm\n"
        "from hmmtune import OracleMLM\n"
        "h = paper_hmm(4, 6, seed=0); x = h.sample(3, 5, seed=1)[0]\n"
        "o = OracleMLM(h); o.mask_prediction(x); o.token_predictions(x); h.loo_posterior(x)\n"
        "m = MemoryHMM([0.5, 0.5], [1.0], [[1.0]], [[[0.5, 0.5]], [[0.25, 0.75]]])\n"
        "OracleMLM(m).mask_prediction([[0, 1]]); m.infer([[0, 1]], ('memory', 'loo_posterior'))\n"
        "print(sorted(k for k in sys.modules if k.startswith('hmmtune.io')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_module_imports_a_private_name_from_another():
    """``from X import _name``, an import of another package's private module
    (``from ..models._checks import ...``) and ``module._name`` on an imported hmmtune
    module are all refused."""
    bad = []
    for rel, modname, package, tree in _modules():
        if rel in SHIMS:
            continue
        aliases = {}  # local name -> hmmtune module it refers to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(node, package)
                if not target.startswith("hmmtune"):
                    continue
                for a in node.names:
                    if _private(a.name):
                        bad.append(f"{rel}:{node.lineno}: from {target} import {a.name}")
                    aliases[a.asname or a.name] = target + "." + a.name
                last = target.rsplit(".", 1)
                if len(last) == 2 and _private(last[1]) and last[0] != package:
                    bad.append(f"{rel}:{node.lineno}: imports the private module {target}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("hmmtune") and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and aliases[node.value.id] != modname
            ):
                bad.append(f"{rel}:{node.lineno}: {node.value.id}.{node.attr}")
    assert sorted(set(bad)) == []
