"""What the bundled scenarios share: the target, budgets scaled to it, progress, the report.

``llmperf validate`` runs this suite in a subprocess through our own plugin with
``--llm-host`` (the first target), ``--llm-tier`` and ``--llm-report``, and the options
below. Budgets are written for real time (``scenario_budget(total=2.0)``) and scaled by
``--validate-time-scale`` to the target's (an emulator 10x faster has budgets 10x tighter).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
import pytest

from pytest_llmperf.client.tiers import ORDER, Tiers
from pytest_llmperf.emulator.faults import FAULT_HEADER
from pytest_llmperf.emulator.profiles import normalize_model_name
from pytest_llmperf.judge.budget import SECONDS
from pytest_llmperf.observe.point import not_measured
from pytest_llmperf.plugin.hooks import SETTINGS_KEY
from pytest_llmperf.plugin.settings import Settings
from pytest_llmperf.validate import scenarios as _scenarios

FLOOR_S = 0.2  # a seconds budget scaled below this would judge the loopback, not the model
PROBE_STATUS = 555  # only the llmperf emulator answers a request with the status it asked for
STATE_KEY = pytest.StashKey["Validation"]()
# The tool the scenarios (and the conformance tests of this project) offer a chat.
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmperf-validate", "llmperf validate's scenarios")
    group.addoption("--validate-target", action="append", default=[], metavar="URL")
    group.addoption("--validate-kind", default="url", choices=["emulator", "url"])
    group.addoption("--validate-time-scale", type=float, default=1.0, metavar="X")
    group.addoption("--validate-real-model", action="append", default=[], metavar="MODEL")
    group.addoption("--validate-num-parallel", type=int, default=None, metavar="N")
    group.addoption("--validate-progress-fd", type=int, default=None, metavar="FD")


@dataclass
class Target:
    """The server under validation, as the scenarios need it."""

    hosts: list[str]
    kind: str
    time_scale: float
    tiers: Tiers
    real_models: set[str]
    num_parallel: int | None
    models: set[str] = field(default_factory=set)  # what /api/tags lists
    shows: dict[str, dict[str, Any]] = field(default_factory=dict)  # /api/show per tier model
    fault_injection: bool = False

    @property
    def url(self) -> str:
        return self.hosts[0]

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def model(self, tier: str) -> str:
        return self.tiers.model(tier)

    def has(self, model: str) -> bool:
        return normalize_model_name(model) in self.models

    def is_real(self, tier: str) -> bool:
        """The tier's model is a real one that the embedded emulator serves through llama.cpp."""
        return normalize_model_name(self.model(tier)) in self.real_models

    def need(self, *tiers: str) -> None:
        """Skip the scenario when a tier's model is missing (the architecture group says so)."""
        missing = [self.model(t) for t in tiers if not self.has(self.model(t))]
        if missing:
            pytest.skip(f"needs {', '.join(missing)}, which the server does not have")

    def capabilities(self, tier: str) -> list[str] | None:
        shown = self.shows.get(self.model(tier))
        caps = shown.get("capabilities") if shown else None
        return [str(c) for c in caps] if isinstance(caps, list) else None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "hosts": self.hosts,
            "time_scale": self.time_scale,
            "tiers": dict(self.tiers.models),
            "real_models": sorted(self.real_models),
            "num_parallel": self.num_parallel,
            "fault_injection": self.fault_injection,
        }


