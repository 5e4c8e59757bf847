"""Which cassette a test uses, from its ``llm_cassette`` marker and the settings.

``@pytest.mark.llm_cassette`` uses ``{llm_cassette_dir}/{module path}/{Class.}{test}.yaml``
(the module's path from the rootdir without ``.py``, so same-named modules and tests in
different classes each get their own);
``@pytest.mark.llm_cassette("shared/story.yaml")`` names a file under the folder (``.json``
for JSON); ``record_mode=`` and ``timing=`` override the settings for that test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pytest_llmperf.observe.cassettes.scrub import Scrubber
from pytest_llmperf.observe.cassettes.session import MODES, CassetteSession, parse_timing
from pytest_llmperf.plugin.markers import CASSETTE as MARKER
from pytest_llmperf.plugin.settings import Settings

KEYWORDS = frozenset({"record_mode", "timing"})
VCR_MARKER = "vcr"  # pytest-recording's


def check_marker(marker: pytest.Mark, where: str) -> None:
    """Refuse a marker the test cannot run with, naming the test and the argument."""
    if len(marker.args) > 1 or (marker.args and not isinstance(marker.args[0], str)):
        raise ValueError(f"{where}: give at most one cassette name, a string like 'story.yaml'")
    unknown = set(marker.kwargs) - KEYWORDS
    if unknown:
        raise ValueError(
            f"{where}: unknown argument {sorted(unknown)[0]!r}; the marker takes a name, "
            "record_mode= and timing="
        )
    mode = marker.kwargs.get("record_mode")
    if mode is not None and mode not in MODES:
        raise ValueError(f"{where}: record_mode={mode!r}: choose one of {', '.join(MODES)}")
    timing = marker.kwargs.get("timing")
    if timing is not None:
        try:
            parse_timing(str(timing))
        except ValueError:
            raise ValueError(
                f"{where}: timing={timing!r}: choose instant, recorded or a factor >= 0"
            ) from None


def cassette_path(item: pytest.Item, settings: Settings, name: str | None) -> Path:
    folder = item.config.rootpath / settings.cassette_dir
    if name:
        path = folder / name
        return path if path.suffix in (".yaml", ".yml", ".json") else path.with_suffix(".yaml")
    module = Path(str(item.path)).with_suffix("")
    try:
        module = module.relative_to(item.config.rootpath)
    except ValueError:  # a test file outside the rootdir
        module = Path(module.name)
    cls = getattr(item, "cls", None)
    name = f"{cls.__name__}.{item.name}" if cls is not None else item.name
    test = re.sub(r"[^\w.-]+", "-", name).strip("-")
    # beside pytest-recording's cassette of the same test (which, for a test module at the
    # rootdir, has this very path): a name of our own
    kind = ".llm" if item.get_closest_marker(VCR_MARKER) is not None else ""
    return folder / module / f"{test}{kind}.yaml"


def open_session(item: pytest.Item, settings: Settings) -> CassetteSession:
    marker = item.get_closest_marker(MARKER)
    args: tuple[Any, ...] = marker.args if marker else ()
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    name = args[0] if args else None
    return CassetteSession(
        cassette_path(item, settings, name),
        mode=kwargs.get("record_mode") or settings.record_mode,
        timing=(
            settings.replay_timing
            if kwargs.get("timing") is None
            else parse_timing(str(kwargs["timing"]))
        ),
        scrubber=Scrubber(settings.scrub_headers, settings.scrub_query),
        # pytest-recording's cassette takes the other HTTP libraries' traffic then
        others=item.get_closest_marker(VCR_MARKER) is None,
        test=item.nodeid,
        own=not name,  # a named cassette may be shared by several tests
    )
