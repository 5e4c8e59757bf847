"""The validation report as one HTML page that needs no network: ``llmperf report --html``.

The charts are plotly's (the ``html`` extra); plotly.js is written into the page itself, so
the file opens offline, from a CI artifact or from a mail. The page reads the report alone:
the run's summary, each model's latency (total and time to first token), time to first
token against total time, cold calls (the server loaded the model) against warm ones and
cache hits, each test's slowest call against its budget, the recommendations with their
evidence, the calls made outside any test and, when ``llmperf validate`` measured them, the
optimizations' before and after.

The charts show the calls that got an answer (``outcome == "ok"``) made by the code under
test (``purpose == "call"``); failed calls are counted in the tables, warm-ups and unloads
are left out, as in the report's per-model statistics.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.files import write_atomically
from pytest_llmperf.judge import gate
from pytest_llmperf.judge.budget import SECONDS

COLD_LOAD_S = 0.03  # above a loaded model's few ms of load_duration, below any real load
MAX_BUDGET_ROWS = 40  # tests in the budget chart: every one over budget, then the slowest
INSTALL = "pip install 'pytest-llmperf[html]'"
NEEDS_PLOTLY = f"the HTML page draws its charts with plotly, which is not installed: {INSTALL}"
SECTIONS = ("run", "summary", "models")  # what the page reads beside the tests
SESSION = "(outside any test)"
COLD, WARM, HIT = "cold", "warm", "cache hit"
_STATE_COLOURS = {COLD: "#d62728", WARM: "#1f77b4", HIT: "#2ca02c"}


def plotly() -> Any:
    """plotly's ``graph_objects`` module, or a ConfigurationError naming the extra."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ConfigurationError(NEEDS_PLOTLY) from None
    return go


def load(path: Path) -> dict[str, Any]:
    """A validation report read back and checked, as :func:`gate.load` does, and for the
    sections the page reads besides."""
    data = gate.load(path, "validation")
    for name in SECTIONS:
        if not isinstance(data.get(name), dict):
            raise ConfigurationError(
                f"the validation report {path} is damaged: it has no {name!r} object; make one "
                f"with `pytest --llm-report {path}`"
            )
    return data


def write(path: Path, page: str) -> None:
    """Write the page atomically (readable by all, as a page is); a path that cannot be
    written is a ConfigurationError. Only a regular file is replaced."""
    try:
        write_atomically(path, page, mode=0o644)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write the HTML page to {path}: {exc.strerror or exc}; choose a writable "
            "path with --html PATH"
        ) from None


# --- the calls the charts draw ------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One measured call, as the charts need it."""

    test: str
    model: str
    total_s: float
    ttft_s: float | None
    load_s: float
    cache_hit: bool
    outcome: str

    @property
    def state(self) -> str:
        """``cold`` when the server spent more than :data:`COLD_LOAD_S` loading the model;
        a cache hit loaded nothing, whatever load time its stored answer carries."""
        if self.cache_hit:
            return HIT
        return COLD if self.load_s > COLD_LOAD_S else WARM


def calls(report: Mapping[str, Any]) -> list[Call]:
    """Every call of the code under test, in the tests and outside them."""
    found = [(test["nodeid"], call) for test in report["tests"] for call in test["calls"]]
    found += [(SESSION, call) for call in (report.get("session") or {}).get("calls", ())]
    return [_call(test, call) for test, call in found if call.get("purpose", "call") == "call"]


def _call(test: str, call: Mapping[str, Any]) -> Call:
    ttft = call.get("ttft_s")
    return Call(
        test=test,
        model=str(call["model"]),
        total_s=float(call["total_s"]),
        ttft_s=None if ttft is None else float(ttft),
        load_s=float((call.get("server") or {}).get("load_s") or 0.0),
        cache_hit=bool(call.get("cache_hit")),
        outcome=str(call.get("outcome", "ok")),
    )


# --- the charts ---------------------------------------------------------------------------


def _layout(title: str, x: str, y: str, **more: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.01, "xanchor": "left"},
        "xaxis": {"title": {"text": x}, "automargin": True},
        "yaxis": {"title": {"text": y}, "automargin": True},
        "template": "plotly_white",
        "height": 420,
        "margin": {"t": 60, "r": 20, "b": 60, "l": 60},
        "legend": {"orientation": "h", "y": -0.2},
        **more,
    }


