"""The bundled `memory_anchors` example: facts derived by hand from its file.

Its local chain alternates deterministically from S_0 = 0 (initial [1, 0], transition
[[0, 1], [1, 0]]), so S_t = t mod 2 for every sequence: exactly the even positions are
anchors for s* = 0, and the Z-chain has period 2. At an anchor Theorem M's identity
b . G_t(x) = mu . P(M | x_{-t}) must hold up to rounding.
"""

from hmmtune import load_example
from hmmtune.analysis import check
from hmmtune.cli import main


def test_memory_anchors_example_facts():
    model = load_example("memory_anchors")
    report = check(model, {"mu": [1, -1], "target": {"memory_cell": 0}}, length=32)
    chain = report.condition("chain structure")
    assert chain.witness["periods"] == [2] and "period 2" in chain.explanation
    assert report.condition("memory: rank W[:, (., s)] = V for some s").holds is True
    assert report.condition("memory: flattened vanilla rank W = V*S").holds is False
    emp = report.condition("memory: anchors and leave-one-out stability (empirical)")
    assert emp.witness["anchor_rate"] == 0.5  # the even positions, exactly
    assert emp.witness["max_gap_at_anchors"] < 1e-12
    assert report.exit_code == 0


def test_memory_anchors_example_cli(capsys):
    assert main(["check", "--example", "memory_anchors"]) == 0
    assert "50.0% of positions are anchors" in capsys.readouterr().out
