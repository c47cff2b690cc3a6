"""Every file format of hmmtune: model JSON (HMM and memory HMM, exact rationals,
parametric models), task files, the safe expression parser, and the hmmlearn / Pyro adapters.

io reads and writes models; models never import io (docs/index.md, the house plan).
Formats are documented in ``docs/formats.md`` and ``docs/memory.md``.

Modules: :mod:`hmmtune.io.entries` (sources, entries, exact rows, parameters),
:mod:`hmmtune.io.expr` (expressions in parameters), :mod:`hmmtune.io.hmm_json`,
:mod:`hmmtune.io.memory_json`, :mod:`hmmtune.io.task_json`, :mod:`hmmtune.io.adapters`,
:mod:`hmmtune.io.load`.

The public names are loaded on first use (module ``__getattr__``, PEP 562), so that
``hmmtune.io.expr`` can be imported without paying for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..common import lazy_exports

if TYPE_CHECKING:  # the static view for type checkers and the API docs
    from .adapters import hmm_from_hmmlearn, hmm_to_hmmlearn, hmm_to_pyro_discrete_hmm
    from .entries import (
        FORMAT_VERSION,
        ModelFileError,
        check_exact_rows,
        check_format_version,
        exact_at_parameters,
        format_entry,
        load_json_source,
        parse_entries,
        parse_parameters,
        require_exact_entries,
    )
    from .expr import ExpressionError, parse_expression
    from .hmm_json import hmm_from_json, hmm_to_json
    from .load import KINDS, load_model
    from .memory_json import memory_hmm_from_json, memory_hmm_to_json
    from .task_json import load_task, task_from_dict, task_to_dict

#: public name -> the submodule that defines it (imported on first access)
_EXPORTS = {
    "hmm_from_hmmlearn": ".adapters",
    "hmm_to_hmmlearn": ".adapters",
    "hmm_to_pyro_discrete_hmm": ".adapters",
    "FORMAT_VERSION": ".entries",
    "ModelFileError": ".entries",
    "check_exact_rows": ".entries",
    "check_format_version": ".entries",
    "exact_at_parameters": ".entries",
    "format_entry": ".entries",
    "load_json_source": ".entries",
    "parse_entries": ".entries",
    "parse_parameters": ".entries",
    "require_exact_entries": ".entries",
    "ExpressionError": ".expr",
    "parse_expression": ".expr",
    "hmm_from_json": ".hmm_json",
    "hmm_to_json": ".hmm_json",
    "KINDS": ".load",
    "load_model": ".load",
    "memory_hmm_from_json": ".memory_json",
    "memory_hmm_to_json": ".memory_json",
    "load_task": ".task_json",
    "task_from_dict": ".task_json",
    "task_to_dict": ".task_json",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
