"""Start-up: ``import hmmtune`` and the light CLI commands load no heavy package (issue 11,
item 4). Each check runs in a fresh interpreter, so nothing imported by the test session
leaks in. Timing lives in bench/bench_startup.py, not here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "pyro", "sympy", "scipy", "matplotlib", "flint", "networkx", "numpy")


def _loaded_after(code: str) -> list[str]:
    """Heavy top-level packages present in ``sys.modules`` after running ``code``."""
    probe = code + f"\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_hmmtune_loads_no_heavy_package():
    assert _loaded_after("import hmmtune") == []


@pytest.mark.parametrize("argv", [["--help"], ["examples"], ["examples", "full_rank"], ["--version"]])
def test_light_commands_load_no_heavy_package(argv):
    code = (
        "import contextlib, io\nfrom hmmtune.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass"
    )
    assert _loaded_after(code) == []


def test_public_names_still_import():
    """The lazy exports resolve to the same objects as the submodules' names."""
    import hmmtune
    import hmmtune.models as models
    import hmmtune.oracle as oracle

    assert hmmtune.HMM is models.HMM and hmmtune.OracleMLM is oracle.OracleMLM
    for name in hmmtune.__all__:
        assert getattr(hmmtune, name) is not None
    assert set(hmmtune.__all__) <= set(dir(hmmtune))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hmmtune.nope  # noqa: B018


def test_subpackages_reachable_as_attributes():
    code = "import hmmtune\nassert hmmtune.models.HMM is hmmtune.HMM\nassert callable(hmmtune.analysis.check)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_task_free_check_imports_neither_torch_nor_the_lp_solver_nor_plots():
    """A task-free check of a small HMM reads ranks and the graph: numpy, flint, networkx and
    sympy (the file's exact entries). torch (over a second to import), scipy, pyro and
    matplotlib stay out."""
    code = (
        "import contextlib, io\nfrom hmmtune.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['check', '--example', 'full_rank']) == 0"
    )
    loaded = _loaded_after(code)
    assert not {"torch", "scipy", "pyro", "matplotlib"} & set(loaded), loaded
