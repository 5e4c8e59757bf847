"""One settings object, resolved in one place: ini < environment < command line < marker.

Every option has an ini key, an environment variable and a command-line flag, all three
spelt from its :class:`Settings` field by one rule: the ini key ``llm_<field>``, the
environment variable ``LLMPERF_<FIELD>``, the flag ``--llm-<field>`` with ``-`` for ``_``,
where a repeatable option's flag names one value (the singular of the field's last word:
``hosts`` is ``--llm-host``, ``route_prefixes`` ``--llm-route-prefix``). A spelling of before
the rule (:data:`MOVED`) is still read, with a deprecation warning naming the new one. A bad
value is a :class:`pytest.UsageError` that names the value, where it came from, and what is
allowed. ``@pytest.mark.llm_settings(field=value, ...)`` overrides fields for one test.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

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
    """One setting: its field (which spells its ini key, environment variable and flag; see
    the module), its parser and its help text."""

    field: str
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
    def ini(self) -> str:
        """The ini key: ``llm_<field>``."""
        return f"llm_{self.field}"

    @property
    def env(self) -> str:
        """The environment variable: ``LLMPERF_<FIELD>``."""
        return f"LLMPERF_{self.field.upper()}"

    @property
    def flag(self) -> str:
        """The command-line flag: ``--llm-<field>``, naming one value if it repeats."""
        words = self.field.split("_")
        if self.multiple:
            words[-1] = singular(words[-1])
        return "--llm-" + "-".join(words)

    @property
    def dest(self) -> str:
        """Where argparse keeps the flag's value: prefixed, for other plugins have options
        of the same names (pytest-recording's --record-mode, --block-network, ...)."""
        return f"llm_{self.field}"


def singular(word: str) -> str:
    """``word`` naming one thing: its final ``s`` dropped (``es`` after x, ch, sh or ss);
    a word that does not end in ``s`` (``gguf``, ``query``) is one already."""
    if word.endswith(("xes", "ches", "shes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@dataclass(frozen=True)
class Moved:
    """A spelling of before the one rule: still read for now, with a deprecation warning."""

    field: str
    kind: str  # "ini" (a key of the ini file) or "env" (an environment variable)
    old: str

    @property
    def new(self) -> str:
        option = BY_FIELD[self.field]
        return option.ini if self.kind == "ini" else option.env

    @property
    def what(self) -> str:
        return "ini option" if self.kind == "ini" else "environment variable"


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
        "off: the plugin does nothing in this run (no measuring, budgets, report, gate or "
        "cassette marker); its markers and ini keys stay known, for --strict-markers and "
        "--strict-config (which -p no:llmperf breaks)",
        _switch,
        "on|off",
    ),
    Option(
        "emulator_profiles",
        "latency profile file (TOML) for the ollama_emulator fixture; default: the shipped one",
        _path,
        "FILE",
    ),
    Option(
        "emulator_gguf",
        "NAME=PATH of a GGUF model the emulator serves through llama.cpp (repeatable)",
        _gguf,
        "NAME=PATH",
        multiple=True,
    ),
    Option(
        "emulator_time_scale",
        "multiply every emulated delay by this factor (0.01: 100x faster than the profiles)",
        _scale,
        "FACTOR",
    ),
    Option(
        "hosts",
        "the LLM server the client fixtures call, with OLLAMA_HOST semantics, or 'emulator' "
        "for the embedded one (default); repeat for a pool",
        _host,
        "HOST",
        multiple=True,
    ),
    Option(
        "api",
        "ollama (the /api routes, default) or openai (the /v1 routes of vLLM, llama.cpp, ...)",
        _choice("ollama", "openai"),
        "API",
    ),
    Option(
        "cache",
        "response cache: memory (in-process + fakeredis, default), off, or redis://HOST:PORT/DB",
        _cache,
        "CACHE",
    ),
    Option(
        "cache_ttl",
        "seconds a cached answer lives (0 or unset: no expiry)",
        _ttl,
        "SECONDS",
    ),
    Option(
        "cache_namespace",
        "prefix of the cache's Redis keys (default llmperf)",
        str,
        "NAME",
    ),
    Option(
        "tiers",
        "TIER=MODEL, over the defaults fast=llama3.2:1b balanced=llama3.2:3b "
        "complex=llama3:8b (repeatable)",
        _tier,
        "TIER=MODEL",
        multiple=True,
        combine=_tiers,
    ),
    Option(
        "timeouts",
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
        "on (default): limits follow each model's measured latency; off: the tier's limits",
        _switch,
        "on|off",
    ),
    Option(
        "fallback",
        "on: retry a timed-out call on the next faster tier (default off)",
        _switch,
        "on|off",
    ),
    Option(
        "retries",
        "retries of a call whose host refused it or answered 503, on another host (default 2)",
        _count(0),
        "N",
    ),
    Option(
        "concurrency",
        "calls in flight at once in client.many() (default 4)",
        _count(1),
        "N",
    ),
    Option(
        "max_line_bytes",
        "the longest line of a stream (or answer read whole) a client takes, as 16MiB "
        "(default) or a number of bytes; a longer one fails the call",
        _size,
        "SIZE",
    ),
    Option(
        "keep_alive",
        "how long the llm_warm_up fixture keeps models loaded (default 30m)",
        _duration,
        "DURATION",
    ),
    Option(
        "record_mode",
        "cassettes: none (replay only, default), once, new_episodes, all, or rewrite",
        _choice_of("pytest_llmperf.observe.cassettes.session", "MODES"),
        "MODE",
    ),
    Option(
        "replay_timing",
        "cassettes: instant (default), recorded (chunks at their recorded times), or a factor",
        _timing,
        "TIMING",
    ),
    Option(
        "cassette_dir",
        "folder of the cassettes, relative to the rootdir (default cassettes)",
        str,
        "DIR",
    ),
    Option(
        "scrub_headers",
        "a header whose value never reaches a cassette, beyond the credential defaults",
        str,
        "NAME",
        multiple=True,
    ),
    Option(
        "scrub_query",
        "a query parameter whose value never reaches a cassette, beyond key-like names",
        str,
        "NAME",
        multiple=True,
    ),
)
OPTIONS += (
    Option(
        "measure",
        "all (default): record every LLM call the tests make, whatever client makes it; "
        "own: only the calls of the plugin's client fixtures",
        _choice("all", "own"),
        "all|own",
    ),
    Option(
        "route_prefixes",
        "a path a proxy puts before the LLM routes (/ollama for /ollama/api/chat), so calls "
        "through it are measured too (repeatable)",
        _prefix,
        "PATH",
        multiple=True,
    ),
    Option(
        "budget_mode",
        "enforce (a budget violation fails the test, default), warn, or off",
        _choice_of("pytest_llmperf.judge.budget", "MODES"),
        "MODE",
    ),
    Option(
        "budgets",
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
        "write the validation report (JSON) here; 'off' for none (default: a timestamped file "
        "in llm_report_dir when the run made LLM calls)",
        str,
        "PATH",
    ),
    Option(
        "report_dir",
        "folder of the timestamped reports and latest.json, relative to the rootdir "
        "(default .llmperf, which ignores itself in git)",
        str,
        "DIR",
    ),
    Option(
        "report_keep",
        "how many timestamped reports the folder keeps, the newest (default 20)",
        _count(1),
        "N",
    ),
)
OPTIONS += (
    Option(
        "baseline",
        "compare this run with a baseline validation report and fail it on a latency "
        "regression (see llmperf compare)",
        _path,
        "PATH",
    ),
    Option(
        "baseline_threshold",
        "smallest growth of a median or p95 that counts as a regression (default 0.1, i.e. "
        "10 percent)",
        _relative,
        "CHANGE",
    ),
    Option(
        "baseline_alpha",
        "significance level of the Mann-Whitney U test on the raw calls (default 0.01)",
        _probability,
        "P",
    ),
    Option(
        "baseline_mode",
        "enforce (a regression fails the run, default) or warn (it is only reported)",
        _choice("enforce", "warn"),
        "MODE",
    ),
    Option(
        "baseline_markdown",
        "also write the comparison as Markdown here (e.g. $GITHUB_STEP_SUMMARY)",
        _path,
        "PATH",
    ),
)
OPTIONS += (
    Option(
        "block_network",
        "on: every connection of the test process fails (NetworkBlockedError), but to the "
        "embedded emulator and the allowed hosts (default off)",
        _switch,
        "on|off",
    ),
    Option(
        "allowed_hosts",
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


# The spellings of before the one rule, each still read for now (a deprecation warning names
# the new one); the README's "What moved" lists them.
MOVED: tuple[Moved, ...] = (
    Moved("hosts", "ini", "llm_host"),
    Moved("hosts", "env", "LLMPERF_HOST"),
)
_MOVED = {(moved.field, moved.kind): moved for moved in MOVED}
# Every ini key registered, the old ones too, and its option.
INI_KEYS = {option.ini: option for option in OPTIONS} | {
    moved.old: BY_FIELD[moved.field] for moved in MOVED if moved.kind == "ini"
}


def add_options(parser: pytest.Parser) -> None:
    """Register every option's flag and ini key (and the old ini keys, for --strict-config)."""
    group = parser.getgroup("llmperf", "LLM performance testing (pytest-llmperf)")
    for option in OPTIONS:
        env = f" [env {option.env}]"
        kind: Literal["linelist"] | None = "linelist" if option.multiple else None
        if option.multiple:
            group.addoption(
                option.flag,
                action="append",
                dest=option.dest,
                metavar=option.metavar,
                help=option.help + env,
            )
        else:
            group.addoption(
                option.flag, dest=option.dest, metavar=option.metavar, help=option.help + env
            )
        parser.addini(option.ini, option.help, type=kind)
        moved = _MOVED.get((option.field, "ini"))
        if moved is not None:
            parser.addini(moved.old, f"deprecated: the old spelling of {option.ini}", type=kind)


def resolve(
    config: pytest.Config, environ: Mapping[str, str] | None = None, *, early: bool = False
) -> Settings:
    """Read every option from ini, then the environment, then the command line.

    ``early``: before pytest has parsed the whole command line (while it loads the first
    conftests), from the options it already knows; the old spellings' deprecation warnings
    come from the later, whole reading.
    """
    environ = os.environ if environ is None else environ
    cli = config.known_args_namespace if early else config.option
    values: dict[str, Any] = {}
    notes: list[str] = []
    for option in OPTIONS:
        for origin, raw in _sources(config, environ, option, cli, notes):
            values[option.field] = _parse(option, raw, origin)
    if notes and not early:
        _deprecated(config, notes)
    return Settings(**values)


def _sources(
    config: pytest.Config, environ: Mapping[str, str], option: Option, cli: Any, notes: list[str]
) -> list[tuple[str, Any]]:
    """Where ``option`` is given, in the order they apply; a moved spelling's use goes into
    ``notes`` (it applies only where its new spelling is not given)."""
    found: list[tuple[str, Any]] = []
    for kind, new in (("ini", option.ini), ("env", option.env)):
        value = _read(config, environ, kind, new)
        moved = _MOVED.get((option.field, kind))
        old = None if moved is None else _read(config, environ, kind, moved.old)
        if moved is not None and old:
            notes.append(_moved_note(moved, ignored=bool(value)))
            if not value:
                found.append((f"{moved.what} {moved.old}", _raw(option, kind, old)))
        if value:
            found.append((f"{_WHAT[kind]} {new}", _raw(option, kind, value)))
    given = getattr(cli, option.dest, None)
    if given:
        found.append((f"command-line option {option.flag}", given))
    return found


_WHAT = {"ini": "ini option", "env": "environment variable"}


def _read(config: pytest.Config, environ: Mapping[str, str], kind: str, name: str) -> Any:
    return config.getini(name) if kind == "ini" else environ.get(name)


def _raw(option: Option, kind: str, value: Any) -> Any:
    return value if kind == "ini" else _env_values(option, value)


def _moved_note(moved: Moved, *, ignored: bool) -> str:
    if ignored:
        return (
            f"{moved.what} {moved.old} is ignored: {moved.new} is set too, and wins "
            f"({moved.old} is its old spelling); remove {moved.old}"
        )
    return (
        f"{moved.what} {moved.old} is deprecated: rename it {moved.new} (every option is "
        f"spelt llm_<field>, LLMPERF_<FIELD> and --llm-<field>: the README of "
        f"pytest-llmperf says what moved). {moved.old} is still read for now"
    )


def _deprecated(config: pytest.Config, notes: list[str]) -> None:
    """Warn of each moved spelling used, once a run (in an xdist worker: its controller does).

    pytest's config-time warnings obey ``-W`` and ``filterwarnings``; where they make this
    one an error, the run stops with a usage error that says so, not a traceback.
    """
    if hasattr(config, "workerinput"):
        return
    for note in notes:
        try:
            config.issue_config_time_warning(pytest.PytestDeprecationWarning(note), stacklevel=2)
        except pytest.PytestDeprecationWarning:
            raise pytest.UsageError(
                f"{note}. This deprecation warning is an error here (-W or filterwarnings "
                "make it one): rename the option, or let the warning pass with "
                "-W 'ignore::pytest.PytestDeprecationWarning'"
            ) from None


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
