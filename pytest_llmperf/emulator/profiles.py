"""Latency profiles: how long each emulated model takes to load, read and write.

A profile file is TOML with a ``[server]`` table (Ollama's scheduler settings) and one
``[models."name:tag"]`` table per model. The shipped file is ``fixtures/profiles.toml``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pytest_llmperf.emulator.faults import FaultSpec, parse_fault_table
from pytest_llmperf.emulator.keepalive import parse_keep_alive
from pytest_llmperf.errors import FaultSpecError, ProfileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the py310 tox environment
    import tomli as tomllib

DEFAULT_PROFILES_NAME = "profiles.toml"
# What Ollama's /api/show gives as details.quantization_level (llama.cpp's file types)
QUANTIZATION_LEVELS = (
    "F32",
    "F16",
    "BF16",
    "Q8_0",
    "Q6_K",
    "Q5_0",
    "Q5_1",
    "Q5_K_S",
    "Q5_K_M",
    "Q4_0",
    "Q4_1",
    "Q4_K_S",
    "Q4_K_M",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q2_K",
    "IQ4_XS",
    "IQ4_NL",
    "IQ3_XXS",
    "IQ3_S",
    "IQ2_XS",
    "IQ1_S",
    "unknown",
)


@dataclass(frozen=True)
class ModelProfile:
    """The timing and the metadata of one emulated model."""

    name: str
    family: str = "llama"
    parameter_size: str = "1B"
    quantization_level: str = "Q4_0"
    size: int = 1_000_000_000
    size_vram: int | None = None  # bytes in GPU memory, as /api/ps shows; None: all of it
    context_length: int = 4096
    embedding_length: int = 384
    load_s: float = 0.5
    prompt_tokens_per_s: float = 500.0
    first_token_s: float = 0.02
    tokens_per_s: float = 50.0
    jitter: float = 0.0
    response_tokens: tuple[int, int] = (8, 32)
    capabilities: tuple[str, ...] = ("completion", "tools", "embedding")
    available: bool = True
    faults: tuple[FaultSpec, ...] = ()

    @property
    def vram(self) -> int:
        """The bytes of the loaded model in GPU memory (``size_vram`` in /api/ps)."""
        return self.size if self.size_vram is None else self.size_vram

    @property
    def digest(self) -> str:
        """A stable sha256-looking digest derived from the name, as Ollama lists one."""
        import hashlib

        return hashlib.sha256(self.name.encode()).hexdigest()


_Number = TypeVar("_Number", int, float)


def _setting(default: _Number, minimum: _Number) -> _Number:
    """A number of the ``[server]`` table: its default and the least value it may take."""
    return field(default=default, metadata={"minimum": minimum})


@dataclass(frozen=True)
class ServerSettings:
    """Ollama's scheduler settings (OLLAMA_NUM_PARALLEL and friends) and the time scale."""

    num_parallel: int = _setting(1, minimum=1)
    max_queue: int = _setting(512, minimum=0)
    max_loaded_models: int = _setting(3, minimum=1)
    keep_alive_s: float = 300.0  # read from ``keep_alive``, a duration such as "5m"
    time_scale: float = _setting(1.0, minimum=0.0)


@dataclass(frozen=True)
class Catalogue:
    """Every model the emulator knows, and the server settings read with them."""

    models: Mapping[str, ModelProfile] = field(default_factory=dict)
    server: ServerSettings = field(default_factory=ServerSettings)
    source: str = "<defaults>"

    def with_server(self, **changes: Any) -> Catalogue:
        return replace(self, server=replace(self.server, **changes))

    def with_model(self, profile: ModelProfile) -> Catalogue:
        return replace(self, models={**self.models, profile.name: profile})


def normalize_model_name(name: str) -> str:
    """Give a model name its tag: ``llama3`` means ``llama3:latest``, as in Ollama."""
    base = name.rsplit("/", 1)[-1]
    return name if ":" in base else f"{name}:latest"


