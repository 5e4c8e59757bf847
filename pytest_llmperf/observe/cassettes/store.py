"""Cassette files: vcrpy's format, with the timing of every chunk in fields vcrpy ignores.

A cassette is ``{"version": 1, "interactions": [{"request": ..., "response": ...}]}`` as
vcrpy lays it out, so vcrpy can read ours and we read vcrpy's. A ``.yaml`` cassette is
written in YAML's JSON-compatible flow style, one interaction a line, which any YAML reader
reads and which we read with the JSON parser (25x faster than PyYAML); block-style YAML,
as vcrpy writes it, is read with vcrpy's loader. ``.json`` cassettes are plain JSON.

Each response also has an ``llmperf`` table:
``headers_at`` (seconds from the start of the request to the response headers),
``chunks`` (``[offset_s, bytes]`` for every piece of the body as it arrived), ``stats``
(the server's statistics from the last line of an Ollama stream, in nanoseconds as sent),
``error`` when the connection broke before the end (or :data:`CUT_SHORT` when the client
closed the stream before it), and ``test``, the node id of the test that recorded it.

Files are written to a temporary file next to the cassette and moved over it in one step,
so a run killed while writing leaves the old cassette whole; writers of one folder take
turns (a lock on the folder), and each merges what is on disk with its own recording, so
one test's recording never overwrites another's interactions.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmperf.errors import ConfigurationError
from pytest_llmperf.files import remove_leftovers, write_atomically
from pytest_llmperf.observe.cassettes.matching import key, normal_body

FORMAT_VERSION = 1
CUT_SHORT = "closed by the client"  # the error of an interaction the client did not read out


class CassetteError(ConfigurationError):
    """A cassette file that cannot be read or written."""


@dataclass
class Interaction:
    """One request and its response, with the response's timing."""

    method: str
    uri: str
    request_headers: dict[str, list[str]]
    request_body: str | None
    status: int
    reason: str
    headers: dict[str, list[str]]
    body: bytes
    headers_at: float = 0.0
    chunks: list[tuple[float, int]] = field(default_factory=list)
    stats: dict[str, Any] | None = None
    error: str | None = None
    test: str | None = None  # the node id of the test that recorded it (None: unknown)

    @property
    def cut_short(self) -> bool:
        """The client closed the stream before its end: the rest of the answer is missing."""
        return self.error == CUT_SHORT

    @property
    def key(self) -> str:
        return key(self.method, self.uri, self.request_body)

    def pieces(self) -> list[tuple[float, bytes]]:
        """The body cut back into the chunks that arrived, each with its offset."""
        out, start = [], 0
        for offset, size in self.chunks or [(self.headers_at, len(self.body))]:
            out.append((offset, self.body[start : start + size]))
            start += size
        if start < len(self.body):  # a body edited by hand: hand out the rest at the end
            out.append((out[-1][0] if out else self.headers_at, self.body[start:]))
        return out

    def to_vcr(self) -> dict[str, Any]:
        try:
            body: str | bytes = self.body.decode("utf-8")
        except UnicodeDecodeError:
            body = self.body
        timing: dict[str, Any] = {
            "headers_at": round(self.headers_at, 6),
            "chunks": [[round(offset, 6), size] for offset, size in self.chunks],
        }
        if self.stats:
            timing["stats"] = self.stats
        if self.error:
            timing["error"] = self.error
        if self.test:
            timing["test"] = self.test
        return {
            "request": {
                "method": self.method,
                "uri": self.uri,
                "body": self.request_body,
                "headers": self.request_headers,
            },
            "response": {
                "status": {"code": self.status, "message": self.reason},
                "headers": self.headers,
                "body": {"string": body},
                "llmperf": timing,
            },
        }

    @classmethod
    def from_vcr(cls, data: Any, where: str = "interaction") -> Interaction:
        """One interaction of vcrpy's layout; a field of the wrong shape is a
        :class:`CassetteError` naming it (``where`` is the interaction's place in the file)."""
        request = _table(
            _table(data, where, required=True).get("request"), f"{where}.request", required=True
        )
        response = _table(data.get("response"), f"{where}.response", required=True)
        status = _table(response.get("status"), f"{where}.response.status", required=True)
        code = status.get("code")
        if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 599:
            raise _shape(f"{where}.response.status.code", code, "an HTTP status from 100 to 599")
        body = _table(response.get("body"), f"{where}.response.body").get("string")
        if body is not None and not isinstance(body, (str, bytes)):
            raise _shape(f"{where}.response.body.string", body, "text")
        timing = _table(response.get("llmperf"), f"{where}.response.llmperf")
        request_body = request.get("body")
        if isinstance(request_body, bytes):
            request_body = request_body.decode("utf-8", errors="replace")
        elif request_body is not None and not isinstance(request_body, str):
            raise _shape(f"{where}.request.body", request_body, "text")
        headers_at = timing.get("headers_at", 0.0)
        if not _seconds(headers_at):
            raise _shape(f"{where}.response.llmperf.headers_at", headers_at, "seconds >= 0")
        return cls(
            method=_name(request.get("method"), f"{where}.request.method").upper(),
            uri=_name(request.get("uri"), f"{where}.request.uri"),
            request_headers=_headers(request.get("headers"), f"{where}.request.headers"),
            request_body=request_body,
            status=code,
            reason=str(status.get("message") or ""),
            headers=_headers(response.get("headers"), f"{where}.response.headers"),
            body=body.encode("utf-8") if isinstance(body, str) else bytes(body or b""),
            headers_at=float(headers_at),
            chunks=_chunks(timing.get("chunks"), f"{where}.response.llmperf.chunks"),
            stats=_table(timing.get("stats"), f"{where}.response.llmperf.stats") or None,
            error=None if timing.get("error") is None else str(timing["error"]),
            test=None if timing.get("test") is None else str(timing["test"]),
        )


