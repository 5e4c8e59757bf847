"""One settings object, resolved in one place: ini < environment < command line < marker.

Every option has an ini key, an environment variable and a command-line flag; a bad value is
a :class:`pytest.UsageError` that names the value, where it came from, and what is allowed.
``@pytest.mark.llm_settings(field=value, ...)`` overrides fields for one test.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmperf.client.tiers import Tiers
from pytest_llmperf.client.timeouts import TIER_LIMITS, UNTIERED, Limits

if TYPE_CHECKING:
    from pytest_llmperf.judge.budget import Budget

EMULATOR = "emulator"


@dataclass(frozen=True)
class Settings:
    """The plugin's resolved settings."""

    enabled: bool = True
    emulator_profiles: Path | None = None
    emulator_gguf: tuple[str, ...] = ()
    emulator_time_scale: float = 1.0
    hosts: tuple[str, ...] = (EMULATOR,)
    api: str = "ollama"
    cache: str = "memory"
    cache_ttl: float | None = None
    cache_namespace: str = "llmperf"
    tiers: Tiers = field(default_factory=Tiers)
    timeouts: Mapping[str, Limits] = field(default_factory=lambda: dict(TIER_LIMITS))
    adaptive_timeouts: bool = True
    fallback: bool = False
    retries: int = 2
    concurrency: int = 4
    max_line_bytes: int = 16 * 1024 * 1024
    keep_alive: str = "30m"
    record_mode: str = "none"
    replay_timing: float = 0.0  # a factor of the recorded waits: 0 instant, 1 as recorded
    cassette_dir: str = "cassettes"
    scrub_headers: tuple[str, ...] = ()
    scrub_query: tuple[str, ...] = ()
    measure: str = "all"
    route_prefixes: tuple[str, ...] = ()
    budget_mode: str = "enforce"
    budgets: Mapping[str, Budget] = field(default_factory=dict)
    report: str = ""
    report_dir: str = ".llmperf"
    report_keep: int = 20
    baseline: Path | None = None
    baseline_threshold: float = 0.10
    baseline_alpha: float = 0.01
    baseline_mode: str = "enforce"
    baseline_markdown: Path | None = None
    block_network: bool = False
    allowed_hosts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The settings as the report's run section holds them (JSON-able)."""
        out = asdict(self)
        out["tiers"] = dict(self.tiers.models)
        out["timeouts"] = {tier: asdict(limits) for tier, limits in self.timeouts.items()}
        return {key: str(value) if isinstance(value, Path) else value for key, value in out.items()}


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
    # how the environment variable separates several values: whitespace, or ";" for
    # values that contain spaces themselves ("fast: total=10 first_token=5")
    env_separator: str | None = None
    # for a repeatable option: the field's value from the values ``parse`` gave, in order
    # (without it, their tuple)
    combine: Callable[[Sequence[Any]], Any] | None = None

    @property
    def dest(self) -> str:
        """Where argparse keeps the flag's value: prefixed, for other plugins have options
        of the same names (pytest-recording's --record-mode, --block-network, ...)."""
        return f"llm_{self.field}"


def _path(value: str) -> Path | None:
    return Path(value).expanduser() if value.strip() else None


def _real(value: str, allowed: str) -> float:
    """A finite number >= 0; else a ValueError saying what is ``allowed``."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ValueError(allowed)
    return number


def _scale(value: str) -> float:
    return _real(value, "must be a number >= 0 (1: the profiles' delays, 0.1: ten times faster)")


def _host(value: str) -> str:
    value = value.strip()
    if value == EMULATOR:
        return value
    from pytest_llmperf.client.protocol import parse_host
    from pytest_llmperf.errors import ConfigurationError

    try:
        return parse_host(value)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"choose one of {', '.join(choices)}")
        return value

    return parse


def _choice_of(module: str, name: str) -> Callable[[str], str]:
    """One of the tuple ``name`` in ``module``, its one owner (imported when a value comes)."""

    def parse(value: str) -> str:
        choices: tuple[str, ...] = getattr(importlib.import_module(module), name)
        return _choice(*choices)(value)

    return parse


def _cache(value: str) -> str:
    from pytest_llmperf.client.cache import REDIS_SCHEMES

    if value in ("memory", "off") or value.startswith(REDIS_SCHEMES):
        return value
    raise ValueError("choose memory, off, or a redis://HOST:PORT/DB URL")


def _ttl(value: str) -> float | None:
    return _real(value, "must be a number of seconds >= 0 (0: entries never expire)") or None


def _tier(value: str) -> tuple[str, str]:
    from pytest_llmperf.errors import ConfigurationError

    try:
        return Tiers.entry(value)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None


def _tiers(entries: Sequence[tuple[str, str]]) -> Tiers:
    return Tiers.of(dict(entries))


def _timeout(value: str) -> tuple[str, str]:
    """``TIER: total=S ...``, checked: the tier and its limits' text."""
    from pytest_llmperf.errors import ConfigurationError

    tier, sep, limits = (part.strip() for part in value.partition(":"))
    if not sep or not tier:
        raise ValueError("write TIER: total=S first_token=S stall=S connect=S")
    try:
        Limits.parse(limits, UNTIERED)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None
    return tier, limits