def latency_figure(go: Any, answered: Sequence[Call]) -> Any:
    """Each model's total time and time to first token, as boxes over every call."""
    traces = [
        go.Box(
            name=label,
            x=[_plain(c.model) for c in answered if value(c) is not None],
            y=[value(c) for c in answered if value(c) is not None],
            text=[_plain(c.test) for c in answered if value(c) is not None],
            boxpoints="all",
            jitter=0.4,
            pointpos=0,
            marker={"size": 5, "opacity": 0.7},
            hovertemplate="%{x}<br>%{y:.3f} s<br>%{text}<extra>" + label + "</extra>",
        )
        for label, value in (("total", _total), ("time to first token", _ttft))
    ]
    layout = _layout("Latency per call, by model", "model", "seconds", boxmode="group")
    layout["xaxis"]["categoryorder"] = "category ascending"
    return go.Figure(data=traces, layout=layout)


def _total(call: Call) -> float | None:
    return call.total_s


def _ttft(call: Call) -> float | None:
    return call.ttft_s


def scatter_figure(go: Any, answered: Sequence[Call]) -> Any:
    """Time to first token against total time, a colour per model, with the diagonal where
    the first token came with the last (a whole answer, or a stream's single chunk)."""
    timed = [c for c in answered if c.ttft_s is not None]
    traces = [
        go.Scatter(
            name=_plain(model),
            x=[c.total_s for c in timed if c.model == model],
            y=[c.ttft_s for c in timed if c.model == model],
            text=[_plain(c.test) for c in timed if c.model == model],
            mode="markers",
            marker={"size": 8, "opacity": 0.8},
            hovertemplate="total %{x:.3f} s<br>TTFT %{y:.3f} s<br>%{text}<extra>%{fullData.name}"
            "</extra>",
        )
        for model in sorted({c.model for c in timed})
    ]
    top = max((c.total_s for c in timed), default=1.0)
    traces.append(
        go.Scatter(
            name="first token = last",
            x=[0, top],
            y=[0, top],
            mode="lines",
            line={"dash": "dot", "color": "#999"},
            hoverinfo="skip",
        )
    )
    layout = _layout(
        "Time to first token against total time", "total time (s)", "time to first token (s)"
    )
    return go.Figure(data=traces, layout=layout)


def cold_warm_figure(go: Any, answered: Sequence[Call]) -> Any:
    """Each model's total time, split into cold calls, warm calls and cache hits."""
    traces = [
        go.Box(
            name=f"{state} ({sum(1 for c in answered if c.state == state)})",
            x=[_plain(c.model) for c in answered if c.state == state],
            y=[c.total_s for c in answered if c.state == state],
            text=[
                f"{_plain(c.test)}<br>load {c.load_s:.3f} s" for c in answered if c.state == state
            ],
            boxpoints="all",
            jitter=0.4,
            pointpos=0,
            marker={"size": 5, "color": _STATE_COLOURS[state]},
            line={"color": _STATE_COLOURS[state]},
            hovertemplate="%{x}<br>total %{y:.3f} s<br>%{text}<extra>" + state + "</extra>",
        )
        for state in (COLD, WARM, HIT)
        if any(c.state == state for c in answered)
    ]
    layout = _layout("Cold against warm calls", "model", "total time (s)", boxmode="group")
    layout["xaxis"]["categoryorder"] = "category ascending"
    return go.Figure(data=traces, layout=layout)


@dataclass(frozen=True)
class _Row:
    label: str
    nodeid: str
    slowest: float
    calls: int
    violations: list[Mapping[str, Any]]


def budget_rows(report: Mapping[str, Any]) -> tuple[list[_Row], int]:
    """The tests the budget chart shows (over budget first, then the slowest), and how many
    tests made calls."""
    tests = [t for t in report["tests"] if _answered(t["calls"])]
    labels = short_names([t["nodeid"] for t in tests])
    rows = [
        _Row(
            labels[t["nodeid"]],
            t["nodeid"],
            max(c.total_s for c in _answered(t["calls"])),
            len(t["calls"]),
            t["violations"],
        )
        for t in tests
    ]
    rows.sort(key=lambda r: (not r.violations, -r.slowest))
    return rows[:MAX_BUDGET_ROWS], len(rows)