class _Shape(CassetteError):
    """A field of a cassette that is not what it should be (the message names it, not yet
    the file)."""


def _shape(field: str, value: Any, wanted: str) -> _Shape:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    if value is None:
        return _Shape(f"{field} is missing (it should be {wanted})")
    return _Shape(f"{field} is {shown} ({type(value).__name__}), not {wanted}")


def _table(value: Any, field: str, *, required: bool = False) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _shape(field, value, "a mapping")
    return value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value >= 0


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise _shape(field, value, "text")
    return value


def _headers(value: Any, field: str) -> dict[str, list[str]]:
    """Headers as vcrpy writes them (name: [values]); a single value is taken as one."""
    out: dict[str, list[str]] = {}
    for name, values in _table(value, field).items():
        items = [values] if isinstance(values, (str, int, float)) else values
        if not isinstance(items, list) or not all(isinstance(v, (str, int, float)) for v in items):
            raise _shape(f"{field}.{name}", values, "a list of values")
        out[str(name)] = [str(v) for v in items]
    return out


def _chunks(value: Any, field: str) -> list[tuple[float, int]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _shape(field, value, "a list of [seconds, bytes] pairs")
    out = []
    for index, pair in enumerate(value):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not _seconds(pair[0])
            or not _whole(pair[1])
            or pair[1] < 0
        ):
            raise _shape(f"{field}[{index}]", pair, "a [seconds, bytes] pair")
        out.append((float(pair[0]), pair[1]))
    return out


class Cassette:
    """The interactions of one cassette file, indexed by matching key.

    Identical requests replay in the order they were recorded; finding the answer costs the
    same whatever the number of interactions.
    """

    def __init__(self, path: Path, interactions: Iterable[Interaction] = ()) -> None:
        self.path = path
        self.interactions: list[Interaction] = []
        self.new: list[Interaction] = []
        self._index: dict[str, list[int]] = {}
        self._played: dict[str, int] = {}
        self._lock = threading.Lock()
        for interaction in interactions:
            self._add(interaction)

    def _add(self, interaction: Interaction) -> None:
        self._index.setdefault(interaction.key, []).append(len(self.interactions))
        self.interactions.append(interaction)

    @classmethod
    def load(cls, path: Path) -> Cassette:
        """The cassette at ``path`` (empty if the file does not exist)."""
        if not path.exists():
            return cls(path)
        fix = (
            "It is left as it is; fix or delete it, or record it again with "
            "--llm-record-mode rewrite"
        )
        try:
            interactions = _interactions(path)
        except _Shape as exc:
            raise CassetteError(f"cannot read cassette {path}: {exc}. {fix}") from None
        except OSError as exc:
            raise CassetteError(
                f"cannot read cassette {path}: {exc.strerror or exc}. {fix}"
            ) from None
        return cls(path, interactions)

    def play(self, method: str, uri: str, body: bytes | str | None) -> Interaction | None:
        """The next unplayed interaction recorded for this request, if any."""
        wanted = key(method, uri, body)
        with self._lock:
            found = self._index.get(wanted)
            if not found:
                return None
            played = self._played.get(wanted, 0)
            if played >= len(found):
                return None
            self._played[wanted] = played + 1
            return self.interactions[found[played]]

    def record(self, interaction: Interaction) -> None:
        with self._lock:
            self._add(interaction)
            self.new.append(interaction)

    @property
    def played(self) -> int:
        return sum(self._played.values())

    def closest(self, method: str, uri: str, body: bytes | str | None) -> Interaction | None:
        """The recorded request most like this one: same method and path, fewest differences."""
        from pytest_llmperf.observe.cassettes.matching import differences, target

        path = target(uri)
        candidates = [i for i in self.interactions if i.method == method.upper()]
        same_path = [i for i in candidates if target(i.uri) == path] or candidates
        if not same_path:
            return None
        wanted = normal_body(path.split("?")[0], body)

        def distance(item: Interaction) -> int:
            return len(differences(normal_body(path.split("?")[0], item.request_body), wanted))

        return min(same_path, key=distance)

    def save(
        self, interactions: list[Interaction] | None = None, *, test: str | None = None
    ) -> None:
        """Write ``interactions`` (default: all) atomically: temporary file, then rename."""
        chosen = self.interactions if interactions is None else interactions
        data = {"version": FORMAT_VERSION, "interactions": [i.to_vcr() for i in chosen]}
        try:
            text = _serializer(self.path).serialize(data)
            # mkstemp makes it private; cassettes are not
            write_atomically(self.path, text, mode=0o666 & ~_umask())
        except OSError as exc:
            raise CassetteError(
                f"cannot write cassette {self.path}"
                + (f" for {test}" if test else "")
                + f": {exc.strerror or exc}; the recorded interactions are lost but any old "
                "cassette is intact. Check the folder (llm_cassette_dir) is writable"
            ) from None

    def save_recording(self, test: str | None, *, fresh: bool, own: bool) -> None:
        """Write this cassette's new interactions, merged with what the file holds now.

        Under the folder's lock, the file is read again: what other tests (another xdist
        worker, an earlier test of this run) wrote there since it was loaded stays.
        ``fresh`` (``all``, ``rewrite``): the new recording replaces the interactions
        ``test`` recorded before, and those of unknown origin that it recorded again (all of
        them in a cassette that is the test's ``own``, its default path).
        """
        with _folder_lock(self.path.parent, self.path):
            remove_leftovers(self.path)  # of a writer killed mid-write: none is at work now
            try:
                on_disk = Cassette.load(self.path).interactions
            except CassetteError:
                if not (fresh and own):  # another test's interactions may be in it
                    raise
                on_disk = []  # the test's own cassette, recorded afresh: it replaces it
            if fresh:
                renewed = {i.key for i in self.new}
                on_disk = [
                    i
                    for i in on_disk
                    if not (i.test == test or (i.test is None and (own or i.key in renewed)))
                ]
            self.save([*on_disk, *self.new], test=test)