def _timeouts(entries: Sequence[tuple[str, str]]) -> Mapping[str, Limits]:
    """Each tier's limits: its defaults (a tier of another name: the complex tier's) with
    the entries for it laid over, in order."""
    table = dict(TIER_LIMITS)
    for tier, limits in entries:
        table[tier] = Limits.parse(limits, table.get(tier, UNTIERED))
    return table


def _timing(value: str) -> float:
    from pytest_llmperf.observe.cassettes import parse_timing

    try:
        factor = parse_timing(value)
    except ValueError:
        factor = math.nan
    if not math.isfinite(factor):
        raise ValueError(
            "choose instant, recorded, or a factor >= 0 of the recorded waits (0.5: half)"
        )
    return factor


def _budget_line(value: str) -> tuple[str, Budget]:
    from pytest_llmperf.judge.budget import suite_budgets

    ((tier, budget),) = suite_budgets([value]).items()
    return tier, budget


def _budgets(entries: Sequence[tuple[str, Budget]]) -> Mapping[str, Budget]:
    return dict(entries)


def _relative(value: str) -> float:
    from pytest_llmperf.judge.gate import parse_threshold

    return parse_threshold(value)


def _probability(value: str) -> float:
    from pytest_llmperf.judge.gate import parse_alpha

    return parse_alpha(value)


