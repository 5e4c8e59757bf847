"""Model tiers: which model answers ``tier="fast"``, and a policy that picks a tier for a task.

The tiers run from fastest to most capable: ``fast`` → ``balanced`` → ``complex``. A fallback
goes the other way, to the next faster tier. Tiers of other names can be added; having no
known speed, they neither fall back nor are fallen back to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pytest_llmperf.errors import ConfigurationError

ORDER = ("fast", "balanced", "complex")
DEFAULT_MODELS: Mapping[str, str] = MappingProxyType(
    {"fast": "llama3.2:1b", "balanced": "llama3.2:3b", "complex": "llama3:8b"}
)
AUTO = "auto"


@dataclass(frozen=True)
class TierPolicy:
    """Picks a tier for ``tier="auto"`` from the size of the task.

    The prompt's size is estimated at four characters a token. A task goes to ``complex`` when
    its prompt exceeds ``complex_prompt_tokens`` or it asks for more than
    ``complex_output_tokens``; to ``balanced`` past the ``balanced_*`` thresholds; else
    to ``fast``.
    """

    balanced_prompt_tokens: int = 500
    balanced_output_tokens: int = 256
    complex_prompt_tokens: int = 2000
    complex_output_tokens: int = 1024

    def choose(self, prompt_chars: int, output_tokens: int | None) -> str:
        prompt_tokens = prompt_chars // 4
        wanted = output_tokens if output_tokens is not None and output_tokens >= 0 else 0
        if prompt_tokens > self.complex_prompt_tokens or wanted > self.complex_output_tokens:
            return "complex"
        if prompt_tokens > self.balanced_prompt_tokens or wanted > self.balanced_output_tokens:
            return "balanced"
        return "fast"


@dataclass(frozen=True)
class Tiers:
    """The tier → model table (ordered fastest first) and the ``auto`` policy."""

    models: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    policy: TierPolicy = field(default_factory=TierPolicy)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigurationError("the tier table is empty: give at least one TIER=MODEL")

    @classmethod
    def parse(cls, entries: Sequence[str], base: Mapping[str, str] | None = None) -> Tiers:
        """A table from ``TIER=MODEL`` strings, laid over ``base`` (the defaults)."""
        return cls.of(dict(cls.entry(entry) for entry in entries), base)

    @classmethod
    def of(cls, models: Mapping[str, str], base: Mapping[str, str] | None = None) -> Tiers:
        """A table of ``models`` (tier -> model) laid over ``base`` (the defaults)."""
        return cls(_ordered({**(DEFAULT_MODELS if base is None else base), **models}))

    @staticmethod
    def entry(text: str) -> tuple[str, str]:
        """``TIER=MODEL`` as the pair (tier, model)."""
        name, sep, model = (part.strip() for part in text.partition("="))
        if not sep or not name or not model:
            raise ConfigurationError(
                f"cannot read tier {text!r}: write TIER=MODEL, as in fast=llama3.2:1b"
            )
        if name == AUTO:
            raise ConfigurationError(f"{AUTO!r} is the policy's name and cannot be a tier")
        return name, model

    def model(self, tier: str) -> str:
        try:
            return self.models[tier]
        except KeyError:
            known = ", ".join(self.models)
            raise ConfigurationError(
                f"unknown tier {tier!r}: the tiers are {known} (or {AUTO!r}); "
                "add one with --llm-tier NAME=MODEL or the llm_tiers ini option"
            ) from None

    def tier_of(self, model: str) -> str | None:
        for tier, name in self.models.items():
            if name == model:
                return tier
        return None

    def faster(self, tier: str) -> list[str]:
        """The tiers faster than ``tier``, nearest first: the fallback order.

        Only ``fast`` < ``balanced`` < ``complex`` have a known speed; a tier of another
        name has no fallback, and is never a fallback.
        """
        if tier not in ORDER or tier not in self.models:
            return []
        return [name for name in ORDER[: ORDER.index(tier)][::-1] if name in self.models]

    def pick(self, tier: str, task: Mapping[str, Any]) -> str:
        """The tier to use: ``tier`` itself, or the policy's choice for ``auto``."""
        if tier != AUTO:
            self.model(tier)
            return tier
        chosen = self.policy.choose(_prompt_chars(task), _output_tokens(task))
        if chosen in self.models:
            return chosen
        return next(iter(self.models))


def _ordered(models: Mapping[str, str]) -> dict[str, str]:
    """Known tiers in speed order first, then others in the order given."""
    known = {name: models[name] for name in ORDER if name in models}
    return {**known, **{k: v for k, v in models.items() if k not in known}}


def _prompt_chars(task: Mapping[str, Any]) -> int:
    size = len(task.get("prompt") or "") + len(task.get("system") or "")
    for message in task.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        size += len(content) if isinstance(content, str) else 0
    return size


def _output_tokens(task: Mapping[str, Any]) -> int | None:
    options = task.get("options") or {}
    value = options.get("num_predict")
    return value if isinstance(value, int) else None