@contextlib.contextmanager
def _folder_lock(folder: Path, path: Path) -> Iterator[None]:
    """Writers of the cassettes in ``folder`` take turns (``flock``; none where it is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise CassetteError(
            f"cannot write cassette {path}: its folder: {exc.strerror or exc}; the recorded "
            "interactions are lost but any old cassette is intact. Check the folder "
            "(llm_cassette_dir) is writable"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # (closing it releases the lock)


def _interactions(path: Path) -> list[Interaction]:
    """The interactions in the file at ``path``; what is wrong with it is a :class:`_Shape`."""
    if not path.is_file():  # a folder, or a pipe that would block the read
        raise _Shape("it is not a regular file")
    raw = path.read_bytes()
    if not raw.strip():
        raise _Shape("it is empty (a write cut short, or a file made by hand?)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Shape(
            f"it is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from None
    data = _serializer(path).deserialize(text)
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise _Shape(
            "it is not a cassette: it needs an 'interactions' list, as vcrpy and "
            "pytest-llmperf write"
        )
    return [
        Interaction.from_vcr(item, f"interactions[{index}]")
        for index, item in enumerate(data["interactions"])
    ]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _serializer(path: Path) -> Any:
    return _Json if path.suffix == ".json" else _Yaml


class _Json:
    """vcrpy's layout as JSON, one interaction a line."""

    @staticmethod
    def deserialize(text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _Shape(
                f"it is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        except ValueError as exc:  # a number too long to read
            raise _Shape(f"it is not valid JSON ({exc})") from None
        except RecursionError:
            raise _Shape("it is not valid JSON (it is nested too deeply)") from None

    @staticmethod
    def serialize(data: dict[str, Any]) -> str:
        lines = [json.dumps(i, default=_plain, ensure_ascii=False) for i in data["interactions"]]
        head = '{"version": ' + str(data["version"]) + ', "interactions": [\n'
        return head + ",\n".join(lines) + "\n]}\n"


class _Yaml:
    """YAML cassettes, written in YAML's JSON-compatible flow style.

    Any YAML reader (vcrpy's included) reads them; we read them with the JSON parser, which
    is 25x faster than PyYAML's C loader (5,000 interactions: 0.10 s against 2.6 s).
    Cassettes written by vcrpy or by hand in block style are read with vcrpy's YAML loader.
    """

    @staticmethod
    def deserialize(text: str) -> Any:
        if text.lstrip().startswith("{"):
            try:
                return json.loads(text)
            except ValueError:
                pass
        import yaml
        from vcr.serializers import yamlserializer

        try:
            return yamlserializer.deserialize(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            place = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise _Shape(f"it is not valid YAML ({place}{exc.problem})") from None
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            raise _Shape(f"it is not valid YAML ({exc})") from None

    @staticmethod
    def serialize(data: dict[str, Any]) -> str:
        return _Json.serialize(data)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"cannot write {type(value).__name__} to a cassette")
