"""The report's optional ``server`` section: the models a server holds, as it describes them.

Call records say what each call took; they do not say where a model runs. Whoever can ask
the server (``llmperf validate`` does) fetches ``GET /api/ps`` and ``POST /api/show`` for
each loaded model, turns the answers into the section with :func:`from_api`, and passes it
to the report; the recommendations on GPU memory, quantization and concurrency read it.
Without it those rules stay silent.

The section::

    {"num_parallel": 4 | null,
     "models": [{"name", "size", "size_vram", "quantization_level", "parameter_size"}]}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBT])\s*$", re.IGNORECASE)
_SCALE = {"K": 1e-6, "M": 1e-3, "B": 1.0, "T": 1e3}
_BITS = re.compile(r"^(?:I?Q(\d)|B?F(\d\d))(?:_|$)", re.IGNORECASE)


def from_api(
    ps: Mapping[str, Any],
    shows: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    num_parallel: int | None = None,
) -> dict[str, Any]:
    """The section from /api/ps's answer and /api/show's answers (by model name).

    ``num_parallel`` is the server's ``OLLAMA_NUM_PARALLEL`` when the caller knows it (no
    route tells). /api/show's details win over the ones /api/ps repeats; what neither gives
    is ``None``. Entries without a name are left out.
    """
    models = []
    for entry in ps.get("models") or ():
        if not isinstance(entry, Mapping):
            continue
        name = entry.get("name") or entry.get("model")
        if not isinstance(name, str) or not name:
            continue
        shown = (shows or {}).get(name) or {}
        details = {**_mapping(entry.get("details")), **_mapping(shown.get("details"))}
        models.append(
            {
                "name": name,
                "size": _whole(entry.get("size")),
                "size_vram": _whole(entry.get("size_vram")),
                "quantization_level": _text(details.get("quantization_level")),
                "parameter_size": _text(details.get("parameter_size")),
            }
        )
    return {"num_parallel": num_parallel, "models": models}


def billions(parameter_size: str | None) -> float | None:
    """Ollama's ``parameter_size`` (``"8.0B"``, ``"567M"``) in billions; None if unreadable."""
    found = _SIZE.match(parameter_size or "")
    return float(found.group(1)) * _SCALE[found.group(2).upper()] if found else None


def bits(quantization_level: str | None) -> int | None:
    """Bits per weight of a ``quantization_level`` (``F16``: 16, ``Q4_K_M``: 4, ``IQ2_XS``: 2)."""
    found = _BITS.match(quantization_level or "")
    if not found:
        return None
    return int(found.group(1) or found.group(2))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