def _answered(raw: Iterable[Mapping[str, Any]]) -> list[Call]:
    made = (_call("", c) for c in raw if c.get("purpose", "call") == "call")
    return [c for c in made if c.outcome == "ok"]


# The marks on each violated time budget's line: its trace name, the violation's figure it
# marks, the marker (symbol, size, line width), its hover text and the hover's extra part.
_BUDGET_MARKS: tuple[tuple[str, str, tuple[str, int, int], Callable[[Any], str], str], ...] = (
    (
        "budget limit",
        "limit",
        ("line-ns-open", 22, 3),
        lambda v: _plain(v.get("message", "")),
        "%{fullData.name}",
    ),
    (
        "measured against it",
        "measured",
        ("circle-open", 10, 2),
        lambda v: f"{v['budget']} budget",
        "",
    ),
)


def budget_figure(go: Any, rows: Sequence[_Row]) -> Any:
    """Each test's slowest call as a bar, red where the test went over a budget, with each
    violated time budget's limit (a bar) and what was measured against it (a circle)."""
    shown = list(reversed(rows))  # plotly draws the first category at the bottom
    over = [(r, v) for r in shown for v in r.violations if v.get("budget") in SECONDS]
    traces = [
        go.Bar(
            name="slowest call",
            orientation="h",
            y=[_plain(r.label) for r in shown],
            x=[r.slowest for r in shown],
            marker={"color": ["#d62728" if r.violations else "#9ecae1" for r in shown]},
            customdata=[[_plain(r.nodeid), r.calls, len(r.violations)] for r in shown],
            hovertemplate="%{customdata[0]}<br>slowest call %{x:.3f} s of %{customdata[1]} "
            "calls<br>%{customdata[2]} budget violations<extra></extra>",
        ),
    ]
    for name, key, (symbol, size, width), text, extra in _BUDGET_MARKS:
        traces.append(
            go.Scatter(
                name=name,
                mode="markers",
                y=[_plain(r.label) for r, _ in over],
                x=[float(v[key]) for _, v in over],
                marker={"symbol": symbol, "size": size, "color": "#000", "line": {"width": width}},
                text=[text(v) for _, v in over],
                hovertemplate=f"{key} %{{x:.3f}} s<br>%{{text}}<extra>{extra}</extra>",
            )
        )
    height = max(260, 120 + 26 * len(shown))
    layout = _layout("Slowest call per test, against its budget", "seconds", "", height=height)
    layout["yaxis"]["type"] = "category"
    return go.Figure(data=traces, layout=layout)


def optimizations_figure(go: Any, rows: Sequence[Mapping[str, Any]]) -> Any:
    """Each optimization's time before and after."""
    names = [_plain(r.get("optimization", "")) for r in rows]
    traces = [
        go.Bar(name=label, x=names, y=[_number(r.get(key)) for r in rows], marker={"color": colour})
        for label, key, colour in (
            ("before", "before_s", "#ff7f0e"),
            ("after", "after_s", "#2ca02c"),
        )
    ]
    layout = _layout("Optimizations: before and after", "optimization", "seconds")
    return go.Figure(data=traces, layout={**layout, "barmode": "group"})


def short_names(nodeids: Sequence[str]) -> dict[str, str]:
    """Each node id without the folders that every one of them shares."""
    folders = [nodeid.split("::")[0].split("/")[:-1] for nodeid in nodeids]
    shared = 0
    while folders and all(len(f) > shared for f in folders):
        if len({f[shared] for f in folders}) > 1:
            break
        shared += 1
    return {nodeid: nodeid.split("/", shared)[-1] if shared else nodeid for nodeid in nodeids}


# --- the page -----------------------------------------------------------------------------


