"""The :class:`Report` a user reads: a text table and JSON that round-trips."""

from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .condition import Condition

__all__ = ["Report", "REQUIRE_CHOICES"]

#: What may decide the exit code of ``hmmtune check`` (``--require``).
REQUIRE_CHOICES = ("all", "head", "prompt", "memory", "task")

_MARK = {True: "yes", False: "NO", None: "-"}
_FACT_MARK = {True: "yes", False: "no", None: "-"}
_HEAD_TASK = "head: task in row space of W"
_HEAD_RANK = "head: rank W = m"
_PROMPT = "prompt: Theorem P support"
_MEMORY = "memory: rank W[:, (., s)] = V for some s"


def _entry(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def abbreviate(values: list, limit: int = 12) -> str:
    """A vector as text: in full up to ``limit`` entries, else its length and either its
    nonzero entries (when at most 6) or its first and last entries. The JSON keeps it whole."""
    if len(values) <= limit:
        return "[" + ", ".join(_entry(v) for v in values) + "]"
    nonzero = [(i, v) for i, v in enumerate(values) if v not in (0, "0", 0.0)]
    if len(nonzero) <= 6:
        inner = ", ".join(f"{i}: {_entry(v)}" for i, v in nonzero)
        return f"({len(values)} entries, nonzero {{{inner}}})"
    head = ", ".join(_entry(v) for v in values[:4])
    tail = ", ".join(_entry(v) for v in values[-2:])
    return f"[{head}, ..., {tail}] ({len(values)} entries)"


_LIST = re.compile(r"\[([^\[\]]*)\]")


def _shorten_lists(text: str, limit: int = 12) -> str:
    """Long bracketed lists inside an explanation, abbreviated (see :func:`abbreviate`)."""

    def rep(m):
        items = [t.strip() for t in m.group(1).split(",")]
        if len(items) <= limit:
            return m.group(0)
        return f"[{', '.join(items[:4])}, ..., {', '.join(items[-2:])}] ({len(items)} entries)"

    return _LIST.sub(rep, text)


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
    def require(self) -> str:
        """What decides :attr:`holds` and the exit code (one of :data:`REQUIRE_CHOICES`)."""
        return self.settings.get("require", "all")

    def requiring(self, require: str) -> "Report":
        """This report with ``require`` deciding :attr:`holds` and the exit code.

        ``"all"``: every counting condition (facts never count). ``"head"``: the head
        task row with a task (``W^T b = mu``), else ``rank W = m``. ``"prompt"``: the
        Theorem P row. ``"memory"``: the memory non-degeneracy row. ``"task"``: the given
        task is provably recovered by head or prompt tuning (memory model: by the memory
        condition). Raises ValueError when the report has nothing to decide it by.
        """
        if require not in REQUIRE_CHOICES:
            raise ValueError(f"--require must be one of {', '.join(REQUIRE_CHOICES)}; got {require!r}")
        out = Report(self.model, self.kind, self.shape, self.task, list(self.conditions), {**self.settings, "require": require})
        out.deciding()  # validate now
        return out

    def deciding(self) -> tuple[list[Condition], str]:
        """The conditions that decide the verdict and how they combine: ``"all"`` (every one
        must hold) or ``"any"`` (one is enough)."""
        req = self.require
        names = [c.name for c in self.conditions]
        memory = self.kind == "memory_hmm"
        pick = lambda *wanted: [c for c in self.conditions if c.name in wanted]  # noqa: E731

        def need(cond: bool, why: str) -> None:
            if not cond:
                raise ValueError(f"--require {req}: {why}")

        if req == "all":
            return [c for c in self.conditions if c.can_decide], "all"
        if req == "head":
            need(not memory, "a memory HMM has no head condition; use --require memory")
            return pick(_HEAD_TASK if _HEAD_TASK in names else _HEAD_RANK), "all"
        if req == "memory":
            need(memory, "the model is a vanilla HMM; use --require head or prompt")
            return pick(_MEMORY), "all"
        need(self.task is not None, 'needs a task (pass --task TASK.json or put "task" in the model file)')
        if req == "prompt":
            need(not memory, "a memory HMM has no prompt condition; use --require memory")
            return pick(_PROMPT), "all"
        return (pick(_MEMORY), "all") if memory else (pick(_HEAD_TASK, _PROMPT), "any")

    @property
    def holds(self) -> bool:
        """The deciding conditions hold (:meth:`deciding`; undetermined counts as not
        holding). With ``require="all"`` (the default): every counting condition."""
        conds, how = self.deciding()
        ok = [c.holds is True for c in conds]
        return bool(conds) and (all(ok) if how == "all" else any(ok))

    @property
    def exit_code(self) -> int:
        """0 when the deciding conditions hold, 1 otherwise (``hmmtune check``)."""
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
        deciding, how = self.deciding()
        decides = {c.name for c in deciding}
        if self.task:
            target = self.task.get("target", "first_state")
            where = "P(H_0 | x)" if target == "first_state" else f"P(M_{target['memory_cell']} | x)"
            w = self.task.get("weights")
            if w and len(w) == 2 and all(v in (0, "0") for v in w[0]):
                lines.append(f"task: y = 1[mu . p >= 0], mu = {abbreviate(w[1])}, p = {where}")
            else:
                lines.append(f"task: y = argmax_c (M p)_c, {len(w)} classes, p = {where}")
        else:
            lines.append("task: none given (task-free conditions only; pass --task or put \"task\" in the model file)")
        lines.append("")
        width = max(len(c.name) for c in self.conditions) if self.conditions else 10
        lines.append(f"{'condition':<{width}}  {'holds':<5}  {'role':<7}  decided by")
        lines.append(f"{'-' * width}  {'-' * 5}  {'-' * 7}  {'-' * 30}")
        for c in self.conditions:
            role = "decides" if c.name in decides else ("fact" if not c.can_decide else "info")
            mark = (_MARK if role == "decides" else _FACT_MARK)[c.holds]
            lines.append(f"{c.name:<{width}}  {mark:<5}  {role:<7}  {c.method}")
            for part in textwrap.wrap(_shorten_lists(c.explanation), width=96):
                lines.append(f"    {part}")
        lines.append("")
        lines.append(self._verdict(deciding, how))
        if len(decides) < len(self.conditions):
            lines.append(
                "rows marked 'fact' (not a condition of a theorem) or 'info' (not chosen by --require) "
                "do not decide the verdict"
            )
        lines.append("witnesses and certificates: rerun with --json")
        return "\n".join(lines)

    def _verdict(self, deciding: list[Condition], how: str) -> str:
        req = f"--require {self.require}"
        good = [c.name for c in deciding if c.holds is True]
        bad = [c.name for c in deciding if c.holds is not True]
        if how == "any":
            if good:
                return f"verdict: holds ({req}): {good[0]} holds, so the task is provably recovered"
            return f"verdict: does not hold ({req}): neither {' nor '.join(bad)} holds"
        if not bad:
            return f"verdict: holds ({req}): every deciding condition holds ({', '.join(good)})"
        held = f"; holding: {', '.join(good)}" if good else ""
        return f"verdict: does not hold ({req}): {len(bad)} deciding condition(s) fail: {', '.join(bad)}{held}"
