"""Which cassette a test uses, from its ``llm_cassette`` marker and the settings.

``@pytest.mark.llm_cassette`` uses ``{llm_cassette_dir}/{module path}/{Class.}{test}.yaml``
(the module's path from the rootdir without ``.py``, so same-named modules and tests in
different classes each get their own; a name past 200 bytes, from a long parametrize id, keeps
its start and ends in a digest of the whole);
``@pytest.mark.llm_cassette("shared/story.yaml")`` names a file under the folder (``.json``
for JSON); ``record_mode=`` and ``timing=`` override the settings for that test.
"""

from __future__ import annotations

import hashlib
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
    test = _fitting(re.sub(r"[^\w.-]+", "-", name).strip("-"))
    # beside pytest-recording's cassette of the same test (which, for a test module at the
    # rootdir, has this very path): a name of our own
    kind = ".llm" if item.get_closest_marker(VCR_MARKER) is not None else ""
    return folder / module / f"{test}{kind}.yaml"


# Most file systems take names of up to 255 bytes; the cassette's scratch and sibling files
# (".NAME.XXXXXXXX.tmp", "NAME.other.yaml.rewrite") add up to 30 to the test's part.
LONGEST_NAME = 200


def _fitting(test: str) -> str:
    """The test's part of a cassette name, shortened to fit: a long parametrize id keeps its
    start and gets a digest of the whole, so each test still has its own cassette."""
    if len(test.encode("utf-8")) <= LONGEST_NAME:
        return test
    digest = hashlib.sha256(test.encode("utf-8")).hexdigest()[:16]
    start = test.encode("utf-8")[: LONGEST_NAME - len(digest) - 1].decode("utf-8", "ignore")
    return f"{start}-{digest}"


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
