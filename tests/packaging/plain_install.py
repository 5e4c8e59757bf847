"""What ``pip install pytest-llmperf`` (no extras) brings, read from the installed metadata."""

from __future__ import annotations

from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

OURS = "pytest-llmperf"


def required(distribution: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """The canonical names of what ``distribution`` requires, with these extras, here."""
    names: set[str] = set()
    for line in metadata.requires(distribution) or []:
        requirement = Requirement(line)
        wanted = requirement.marker is None or any(
            requirement.marker.evaluate({**default_environment(), "extra": extra})
            for extra in extras or {""}
        )
        if wanted:
            names.add(canonicalize_name(requirement.name))
    return names


def closure(distribution: str) -> set[str]:
    """``distribution`` and everything it requires, transitively, without extras."""
    seen: set[str] = set()
    todo = [canonicalize_name(distribution)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo.extend(required(name))
        except metadata.PackageNotFoundError:  # a requirement of another platform
            continue
    return seen


def pytest_plugins(distributions: set[str] | None = None) -> set[str]:
    """The ``pytest11`` entry point names of the installed distributions (all, or these)."""
    names: set[str] = set()
    for dist in metadata.distributions():
        if distributions is None or canonicalize_name(dist.metadata["Name"]) in distributions:
            names.update(ep.name for ep in dist.entry_points if ep.group == "pytest11")
    return names


def plugins_a_plain_install_leaves_out() -> set[str]:
    """The pytest plugins installed here (the dev extras) that a plain install does not bring."""
    return pytest_plugins() - pytest_plugins(closure(OURS))