class Validation:
    """The run's scenarios, their outcomes and what they measured (a plugin object)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.scale = float(config.getoption("validate_time_scale"))
        self.items: dict[str, _scenarios.Scenario] = {}
        self.target: Target | None = None
        fd = config.getoption("validate_progress_fd")
        self.progress: IO[str] | None = os.fdopen(fd, "w", buffering=1) if fd else None

    def emit(self, **event: Any) -> None:
        if self.progress is not None:
            self.progress.write(json.dumps(event) + "\n")

    def budget(self, marker: pytest.Mark, item: pytest.Item) -> dict[str, Any]:
        """A ``scenario_budget`` in the target's time: seconds times the scale (floored at
        :data:`FLOOR_S` unless ``tight``), tokens/s over it, counts as they are.

        A real model (``--validate-real-model``) runs in real time: a scenario on its tier
        (``tier=``, or the test's ``tier`` parameter, default ``fast``) keeps real budgets.
        """
        limits = dict(marker.kwargs)
        tight = bool(limits.pop("tight", False))
        spec = getattr(item, "callspec", None)
        tier = str(
            limits.pop("tier", None) or (spec.params.get("tier") if spec else None) or "fast"
        )
        scale = 1.0 if self.real(tier) else self.scale
        out: dict[str, Any] = {}
        for name, value in limits.items():
            if name in SECONDS:
                scaled = float(value) * scale
                out[name] = scaled if tight else max(scaled, min(FLOOR_S, float(value)))
            elif name == "tokens_per_s":
                out[name] = float(value) / scale
            else:
                out[name] = value
        return out

    def real(self, tier: str) -> bool:
        """Whether the tier's model (from ``--llm-tier``) is served by llama.cpp."""
        real = {normalize_model_name(m) for m in self.config.getoption("validate_real_model")}
        tiers = self.config.stash[SETTINGS_KEY].tiers
        return tier in tiers.models and normalize_model_name(tiers.model(tier)) in real

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("scenario_budget")
            budget = self.budget(marker, item) if marker is not None else None
            if budget:
                item.add_marker(pytest.mark.llm_budget(**budget))
            function = getattr(item, "function", None)
            self.items[item.nodeid] = _scenarios.Scenario(
                nodeid=item.nodeid,
                group=_scenarios.group_of(item.nodeid),
                title=_scenarios.title_of(getattr(function, "__doc__", None), item.name)
                + _parameters(item),
                budget=budget,
                evidence=item.get_closest_marker("scenario_injects_faults") is None,
            )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.emit(event="collected", count=len(session.items))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        scenario = self.items.get(report.nodeid)
        if scenario is None:
            return
        found = _scenarios.outcome(
            report.when, report.passed, report.skipped, report.failed, hasattr(report, "wasxfail")
        )
        if found is not None:
            scenario.outcome = _scenarios.merge(scenario.outcome, found)
            if report.failed or report.skipped:
                scenario.message = _message(report)
        scenario.duration_s += report.duration
        if report.when == "teardown":  # its reports each carry every property so far
            for name, value in report.user_properties:
                if name == _scenarios.MEASURED and isinstance(value, dict):
                    scenario.measured.update(value)
                elif name == _scenarios.OPTIMIZATION and isinstance(value, dict):
                    scenario.optimizations.append(value)
            self.emit(
                event="done",
                nodeid=scenario.nodeid,
                group=scenario.group,
                title=scenario.title,
                outcome=scenario.outcome,
                duration_s=scenario.duration_s,
                message=scenario.message,
            )

    def pytest_llmperf_report(self, report: dict[str, Any], config: pytest.Config) -> None:
        """The scenarios, the optimization table and the server's models join the report;
        the recommendations are made again with the server section, from the scenarios
        whose calls are evidence (not the ones that injected faults on purpose)."""
        from pytest_llmperf.judge.recommend import recommend

        items = list(self.items.values())
        target = self.target.describe() if self.target else {"hosts": [], "kind": "url"}
        report["scenarios"] = _scenarios.section(target, items)
        report["optimizations"] = _scenarios.optimizations(items)
        server = _server_section(self.target) if self.target else None
        if server is not None:
            report["server"] = server
        evidence = {s.nodeid for s in items if s.evidence}
        tests = [t for t in report["tests"] if t["nodeid"] in evidence]
        found = recommend(tests, run=report["run"], server=server)
        # validate measures live calls on purpose, as a baseline-gated run does
        found = [r for r in found if r["id"] != "live-calls-in-ci"]
        for item in found:
            if item["id"] == "no-baseline":
                item["message"] += (
                    "; with llmperf validate: keep a good run's llm_dev_validation_*.json and "
                    "pass it as --baseline FILE"
                )
        report["recommendations"] = _scenarios.with_scenarios(found, items)

    def pytest_unconfigure(self) -> None:
        if self.progress is not None:
            self.progress.close()


def _parameters(item: pytest.Item) -> str:
    spec = getattr(item, "callspec", None)
    if spec is None:
        return ""
    return " (" + ", ".join(str(v) for v in spec.params.values()) + ")"


def _message(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = getattr(report, "wasxfail", "") if report.skipped else ""
    if text:
        return f"expected to fail: {text}"
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).removeprefix("Failed: ")
    return report.longreprtext.strip().splitlines()[-1] if report.longreprtext else ""


def _server_section(target: Target) -> dict[str, Any] | None:
    from pytest_llmperf.observe.server import from_api

    try:
        with not_measured(), httpx.Client(base_url=target.url, timeout=10) as http:
            ps = http.get("/api/ps").raise_for_status().json()
            shows = {
                str(m["name"]): http.post("/api/show", json={"model": m["name"]}).json()
                for m in ps.get("models") or ()
                if isinstance(m, dict) and m.get("name")
            }
    except (httpx.HTTPError, ValueError):
        return None
    return from_api(ps, shows, num_parallel=target.num_parallel)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scenario_budget(tight=False, **limits): the scenario's llm_budget in real time, "
        "scaled to the target's",
    )
    config.addinivalue_line(
        "markers",
        "scenario_injects_faults: the scenario provokes failures on purpose (faults, limits "
        "set to be missed): its calls are no evidence for recommendations",
    )
    config.stash[STATE_KEY] = state = Validation(config)
    config.pluginmanager.register(state, "llmperf-validate")


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config, llm_settings: Settings) -> Target:
    """The server under validation: its hosts, its models, whether it takes injected faults."""
    hosts = list(pytestconfig.getoption("validate_target")) or list(llm_settings.hosts)
    made = Target(
        hosts=hosts,
        kind=str(pytestconfig.getoption("validate_kind")),
        time_scale=float(pytestconfig.getoption("validate_time_scale")),
        tiers=llm_settings.tiers,
        real_models={
            normalize_model_name(m) for m in pytestconfig.getoption("validate_real_model")
        },
        num_parallel=pytestconfig.getoption("validate_num_parallel"),
    )
    pytestconfig.stash[STATE_KEY].target = made
    # finding out about the target is no scenario's call, nor the session's
    with not_measured(), httpx.Client(base_url=made.url, timeout=30) as http:
        try:
            tags = http.get("/api/tags").json()
        except (httpx.HTTPError, ValueError):
            return made  # the architecture group says what is wrong
        made.models = {
            normalize_model_name(str(m.get("name") or m.get("model")))
            for m in tags.get("models") or ()
            if isinstance(m, dict)
        }
        for tier in ORDER:
            model = made.model(tier)
            if made.has(model):
                shown = http.post("/api/show", json={"model": model})
                made.shows[model] = shown.json() if shown.status_code == 200 else {}
        made.fault_injection = _takes_faults(http, made)
    return made


