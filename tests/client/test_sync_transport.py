"""The sync face's transport: httpcore's pool behind httpx's public transport interface.

It keeps connections alive, holds its limits, closes what it opened, and turns httpcore's
errors into httpx's (whole answers and bodies alike), over real loopback HTTP. Its due
cut-off is tested with the misbehaving servers (``test_misbehaving_servers.py``), and the
mocking libraries that stand in for it in ``test_mocking_libraries.py``.
"""

from __future__ import annotations

import socket

import httpcore
import httpx
import pytest
from misbehaving import HangUp, Misbehaving, Pause, Send

from pytest_llmperf.client.sync_transport import DueTransport, httpx_error

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8)


def answers(send: Send, pause: Pause) -> None:
    send(ANSWER)


def client(limits: httpx.Limits = LIMITS) -> httpx.Client:
    return httpx.Client(transport=DueTransport(limits))


def test_it_is_an_httpx_transport_of_its_own_not_httpx_s_subclass() -> None:
    assert issubclass(DueTransport, httpx.BaseTransport)
    assert not issubclass(DueTransport, httpx.HTTPTransport)


def test_connections_are_kept_alive_between_requests() -> None:
    with Misbehaving(answers) as server, client() as http:
        texts = [http.get(server.url).text for _ in range(3)]
        assert texts == ["ok"] * 3
        assert len(server.connections) == 1


def test_the_connection_limit_holds_and_a_full_pool_times_out_as_httpx_says() -> None:
    with Misbehaving(answers) as server, client(httpx.Limits(max_connections=1)) as http:
        with http.stream("GET", server.url) as held:  # the one connection, until it ends
            assert held.status_code == 200
            with pytest.raises(httpx.PoolTimeout) as caught:
                http.get(server.url, timeout=httpx.Timeout(30, pool=0.2))
            assert isinstance(caught.value.__cause__, httpcore.PoolTimeout)
            assert held.read() == b"ok"  # read to its end: the connection goes back
        assert http.get(server.url).text == "ok"  # on it again
        assert len(server.connections) == 1


def test_closing_the_transport_closes_its_connections() -> None:
    with Misbehaving(answers) as server:
        http = client()
        assert http.get(server.url).text == "ok"
        serving = server.threads[-1]  # the thread of the one connection, kept alive
        assert serving.is_alive()
        http.close()
        serving.join(timeout=30)  # it ends when the client hangs up
        assert not serving.is_alive()


def test_a_refused_connection_is_httpx_connect_error_with_httpcore_s_message() -> None:
    with socket.create_server(("127.0.0.1", 0)) as free:
        port = free.getsockname()[1]  # closed again below: nothing listens there
    with client() as http, pytest.raises(httpx.ConnectError) as caught:
        http.get(f"http://127.0.0.1:{port}/")
    cause = caught.value.__cause__
    assert isinstance(cause, httpcore.ConnectError)
    assert str(caught.value) == str(cause) != ""
    assert caught.value.request.url == f"http://127.0.0.1:{port}/"  # httpx names the request


def test_a_body_cut_short_is_httpx_remote_protocol_error() -> None:
    def cut(send: Send, pause: Pause) -> None:
        send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        raise HangUp

    with (
        Misbehaving(cut) as server,
        client() as http,
        http.stream("GET", server.url) as response,
        pytest.raises(httpx.RemoteProtocolError) as caught,
    ):
        response.read()
    assert isinstance(caught.value.__cause__, httpcore.RemoteProtocolError)
    assert str(caught.value) == str(caught.value.__cause__)


# Every exception httpcore raises, and httpx's of the same name.
ERROR_NAMES = [
    "TimeoutException",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "NetworkError",
    "ConnectError",
    "ReadError",
    "WriteError",
    "ProxyError",
    "UnsupportedProtocol",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
]


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_each_httpcore_error_becomes_httpx_s_of_its_name_with_its_message(name: str) -> None:
    mapped = httpx_error(getattr(httpcore, name)(f"what {name} said"))
    assert type(mapped) is getattr(httpx, name)
    assert str(mapped) == f"what {name} said"


def test_the_list_of_httpcore_errors_is_whole() -> None:
    raised = {
        name
        for name in dir(httpcore)
        if isinstance(getattr(httpcore, name), type)
        and issubclass(getattr(httpcore, name), Exception)
    }
    # ConnectionNotAvailable: the pool's signal to itself to try another connection, which
    # it catches (httpx leaves it unmapped too)
    assert raised - {"ConnectionNotAvailable"} == set(ERROR_NAMES)


def test_an_error_that_is_not_httpcore_s_passes_as_it_is() -> None:
    error = ValueError("not a transport's")
    assert httpx_error(error) is error