def _switch(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("choose on or off")


def _prefix(value: str) -> str:
    path = value.strip().strip("/")
    if not path or "://" in value or "?" in value:
        raise ValueError("write a path such as /ollama (no host, no query)")
    return "/" + path


def _host_pattern(value: str) -> str:
    import re

    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(
            f"write a host, or a regular expression of hosts or host:port ({exc})"
        ) from None
    return value.strip()


def _count(least: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = least - 1
        if number < least:
            raise ValueError(f"must be a whole number >= {least}")
        return number

    return parse


_UNITS = {"": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def _size(value: str) -> int:
    text = value.strip().lower().replace(" ", "")
    digits = text.rstrip("kmgib")
    unit = text[len(digits) :]
    if not digits.isdigit() or unit not in _UNITS or int(digits) < 1:
        raise ValueError(
            "give a whole number of bytes >= 1, or one with a unit: 64KiB, 16MiB, 1GiB"
        )
    return int(digits) * _UNITS[unit]


def _duration(value: str) -> str:
    from pytest_llmperf.emulator.keepalive import parse_go_duration

    try:
        parse_go_duration(value)
    except ValueError:
        raise ValueError(
            "write a duration as Ollama takes it: 30m, 1h30m, 90s, 0 (unload at once) or -1 "
            "(keep loaded)"
        ) from None
    return value.strip()


def _gguf(value: str) -> str:
    name, sep, path = value.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ValueError("write NAME=PATH, as stories=models/stories260K.gguf")
    return value.strip()


OPTIONS: tuple[Option, ...] = (
    Option(
        "enabled",
        "--llm-enabled",
        "llm_enabled",
        "LLMPERF_ENABLED",
        "off: the plugin does nothing in this run (no measuring, budgets, report, gate or "
        "cassette marker); its markers and ini keys stay known, for --strict-markers and "
        "--strict-config (which -p no:llmperf breaks)",
        _switch,
        "on|off",
    ),
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
        _gguf,
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
    Option(
        "hosts",
        "--llm-host",
        "llm_host",
        "LLMPERF_HOST",
        "the LLM server the client fixtures call, with OLLAMA_HOST semantics, or 'emulator' "
        "for the embedded one (default); repeat for a pool",
        _host,
        "HOST",
        multiple=True,
    ),
    Option(
        "api",
        "--llm-api",
        "llm_api",
        "LLMPERF_API",
        "ollama (the /api routes, default) or openai (the /v1 routes of vLLM, llama.cpp, ...)",
        _choice("ollama", "openai"),
        "API",
    ),
    Option(
        "cache",
        "--llm-cache",
        "llm_cache",
        "LLMPERF_CACHE",
        "response cache: memory (in-process + fakeredis, default), off, or redis://HOST:PORT/DB",
        _cache,
        "CACHE",
    ),
    Option(
        "cache_ttl",
        "--llm-cache-ttl",
        "llm_cache_ttl",
        "LLMPERF_CACHE_TTL",
        "seconds a cached answer lives (0 or unset: no expiry)",
        _ttl,
        "SECONDS",
    ),
    Option(
        "cache_namespace",
        "--llm-cache-namespace",
        "llm_cache_namespace",
        "LLMPERF_CACHE_NAMESPACE",
        "prefix of the cache's Redis keys (default llmperf)",
        str,
        "NAME",
    ),
    Option(
        "tiers",
        "--llm-tier",
        "llm_tiers",
        "LLMPERF_TIERS",
        "TIER=MODEL, over the defaults fast=llama3.2:1b balanced=llama3.2:3b "
        "complex=llama3:8b (repeatable)",
        _tier,
        "TIER=MODEL",
        multiple=True,
        combine=_tiers,
    ),
    Option(
        "timeouts",
        "--llm-timeout",
        "llm_timeouts",
        "LLMPERF_TIMEOUTS",
        "a tier's limits in seconds, as 'fast: total=10 first_token=5 stall=5' (repeatable; "
        "';' between several in the environment variable)",
        _timeout,
        "SPEC",
        multiple=True,
        combine=_timeouts,
        env_separator=";",
    ),
    Option(
        "adaptive_timeouts",
        "--llm-adaptive-timeouts",
        "llm_adaptive_timeouts",
        "LLMPERF_ADAPTIVE_TIMEOUTS",
        "on (default): limits follow each model's measured latency; off: the tier's limits",
        _switch,
        "on|off",
    ),
    Option(
        "fallback",
        "--llm-fallback",
        "llm_fallback",
        "LLMPERF_FALLBACK",
        "on: retry a timed-out call on the next faster tier (default off)",
        _switch,
        "on|off",
    ),
    Option(
        "retries",
        "--llm-retries",
        "llm_retries",
        "LLMPERF_RETRIES",
        "retries of a call whose host refused it or answered 503, on another host (default 2)",
        _count(0),
        "N",
    ),
    Option(
        "concurrency",
        "--llm-concurrency",
        "llm_concurrency",
        "LLMPERF_CONCURRENCY",
        "calls in flight at once in client.many() (default 4)",
        _count(1),
        "N",
    ),
    Option(
        "max_line_bytes",
        "--llm-max-line-bytes",
        "llm_max_line_bytes",
        "LLMPERF_MAX_LINE_BYTES",
        "the longest line of a stream (or answer read whole) a client takes, as 16MiB "
        "(default) or a number of bytes; a longer one fails the call",
        _size,
        "SIZE",
    ),
    Option(
        "keep_alive",
        "--llm-keep-alive",
        "llm_keep_alive",
        "LLMPERF_KEEP_ALIVE",
        "how long the llm_warm_up fixture keeps models loaded (default 30m)",
        _duration,
        "DURATION",
    ),
    Option(
        "record_mode",
        "--llm-record-mode",
        "llm_record_mode",
        "LLMPERF_RECORD_MODE",
        "cassettes: none (replay only, default), once, new_episodes, all, or rewrite",
        _choice_of("pytest_llmperf.observe.cassettes.session", "MODES"),
        "MODE",
    ),
    Option(
        "replay_timing",
        "--llm-replay-timing",
        "llm_replay_timing",
        "LLMPERF_REPLAY_TIMING",
        "cassettes: instant (default), recorded (chunks at their recorded times), or a factor",
        _timing,
        "TIMING",
    ),
    Option(
        "cassette_dir",
        "--llm-cassette-dir",
        "llm_cassette_dir",
        "LLMPERF_CASSETTE_DIR",
        "folder of the cassettes, relative to the rootdir (default cassettes)",
        str,
        "DIR",
    ),
    Option(
        "scrub_headers",
        "--llm-scrub-header",
        "llm_scrub_headers",
        "LLMPERF_SCRUB_HEADERS",
        "a header whose value never reaches a cassette, beyond the credential defaults",
        str,
        "NAME",
        multiple=True,
    ),
    Option(
        "scrub_query",
        "--llm-scrub-query",
        "llm_scrub_query",
        "LLMPERF_SCRUB_QUERY",
        "a query parameter whose value never reaches a cassette, beyond key-like names",
        str,
        "NAME",
        multiple=True,
    ),
)
OPTIONS += (
    Option(
        "measure",
        "--llm-measure",
        "llm_measure",
        "LLMPERF_MEASURE",
        "all (default): record every LLM call the tests make, whatever client makes it; "
        "own: only the calls of the plugin's client fixtures",
        _choice("all", "own"),
        "all|own",
    ),
    Option(
        "route_prefixes",
        "--llm-route-prefix",
        "llm_route_prefixes",
        "LLMPERF_ROUTE_PREFIXES",
        "a path a proxy puts before the LLM routes (/ollama for /ollama/api/chat), so calls "
        "through it are measured too (repeatable)",
        _prefix,
        "PATH",
        multiple=True,
    ),
    Option(
        "budget_mode",
        "--llm-budget-mode",
        "llm_budget_mode",
        "LLMPERF_BUDGET_MODE",
        "enforce (a budget violation fails the test, default), warn, or off",
        _choice_of("pytest_llmperf.judge.budget", "MODES"),
        "MODE",
    ),
    Option(
        "budgets",
        "--llm-budget",
        "llm_budgets",
        "LLMPERF_BUDGETS",
        "a tier's budget for every test, as 'fast: total=2 ttft=0.5' ('*' for every tier; "
        "';' between several in the environment variable)",
        _budget_line,
        "SPEC",
        multiple=True,
        combine=_budgets,
        env_separator=";",
    ),
)
OPTIONS += (
    Option(
        "report",
        "--llm-report",
        "llm_report",
        "LLMPERF_REPORT",
        "write the validation report (JSON) here; 'off' for none (default: a timestamped file "
        "in llm_report_dir when the run made LLM calls)",
        str,
        "PATH",
    ),
    Option(
        "report_dir",
        "--llm-report-dir",
        "llm_report_dir",
        "LLMPERF_REPORT_DIR",
        "folder of the timestamped reports and latest.json, relative to the rootdir "
        "(default .llmperf, which ignores itself in git)",
        str,
        "DIR",
    ),
    Option(
        "report_keep",
        "--llm-report-keep",
        "llm_report_keep",
        "LLMPERF_REPORT_KEEP",
        "how many timestamped reports the folder keeps, the newest (default 20)",
        _count(1),
        "N",
    ),
)
OPTIONS += (
    Option(
        "baseline",
        "--llm-baseline",
        "llm_baseline",
        "LLMPERF_BASELINE",
        "compare this run with a baseline validation report and fail it on a latency "
        "regression (see llmperf compare)",
        _path,
        "PATH",
    ),
    Option(
        "baseline_threshold",
        "--llm-baseline-threshold",
        "llm_baseline_threshold",
        "LLMPERF_BASELINE_THRESHOLD",
        "smallest growth of a median or p95 that counts as a regression (default 0.1, i.e. "
        "10 percent)",
        _relative,
        "CHANGE",
    ),
    Option(
        "baseline_alpha",
        "--llm-baseline-alpha",
        "llm_baseline_alpha",
        "LLMPERF_BASELINE_ALPHA",
        "significance level of the Mann-Whitney U test on the raw calls (default 0.01)",
        _probability,
        "P",
    ),
    Option(
        "baseline_mode",
        "--llm-baseline-mode",
        "llm_baseline_mode",
        "LLMPERF_BASELINE_MODE",
        "enforce (a regression fails the run, default) or warn (it is only reported)",
        _choice("enforce", "warn"),
        "MODE",
    ),
    Option(
        "baseline_markdown",
        "--llm-baseline-markdown",
        "llm_baseline_markdown",
        "LLMPERF_BASELINE_MARKDOWN",
        "also write the comparison as Markdown here (e.g. $GITHUB_STEP_SUMMARY)",
        _path,
        "PATH",
    ),
)
OPTIONS += (
    Option(
        "block_network",
        "--llm-block-network",
        "llm_block_network",
        "LLMPERF_BLOCK_NETWORK",
        "on: every connection of the test process fails (NetworkBlockedError), but to the "
        "embedded emulator and the allowed hosts (default off)",
        _switch,
        "on|off",
    ),
    Option(
        "allowed_hosts",
        "--llm-allowed-host",
        "llm_allowed_hosts",
        "LLMPERF_ALLOWED_HOSTS",
        "a host that --llm-block-network lets through: a regular expression matched against "
        "the whole host or host:port, as 127.0.0.1 or redis:6379 (repeatable)",
        _host_pattern,
        "HOST",
        multiple=True,
    ),
)
BY_FIELD = {option.field: option for option in OPTIONS}
# Settings of the whole session (its emulator, report and baseline), which one test cannot change.
SESSION_ONLY = frozenset(
    {"emulator_profiles", "emulator_gguf", "emulator_time_scale", "report", "report_dir"}
    | {"report_keep", "enabled"}
    | {"measure", "route_prefixes", "block_network", "allowed_hosts"}
    | {field for field in BY_FIELD if field.startswith("baseline")}
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
                dest=option.dest,
                metavar=option.metavar,
                help=option.help + env,
            )
            parser.addini(option.ini, option.help, type="linelist")
        else:
            group.addoption(
                option.flag, dest=option.dest, metavar=option.metavar, help=option.help + env
            )
            parser.addini(option.ini, option.help)


def resolve(
    config: pytest.Config, environ: Mapping[str, str] | None = None, *, early: bool = False
) -> Settings:
    """Read every option from ini, then the environment, then the command line.

    ``early``: before pytest has parsed the whole command line (while it loads the first
    conftests), from the options it already knows.
    """
    environ = os.environ if environ is None else environ
    cli = config.known_args_namespace if early else config.option
    values: dict[str, Any] = {}
    for option in OPTIONS:
        for origin, raw in _sources(config, environ, option, cli):
            values[option.field] = _parse(option, raw, origin)
    return Settings(**values)


def _sources(
    config: pytest.Config, environ: Mapping[str, str], option: Option, cli: Any
) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    ini = config.getini(option.ini)
    if ini:
        found.append((f"ini option {option.ini}", ini))
    if environ.get(option.env):
        value = environ[option.env]
        found.append((f"environment variable {option.env}", _env_values(option, value)))
    given = getattr(cli, option.dest, None)
    if given:
        found.append((f"command-line option {option.flag}", given))
    return found


def _env_values(option: Option, value: str) -> Any:
    if not option.multiple:
        return value
    if option.env_separator is None:
        return value.split()
    return [part.strip() for part in value.split(option.env_separator) if part.strip()]


def _parse(option: Option, raw: Any, origin: str) -> Any:
    if option.multiple:
        values = tuple(_parse_one(option, item, origin) for item in raw)
        return option.combine(values) if option.combine else values
    return _parse_one(option, raw, origin)


def _parse_one(option: Option, raw: str, origin: str) -> Any:
    try:
        return option.parse(raw)
    except ValueError as exc:
        raise pytest.UsageError(f"invalid value {raw!r} for {origin}: {exc}") from None


def with_marker(settings: Settings, overrides: Mapping[str, Any], where: str) -> Settings:
    """``settings`` with a ``llm_settings`` marker's keyword arguments applied.

    A value may be given as the option's text (parsed as on the command line) or as the
    field's own type; a wrong name or value raises :class:`ValueError` naming it.
    """
    known = sorted(f.name for f in fields(Settings) if f.name not in SESSION_ONLY)
    changes: dict[str, Any] = {}
    for name, value in overrides.items():
        if name in SESSION_ONLY:
            raise ValueError(
                f"{where}: {name} belongs to the whole session (the emulator is shared); set it "
                f"with {BY_FIELD[name].flag} or the {BY_FIELD[name].ini} ini option"
            )
        if name not in known:
            raise ValueError(
                f"{where}: unknown setting {name!r}; a marker can set {', '.join(known)}"
            )
        option = BY_FIELD[name]
        origin = f"{where}, argument {name}"
        if option.multiple:
            if not isinstance(value, (str, list, tuple)):
                raise ValueError(
                    f"invalid value {value!r} for {origin}: give a string or a list of strings "
                    f"(as {option.metavar})"
                )
            items = [value] if isinstance(value, str) else list(value)
            changes[name] = _parse_marker(option, [str(item) for item in items], origin)
        else:
            if not isinstance(value, (str, int, float, bool, type(None))):
                raise ValueError(
                    f"invalid value {value!r} for {origin}: give a string, a number or a bool "
                    f"(as {option.metavar})"
                )
            changes[name] = _parse_marker(option, _text(value), origin)
    return replace(settings, **changes)


def _parse_marker(option: Option, raw: Any, origin: str) -> Any:
    try:
        return _parse(option, raw, origin)
    except pytest.UsageError as exc:
        raise ValueError(str(exc)) from None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return ""
    return str(value)