def default_profiles_path() -> Path:
    """The shipped profile file: package data in a wheel, ``fixtures/`` in a checkout."""
    packaged = resources.files("pytest_llmperf") / "_fixtures" / DEFAULT_PROFILES_NAME
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "fixtures" / DEFAULT_PROFILES_NAME


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read a profile file (the shipped one when ``path`` is None)."""
    file = Path(path) if path is not None else default_profiles_path()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(
            f"latency profile file {str(file)!r} does not exist; pass an existing TOML file "
            "or leave the setting empty to use the shipped profiles"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"cannot read latency profile file {str(file)!r}: {exc}") from None
    return parse_catalogue(raw, source=str(file))


# The numbers of the [server] table, each read as a field of ServerSettings; and its keys.
_SERVER_NUMBERS = [f for f in fields(ServerSettings) if "minimum" in f.metadata]
_SERVER_FIELDS = {"keep_alive", *(f.name for f in _SERVER_NUMBERS)}
_MODEL_FIELDS = {
    "family",
    "parameter_size",
    "quantization_level",
    "size",
    "size_vram",
    "context_length",
    "embedding_length",
    "load_s",
    "prompt_tokens_per_s",
    "first_token_s",
    "tokens_per_s",
    "jitter",
    "response_tokens",
    "capabilities",
    "available",
    "faults",
}


def parse_catalogue(raw: Mapping[str, Any], *, source: str = "<data>") -> Catalogue:
    """Build a catalogue from the parsed TOML, naming the file and key of any bad value."""
    unknown = set(raw) - {"server", "models"}
    if unknown:
        raise ProfileError(f"{source}: unknown top-level table(s) {sorted(unknown)}")
    server = _parse_server(_table(raw.get("server", {}), source, "server"), source)
    models: dict[str, ModelProfile] = {}
    for name, table in _table(raw.get("models", {}), source, "models").items():
        profile = _parse_model(name, _table(table, source, f"models.{name!r}"), source)
        models[profile.name] = profile
    return Catalogue(models=models, server=server, source=source)


def _table(value: Any, source: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProfileError(f"{source}: [{where}] must be a table, got {value!r}")
    return value


def _parse_server(table: Mapping[str, Any], source: str) -> ServerSettings:
    _reject_unknown(table, _SERVER_FIELDS, source, "server")
    keep_alive = table.get("keep_alive", ServerSettings.keep_alive_s)
    try:
        keep_alive_s = parse_keep_alive(keep_alive)
    except ValueError as exc:
        raise ProfileError(
            f'{source}: [server].keep_alive must be a duration such as "5m" or "1h30m", a '
            f"number of seconds, or a negative number (for ever), got {keep_alive!r} ({exc})"
        ) from None
    numbers = {}
    for setting in _SERVER_NUMBERS:
        kind = float if isinstance(setting.default, float) else int
        minimum = setting.metadata["minimum"]
        numbers[setting.name] = _number(
            table, setting.name, setting.default, kind, source, "server", minimum
        )
    return ServerSettings(keep_alive_s=keep_alive_s, **numbers)


def _parse_model(name: str, table: Mapping[str, Any], source: str) -> ModelProfile:
    where = f"models.{name!r}"
    _reject_unknown(table, _MODEL_FIELDS, source, where)
    defaults = ModelProfile(name=name)
    values: dict[str, Any] = {"name": normalize_model_name(name)}
    values.update(_what_it_is(table, defaults, source, where))
    values.update(_how_fast(table, defaults, source, where))
    if "response_tokens" in table:
        values["response_tokens"] = _token_range(table["response_tokens"], source, where)
    if "capabilities" in table:
        caps = table["capabilities"]
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise ProfileError(f"{source}: {where}.capabilities must be a list of strings")
        values["capabilities"] = tuple(caps)
    if "available" in table:
        if not isinstance(table["available"], bool):
            raise ProfileError(f"{source}: {where}.available must be true or false")
        values["available"] = table["available"]
    if "faults" in table:
        values["faults"] = _faults(table["faults"], source, where)
    return ModelProfile(**values)


def _what_it_is(
    table: Mapping[str, Any], defaults: ModelProfile, source: str, where: str
) -> dict[str, Any]:
    """The fields ``/api/show`` and ``/api/ps`` report: family, sizes, quantization."""
    values: dict[str, Any] = {}
    for key in ("family", "parameter_size", "quantization_level"):
        if key in table:
            values[key] = _string(table[key], source, f"{where}.{key}")
    for key in ("size", "context_length", "embedding_length"):
        values[key] = _number(table, key, getattr(defaults, key), int, source, where, minimum=1)
    if "size_vram" in table:
        values["size_vram"] = _size_vram(table, values["size"], source, where)
    if values.get("quantization_level", defaults.quantization_level) not in QUANTIZATION_LEVELS:
        raise ProfileError(
            f"{source}: {where}.quantization_level must be one of "
            f"{', '.join(QUANTIZATION_LEVELS)}, got {values['quantization_level']!r}"
        )
    return values


def _how_fast(
    table: Mapping[str, Any], defaults: ModelProfile, source: str, where: str
) -> dict[str, Any]:
    """The latency fields: load, first token, jitter and the two rates."""
    values: dict[str, Any] = {}
    for key in ("load_s", "first_token_s", "jitter"):
        values[key] = _number(table, key, getattr(defaults, key), float, source, where, 0.0)
    for key in ("prompt_tokens_per_s", "tokens_per_s"):
        values[key] = _number(table, key, getattr(defaults, key), float, source, where, 0.0)
        if values[key] == 0:
            raise ProfileError(f"{source}: {where}.{key} must be a number above 0, got 0")
    if values["jitter"] >= 1.0:
        raise ProfileError(f"{source}: {where}.jitter must be below 1.0, got {values['jitter']}")
    return values


def _faults(value: Any, source: str, where: str) -> tuple[FaultSpec, ...]:
    if not isinstance(value, list):
        raise ProfileError(f"{source}: {where}.faults must be an array of tables")
    faults = []
    for index, entry in enumerate(value):
        try:
            faults.append(parse_fault_table(_table(entry, source, f"{where}.faults[{index}]")))
        except FaultSpecError as exc:
            raise ProfileError(f"{source}: {where}.faults[{index}]: {exc}") from None
    return tuple(faults)


def _size_vram(table: Mapping[str, Any], size: int, source: str, where: str) -> int:
    value = _number(table, "size_vram", size, int, source, where, minimum=0)
    if value > size:
        raise ProfileError(
            f"{source}: {where}.size_vram must be a whole number of bytes from 0 (all in main "
            f"memory) to size ({size}: all in GPU memory), got {value!r}"
        )
    return int(value)


def _token_range(value: Any, source: str, where: str) -> tuple[int, int]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 1 <= value[0] <= value[1]
    )
    if not ok:
        raise ProfileError(
            f"{source}: {where}.response_tokens must be [min, max] with 1 <= min <= max, "
            f"got {value!r}"
        )
    return (value[0], value[1])


def _reject_unknown(table: Mapping[str, Any], known: set[str], source: str, where: str) -> None:
    unknown = set(table) - known
    if unknown:
        raise ProfileError(
            f"{source}: [{where}] has unknown key(s) {sorted(unknown)}; known keys: {sorted(known)}"
        )


def _string(value: Any, source: str, where: str) -> str:
    if not isinstance(value, str):
        raise ProfileError(f"{source}: {where} must be a string, got {value!r}")
    return value


def _number(
    table: Mapping[str, Any],
    key: str,
    default: Any,
    kind: type[int] | type[float],
    source: str,
    where: str,
    minimum: float,
) -> Any:
    value = table.get(key, default)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        numeric = numeric and isinstance(value, int)
    if not numeric or not math.isfinite(value) or value < minimum:
        wanted = "a whole number" if kind is int else "a number"
        raise ProfileError(
            f"{source}: {where}.{key} must be {wanted} >= {minimum:g}, got {value!r}"
        )
    return kind(value)
