"""Smoke test of the benchmark grid (issue 11, item 2): bench/bench_grid.py --quick runs
end to end, its peers agree with hmmtune, and its JSON renders as the docs' table. No
timing assertions (speed is measured by the script, never in tests)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("bench_grid", ROOT / "bench" / "bench_grid.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_grid_runs_and_peers_agree(tmp_path):
    grid = _load()
    out = tmp_path / "grid.json"
    # dynamax (jax) is in the bench extra only and compiles for seconds: left out here
    data = grid.main(["--quick", "--repeats", "1", "--no-memory", "--skip", "dynamax", "--skip", "dynamax-parallel",
                      "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["summary"] == data["summary"]
    assert len(saved["cells"]) == len(grid.QUICK_M) * len(grid.QUICK_BT)
    assert "loadavg_start" in saved["environment"]
    for cell in saved["cells"]:
        assert cell["path"] in ("compiled", "sequential", "time-parallel")
        for q in grid.QUANTITIES:
            res = cell["results"][q]
            assert res["hmmtune"]["median_s"] > 0
            for name in ("hmmlearn-log", "hmmlearn-scaling"):
                assert res[name]["max_abs_diff_vs_hmmtune"] < 1e-9, (cell["m"], q, name)
        assert cell["results"]["log_prob"]["pyro"]["max_abs_diff_vs_hmmtune"] < 1e-8
    table = grid.markdown(saved)
    assert table.count("\n") == 1 + len(saved["cells"]) * len(grid.QUANTITIES)
