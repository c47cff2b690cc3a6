"""Smoke test of the GPU column's script (issue 11, item 3): bench/bench_gpu.py runs end to
end with --device cpu --quick, the device's answers equal the CPU's, and its JSON renders.
On a machine with a GPU the same script runs with --device cuda (no timing assertions)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_gpu_script_runs_on_the_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "bench_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "gpu.json"
    data = mod.main(["--device", "cpu", "--quick", "--repeats", "1", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["complete"] and saved["cells"] == json.loads(json.dumps(data["cells"]))
    assert len(saved["cells"]) == len(mod.QUICK)
    for cell in saved["cells"]:
        for q in mod.QUANTITIES:
            r = cell["results"][q]
            assert r["device"]["median_s"] > 0 and r["cpu"]["median_s"] > 0
            assert r["max_abs_diff"] < 1e-12
    assert mod.markdown(saved).count("\n") == 1 + len(mod.QUICK) * len(mod.QUANTITIES)