def render(report: Mapping[str, Any]) -> str:
    """The whole page, plotly.js inline, as text."""
    go = plotly()
    import plotly.io as pio

    figures = _Figures(pio)
    answered = [c for c in calls(report) if c.outcome == "ok"]
    body = [
        _header(report),
        _summary(report),
        _scenarios(report.get("scenarios")),
        _section("models", "Models", _models_table(report["models"])),
        _charts(go, figures, answered, report),
        _recommendations(report.get("recommendations") or []),
        _session(report),
        _optimizations(go, figures, report.get("optimizations")),
        _section("tests", "Tests", _tests_table(report["tests"])),
        _run_details(report["run"]),
    ]
    title = f"LLM validation report {report['run'].get('started_at', '')}"
    return _PAGE.format(title=_e(title), style=_STYLE, body="\n".join(b for b in body if b))


class _Figures:
    """Writes figures as page parts; the first one carries plotly.js."""

    def __init__(self, pio: Any) -> None:
        self.pio = pio
        self.first = True

    def part(self, figure: Any, div_id: str) -> str:
        text = self.pio.to_html(
            figure,
            full_html=False,
            include_plotlyjs=self.first,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        self.first = False
        return f'<div class="chart">{text}</div>'


def _charts(go: Any, figures: _Figures, answered: list[Call], report: Mapping[str, Any]) -> str:
    if not answered:
        empty = '<p class="note">No LLM call got an answer in this run: nothing to draw.</p>'
        return _section("latency", "Latency", empty)
    rows, with_calls = budget_rows(report)
    shown = "" if with_calls <= len(rows) else f" ({len(rows)} of {with_calls} tests shown)"
    cold = (
        f"A call is cold when the server reports over {COLD_LOAD_S * 1000:g} ms of load time "
        "(Ollama's load_duration): it loaded the model first. A cache hit reached no server."
    )
    budgets = (
        "Red: the test went over a budget (each violation is listed below). A limit is drawn "
        f"for the time budgets that were exceeded{shown}."
    )
    return "\n".join(
        [
            _section(
                "latency",
                "Latency",
                figures.part(latency_figure(go, answered), "plot-latency")
                + figures.part(scatter_figure(go, answered), "plot-ttft-total"),
            ),
            _section(
                "cold-warm",
                "Cold and warm calls",
                _note(cold) + figures.part(cold_warm_figure(go, answered), "plot-cold-warm"),
            ),
            _section(
                "budgets",
                "Budgets",
                _note(budgets)
                + figures.part(budget_figure(go, rows), "plot-budgets")
                + _violations_table(report["tests"]),
            ),
        ]
    )


def _header(report: Mapping[str, Any]) -> str:
    run = report["run"]
    facts = [
        f"started {run.get('started_at', '?')}",
        f"{_seconds(run.get('duration_s'))}",
        f"timing: {run.get('timing', '?')}",
        f"pytest-llmperf {run.get('plugin_version', '?')}",
    ]
    if run.get("git_commit"):
        facts.append(f"commit {str(run['git_commit'])[:12]}")
    return (
        "<header><h1>LLM validation report</h1>"
        f'<p class="facts">{" · ".join(_e(f) for f in facts)}</p></header>'
    )


def _summary(report: Mapping[str, Any]) -> str:
    summary = report["summary"]
    outside = summary.get("session_calls") or 0
    cards = [
        ("tests", summary.get("tests"), ""),
        ("passed", summary.get("passed"), "good"),
        ("failed", summary.get("failed"), "bad" if summary.get("failed") else ""),
        ("skipped", summary.get("skipped"), ""),
        ("success", _percent(summary.get("success_rate")), ""),
        ("LLM calls", summary.get("calls"), ""),
        ("outside tests", outside, ""),
        (
            "over budget",
            summary.get("budget_violations"),
            "bad" if summary.get("budget_violations") else "good",
        ),
    ]
    items = "".join(
        f'<div class="card {kind}"><div class="value">{_e(value)}</div>'
        f'<div class="label">{_e(label)}</div></div>'
        for label, value, kind in cards
    )
    return _section("summary", "Summary", f'<div class="cards">{items}</div>')


def _scenarios(section: Any) -> str:
    """The groups and scenarios ``llmperf validate`` ran (its reports have them)."""
    if not isinstance(section, Mapping) or not section.get("items"):
        return ""
    groups = [g for g in section.get("groups") or () if isinstance(g, Mapping)]
    cards = "".join(
        f'<div class="card {"good" if g.get("ok") else "bad"}">'
        f'<div class="value">{_e(g.get("success"))}</div>'
        f'<div class="label">{_e(g.get("name"))}'
        + (f", {_e(g['expected_failures'])} expected to fail" if g.get("expected_failures") else "")
        + "</div></div>"
        for g in groups
    )
    rows = [
        (
            "bad" if item.get("outcome") in ("failed", "error", "xpassed") else "",
            [
                _e(item.get("group")),
                _e(item.get("title")),
                f'<span class="outcome {_e(item.get("outcome"))}">{_e(item.get("outcome"))}</span>',
                _seconds(item.get("duration_s")),
                _e(item.get("message") or ""),
            ],
        )
        for item in section["items"]
        if isinstance(item, Mapping)
    ]
    table = _table(["group", "scenario", "outcome", "time", "why"], rows, numeric=(3,))
    target = section.get("target") or {}
    note = _note(
        f"llmperf validate on {target.get('kind', '?')}: {', '.join(target.get('hosts') or ())}"
        f" (time scale {target.get('time_scale', 1)})"
    )
    return _section("scenarios", "Scenarios", note + f'<div class="cards">{cards}</div>' + table)


def _models_table(models: Mapping[str, Mapping[str, Any]]) -> str:
    if not models:
        return _note("No LLM calls in this run.")
    head = ["model", *_MODEL_COLUMNS]
    rows = [
        (
            "bad" if stats.get("timeouts") or stats.get("errors") else "",
            [_e(model), *_cells(stats, _MODEL_COLUMNS)],
        )
        for model, stats in models.items()
    ]
    return _table(head, rows, numeric=range(1, len(head)))


def _violations_table(tests: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        (
            "bad",
            [
                f"<code>{_e(t['nodeid'])}</code>",
                _e(v.get("budget")),
                _e(v.get("model") or "-"),
                _measure(v.get("budget"), v.get("measured")),
                _measure(v.get("budget"), v.get("limit")),
                _e(v.get("message")),
            ],
        )
        for t in tests
        for v in t["violations"]
    ]
    if not rows:
        return _note("No test went over a budget.")
    head = ["test", "budget", "model", "measured", "limit", "what happened"]
    return "<h3>Budget violations</h3>" + _table(head, rows, numeric=(3, 4))


def _recommendations(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return _section("recommendations", "Recommendations", _note("No recommendation."))
    cards = "".join(
        f'<div class="recommendation {_e(item.get("severity"))}">'
        f'<div><span class="badge">{_e(item.get("severity"))}</span> '
        f"<code>{_e(item.get('id'))}</code></div>"
        f"<p>{_e(item.get('message'))}</p>"
        f"<details open><summary>evidence</summary>{_evidence(item.get('evidence'))}</details>"
        "</div>"
        for item in items
    )
    return _section("recommendations", "Recommendations", cards)


def _evidence(value: Any, depth: int = 0) -> str:
    """Evidence as nested tables and lists; beyond a few levels, as compact JSON."""
    if depth > 5:
        return f"<code>{_e(json.dumps(value, default=str))}</code>"
    if isinstance(value, Mapping):
        if not value:
            return "-"
        rows = "".join(
            f"<tr><th>{_e(key)}</th><td>{_evidence(item, depth + 1)}</td></tr>"
            for key, item in value.items()
        )
        return f'<table class="evidence">{rows}</table>'
    if isinstance(value, list):
        if not value:
            return "-"
        return "<ul>" + "".join(f"<li>{_evidence(v, depth + 1)}</li>" for v in value) + "</ul>"
    if isinstance(value, float):
        return _e(f"{value:.4g}")
    return _e(value)


def _session(report: Mapping[str, Any]) -> str:
    outside = (report.get("session") or {}).get("calls") or []
    if not outside:
        return ""
    note = _note(
        f"{len(outside)} LLM calls made outside any test (session fixtures, conftests, import "
        "time); they count in the models' statistics, and in no test's budget."
    )
    return _section("session", "Outside any test", note + _calls_table(outside))


def _calls_table(raw: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        ("" if call.get("outcome", "ok") == "ok" else "bad", _cells(call, _CALL_COLUMNS))
        for call in raw
    ]
    return _table(list(_CALL_COLUMNS), rows, numeric=range(5, len(_CALL_COLUMNS)))


def _optimizations(go: Any, figures: _Figures, rows: Any) -> str:
    """The table ``llmperf validate`` adds: {optimization, before_s, after_s, improvement}."""
    if not isinstance(rows, list) or not rows:
        return ""
    rows = [r for r in rows if isinstance(r, Mapping)]
    table = _table(
        ["optimization", "before", "after", "improvement"],
        [
            (
                "",
                [
                    _e(r.get("optimization")),
                    _seconds(_number(r.get("before_s"))),
                    _seconds(_number(r.get("after_s"))),
                    _improvement(r.get("improvement")),
                ],
            )
            for r in rows
        ],
        numeric=(1, 2, 3),
    )
    chart = figures.part(optimizations_figure(go, rows), "plot-optimizations")
    return _section("optimizations", "Optimizations", chart + table)


_NOT_PASSED = ("failed", "error", "interrupted")


def _tests_table(tests: Sequence[Mapping[str, Any]]) -> str:
    head = ["test", "outcome", "calls", "LLM time", "slowest call", "violations"]
    rows = []
    for test in tests:
        answered = _answered(test["calls"])
        outcome = str(test.get("outcome", ""))
        rows.append(
            (
                "bad" if test["violations"] or outcome in _NOT_PASSED else "",
                [
                    f"<code>{_e(test['nodeid'])}</code>",
                    f'<span class="outcome {_e(outcome)}">{_e(outcome)}</span>',
                    _e(len(test["calls"])),
                    _seconds(sum(c.total_s for c in answered)) if answered else "-",
                    _seconds(max(c.total_s for c in answered)) if answered else "-",
                    _e(len(test["violations"])),
                ],
            )
        )
    return _table(head, rows, numeric=range(2, len(head)))


def _run_details(run: Mapping[str, Any]) -> str:
    facts = {key: value for key, value in run.items() if key != "settings"}
    settings = json.dumps(run.get("settings") or {}, indent=1, sort_keys=True, default=str)
    body = (
        _evidence(facts)
        + f"<details><summary>settings</summary><pre>{_e(settings)}</pre></details>"
    )
    return _section("run", "The run", body)


# --- small pieces -------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _plain(value: Any) -> str:
    """Text for plotly, which reads a few HTML tags and entities in it: shown as written."""
    return html.escape(str(value), quote=False)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{body}</section>'


def _table(
    head: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]], numeric: Collection[int] = ()
) -> str:
    """A table of cells already escaped; the ``numeric`` columns align right. Each row comes
    with its class (``bad`` is highlighted), or ``""``."""
    header = "".join(
        f"<th{_class('num' if i in numeric else '')}>{_e(h)}</th>" for i, h in enumerate(head)
    )
    body = "".join(
        f"<tr{_class(kind)}>"
        + "".join(
            f"<td{_class('num' if i in numeric else '')}>{cell}</td>"
            for i, cell in enumerate(cells)
        )
        + "</tr>"
        for kind, cells in rows
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _class(name: str) -> str:
    return f' class="{name}"' if name else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _seconds(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.3f} s"


def _fixed(value: Any, digits: int) -> str:
    number = _number(value)
    return "-" if number is None else f"{number:.{digits}f}"


def _percent(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else f"{number * 100:.0f}%"


def _measure(budget: Any, value: Any) -> str:
    """A violation's figure in its budget's unit."""
    if budget in SECONDS:
        return _seconds(value)
    if budget == "tokens_per_s":
        return f"{_fixed(value, 1)} tokens/s"
    return _e(value)


def _improvement(value: Any) -> str:
    """As ``llmperf validate`` gives it: a text as it is, a number to three figures."""
    number = _number(value)
    return _e(value) if number is None else _e(f"{number:.3g}")


def _cache_hits(stats: Mapping[str, Any]) -> str:
    return f"{_e(stats.get('cache_hits'))} ({_percent(stats.get('cache_hit_rate'))})"


def _tokens(value: Any) -> str:
    return _e("-" if value is None else value)


# A column of a table: its head, and how its cell shows a record (a call, a model's
# statistics): the format of the value at a path of keys into the record (no keys: all of it).
_Cell = tuple[Callable[[Any], str], tuple[str, ...]]

_MODEL_COLUMNS: dict[str, _Cell] = {
    "calls": (_e, ("calls",)),
    "total p50": (_seconds, ("total_s", "p50")),
    "total p95": (_seconds, ("total_s", "p95")),
    "total max": (_seconds, ("total_s", "max")),
    "TTFT p50": (_seconds, ("ttft_s", "p50")),
    "TTFT p95": (_seconds, ("ttft_s", "p95")),
    "tokens/s": (functools.partial(_fixed, digits=1), ("tokens_per_s",)),
    "cache hits": (_cache_hits, ()),
    "loading": (_percent, ("load_share",)),
    "timeouts": (_e, ("timeouts",)),
    "errors": (_e, ("errors",)),
}
_CALL_COLUMNS: dict[str, _Cell] = {
    "model": (_e, ("model",)),
    "route": (_e, ("route",)),
    "purpose": (_e, ("purpose",)),
    "cache": (_e, ("cache",)),
    "outcome": (_e, ("outcome",)),
    "total": (_seconds, ("total_s",)),
    "TTFT": (_seconds, ("ttft_s",)),
    "load": (_seconds, ("server", "load_s")),
    "tokens": (_tokens, ("output_tokens",)),
}


def _cells(record: Mapping[str, Any], columns: Mapping[str, _Cell]) -> list[str]:
    return [show(_at(record, path)) for show, path in columns.values()]


def _at(record: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = record
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pytest-llmperf">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""

_STYLE = """
body { margin: 0; background: #f6f7f9; color: #1d2430;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
header h1 { margin: 8px 0 2px; font-size: 24px; }
.facts { margin: 0; color: #5b6472; }
section { background: #fff; border: 1px solid #e1e4e8; border-radius: 8px; margin: 16px 0;
  padding: 12px 18px 16px; }
h2 { font-size: 18px; margin: 4px 0 10px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.note { color: #5b6472; margin: 4px 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 10px; }
.card { border: 1px solid #e1e4e8; border-radius: 6px; padding: 8px 12px; background: #fafbfc; }
.card .value { font-size: 20px; font-weight: 600; white-space: nowrap; }
.card .label { color: #5b6472; }
.card.good .value { color: #1a7f37; }
.card.bad .value { color: #cf222e; }
.card.bad { border-color: #f5b5b9; background: #fff5f5; }
table { border-collapse: collapse; width: 100%; margin: 4px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eaecef;
  vertical-align: top; }
thead th { background: #f1f3f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr.bad { background: #fff0f0; }
code { font: 12.5px ui-monospace, "DejaVu Sans Mono", monospace; overflow-wrap: anywhere; }
.chart { margin: 6px 0 12px; }
.outcome.passed { color: #1a7f37; }
.outcome.failed, .outcome.error, .outcome.interrupted { color: #cf222e; font-weight: 600; }
.outcome.skipped, .outcome.xfailed { color: #5b6472; }
.outcome.xpassed { color: #cf222e; font-weight: 600; }
.recommendation { border-left: 4px solid #8c959f; padding: 6px 12px; margin: 10px 0;
  background: #fafbfc; }
.recommendation p { margin: 4px 0; }
.recommendation.error { border-color: #cf222e; }
.recommendation.warning { border-color: #d4a72c; }
.recommendation.info { border-color: #0969da; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; color: #fff;
  background: #8c959f; font-size: 12px; font-weight: 600; text-transform: uppercase; }
.error .badge { background: #cf222e; }
.warning .badge { background: #bf8700; }
.info .badge { background: #0969da; }
table.evidence { width: auto; margin: 2px 0; }
table.evidence th { font-weight: 500; color: #5b6472; border: 0; padding: 1px 10px 1px 0; }
table.evidence td { border: 0; padding: 1px 0; }
details summary { cursor: pointer; color: #5b6472; }
ul { margin: 2px 0; padding-left: 18px; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; }
"""