def _takes_faults(http: httpx.Client, target: Target) -> bool:
    """Whether the target honours ``X-Llmperf-Fault`` (the llmperf emulator does): a request
    that asks for an unusual status gets it. Elsewhere it is an unload of a loaded model."""
    model = target.model("fast")
    if not target.has(model):
        return False
    answer = http.post(
        "/api/generate",
        json={"model": model, "keep_alive": 0},
        headers={FAULT_HEADER: f"status={PROBE_STATUS}"},
    )
    return answer.status_code == PROBE_STATUS


@pytest.fixture(scope="session", autouse=True)
def _warm(target: Target) -> None:
    """Every tier's model that the server has, loaded once before the scenarios, as a
    well-kept suite does (a scenario that measures a cold model unloads it first)."""
    from pytest_llmperf import OllamaClient

    models = [target.model(t) for t in ORDER if target.has(target.model(t))]
    with not_measured(), OllamaClient(target.url, tiers=target.tiers) as client:
        client.warm_up(models)


class Measured:
    """What a scenario measured, for the report: figures, and optimizations' before/after."""

    def __init__(self, node: pytest.Item) -> None:
        self._node = node

    def record(self, **figures: Any) -> None:
        self._node.user_properties.append((_scenarios.MEASURED, figures))

    def optimization(self, name: str, before_s: float, after_s: float, **detail: Any) -> None:
        row = {"optimization": name, "before_s": before_s, "after_s": after_s, **detail}
        self._node.user_properties.append((_scenarios.OPTIMIZATION, row))


@pytest.fixture
def measured(request: pytest.FixtureRequest) -> Measured:
    return Measured(request.node)


@pytest.fixture
def http(target: Target) -> Iterator[httpx.Client]:
    """A plain httpx client on the main host, for the API's shapes."""
    with httpx.Client(base_url=target.url, timeout=60) as client:
        yield client
