"""The :class:`Report` a user reads: a text table and JSON that round-trips."""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conditions import Condition

__all__ = ["Report"]

_MARK = {True: "yes", False: "NO", None: "-"}


def _strict(value: Any) -> Any:
    """Replace non-finite floats so that the JSON is standard (no NaN / Infinity tokens)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


@dataclass
class Report:
    """The outcome of :func:`hmmtune.analysis.check`.

    Attributes:
        model: the model's name.
        kind: ``"hmm"`` or ``"memory_hmm"``.
        shape: ``{"num_states": m, "num_tokens": n, ...}``.
        task: the task as a dict (see :mod:`hmmtune.analysis.task`), or None.
        conditions: the checked conditions, in the order checked.
        settings: the options the check ran with (seeds, lengths, tolerances).
    """

    model: str
    kind: str
    shape: dict
    task: dict | None
    conditions: list[Condition] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        """Every condition that counts holds (undetermined counts as not holding)."""
        return all(c.holds is True for c in self.conditions if c.counts)

    @property
    def exit_code(self) -> int:
        """0 when every checked condition holds, 1 otherwise (``hmmtune check``)."""
        return 0 if self.holds else 1

    def condition(self, name: str) -> Condition:
        """The condition called ``name`` (KeyError if absent)."""
        for c in self.conditions:
            if c.name == name:
                return c
        raise KeyError(f"no condition {name!r} in this report; have {[c.name for c in self.conditions]}")

    # -------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        """A strict-JSON dict: NaN becomes None and infinities the strings "inf" / "-inf"."""
        return _strict({
            "kind": "hmmtune.report",
            "format_version": 1,
            "model": self.model,
            "model_kind": self.kind,
            "shape": self.shape,
            "task": self.task,
            "settings": self.settings,
            "holds": self.holds,
            "conditions": [c.to_dict() for c in self.conditions],
        })

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        """JSON text (exact rationals as strings); also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | Path | dict) -> "Report":
        """Read a report written by :meth:`to_json` (path, JSON text or dict)."""
        if isinstance(source, dict):
            d = source
        else:
            from ..models import limits

            text = str(source)
            label = "<json text>" if text.lstrip().startswith("{") else str(source)
            d = limits.parse_json(text if label == "<json text>" else limits.read_text(source), label)
            if not isinstance(d, dict):
                raise ValueError(f"{label}: not an hmmtune report (the top level is not a JSON object)")
        if d.get("kind") != "hmmtune.report":
            raise ValueError("not an hmmtune report (field 'kind' is not 'hmmtune.report')")
        return cls(
            model=d["model"],
            kind=d["model_kind"],
            shape=d["shape"],
            task=d.get("task"),
            conditions=[Condition.from_dict(c) for c in d["conditions"]],
            settings=d.get("settings", {}),
        )

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Report) and self.to_dict() == other.to_dict()

    # -------------------------------------------------------------- text
    def __str__(self) -> str:
        dims = ", ".join(f"{k.replace('num_', '')}={v}" for k, v in self.shape.items())
        lines = [f"hmmtune check: {self.model} ({self.kind}, {dims})"]
        if self.task:
            target = self.task.get("target", "first_state")
            where = "P(H_0 | x)" if target == "first_state" else f"P(M_{target['memory_cell']} | x)"
            w = self.task.get("weights")
            if w and len(w) == 2 and all(v in (0, "0") for v in w[0]):
                lines.append(f"task: y = 1[mu . p >= 0], mu = {w[1]}, p = {where}")
            else:
                lines.append(f"task: y = argmax_c (M p)_c, {len(w)} classes, p = {where}")
        else:
            lines.append("task: none given (task-free conditions only; pass --task or put \"task\" in the model file)")
        lines.append("")
        width = max(len(c.name) for c in self.conditions) if self.conditions else 10
        lines.append(f"{'condition':<{width}}  {'holds':<5}  decided by")
        lines.append(f"{'-' * width}  {'-' * 5}  {'-' * 30}")
        for c in self.conditions:
            lines.append(f"{c.name:<{width}}  {_MARK[c.holds]:<5}  {c.method}")
            for part in textwrap.wrap(c.explanation, width=96):
                lines.append(f"    {part}")
        lines.append("")
        failing = [c.name for c in self.conditions if c.counts and c.holds is not True]
        if not failing:
            lines.append("verdict: every checked condition holds")
        else:
            lines.append(f"verdict: {len(failing)} condition(s) do not hold: {', '.join(failing)}")
        lines.append("witnesses and certificates: rerun with --json")
        return "\n".join(lines)
