"""One settings object, resolved in one place: ini < environment < command line.

Every option has an ini key, an environment variable and a command-line flag; a bad value is
a :class:`pytest.UsageError` that names the value, where it came from, and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Settings:
    """The plugin's resolved settings."""

    emulator_profiles: Path | None = None
    emulator_gguf: tuple[str, ...] = ()
    emulator_time_scale: float = 1.0


@dataclass(frozen=True)
class Option:
    """One setting's three spellings, its parser and its help text."""

    field: str
    flag: str
    ini: str
    env: str
    help: str
    parse: Callable[[str], Any]
    metavar: str
    multiple: bool = False


def _path(value: str) -> Path | None:
    return Path(value).expanduser() if value.strip() else None


def _scale(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be a number >= 0")
    return number


OPTIONS = (
    Option(
        "emulator_profiles",
        "--llm-emulator-profiles",
        "llm_emulator_profiles",
        "LLMPERF_EMULATOR_PROFILES",
        "latency profile file (TOML) for the ollama_emulator fixture; default: the shipped one",
        _path,
        "FILE",
    ),
    Option(
        "emulator_gguf",
        "--llm-emulator-gguf",
        "llm_emulator_gguf",
        "LLMPERF_EMULATOR_GGUF",
        "NAME=PATH of a GGUF model the emulator serves through llama.cpp (repeatable)",
        str,
        "NAME=PATH",
        multiple=True,
    ),
    Option(
        "emulator_time_scale",
        "--llm-emulator-time-scale",
        "llm_emulator_time_scale",
        "LLMPERF_EMULATOR_TIME_SCALE",
        "multiply every emulated delay by this factor (0.01: 100x faster than the profiles)",
        _scale,
        "FACTOR",
    ),
)


def add_options(parser: pytest.Parser) -> None:
    """Register every option's flag and ini key."""
    group = parser.getgroup("llmperf", "LLM performance testing (pytest-llmperf)")
    for option in OPTIONS:
        env = f" [env {option.env}]"
        if option.multiple:
            group.addoption(
                option.flag,
                action="append",
                dest=option.field,
                metavar=option.metavar,
                help=option.help + env,
            )
            parser.addini(option.ini, option.help, type="linelist")
        else:
            group.addoption(
                option.flag, dest=option.field, metavar=option.metavar, help=option.help + env
            )
            parser.addini(option.ini, option.help)


def resolve(config: pytest.Config, environ: Mapping[str, str] | None = None) -> Settings:
    """Read every option from ini, then the environment, then the command line."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in OPTIONS:
        for origin, raw in _sources(config, environ, option):
            values[option.field] = _parse(option, raw, origin)
    return Settings(**values)


def _sources(
    config: pytest.Config, environ: Mapping[str, str], option: Option
) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    ini = config.getini(option.ini)
    if ini:
        found.append((f"ini option {option.ini}", ini))
    if environ.get(option.env):
        value = environ[option.env]
        found.append(
            (f"environment variable {option.env}", value.split() if option.multiple else value)
        )
    cli = config.getoption(option.field)
    if cli:
        found.append((f"command-line option {option.flag}", cli))
    return found


def _parse(option: Option, raw: Any, origin: str) -> Any:
    try:
        if option.multiple:
            return tuple(option.parse(item) for item in raw)
        return option.parse(raw)
    except ValueError as exc:
        raise pytest.UsageError(f"invalid value {raw!r} for {origin}: {exc}") from None
