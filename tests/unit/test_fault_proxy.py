"""The HTTP fault proxy on its own: each fault kind reaches a plain HTTP client as intended, in front of a small
standard-library HTTP server that counts what reached it."""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from e2e.stack.faults import KINDS, FaultProxy, FaultSettings, choose

BODY = bytes(range(256)) * 40  # 10 KiB


class _Origin(BaseHTTPRequestHandler):
    """GET: BODY (chunked under /chunked); PUT: stores the body; HEAD: BODY's length. Records each request."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits out a delayed ACK between its head and body
    seen: list[tuple[str, str, bytes]] = []

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, b""))
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(BODY), 3000):
                part = BODY[start : start + 3000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def do_HEAD(self) -> None:
        self.seen.append(("HEAD", self.path, b""))
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()

    def do_PUT(self) -> None:
        if self.headers.get("Expect"):
            self.send_error(417, "the proxy should have answered Expect itself")
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(("PUT", self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[tuple[str, list]]:
    _Origin.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Origin.seen
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["s3", "gcs"])
def proxy(request: pytest.FixtureRequest, origin) -> Iterator[FaultProxy]:
    running = FaultProxy(origin[0], request.param).start()
    yield running
    running.stop()


def _connect(proxy: FaultProxy, timeout: float = 10) -> http.client.HTTPConnection:
    host, port = proxy.endpoint.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def test_without_faults_requests_pass_unchanged_on_one_connection(proxy, origin):
    conn = _connect(proxy)
    conn.request("PUT", "/a", body=b"payload")
    assert conn.getresponse().read() == b""
    for path in ("/a", "/chunked/a"):
        conn.request("GET", path)
        answer = conn.getresponse()
        assert (answer.status, answer.read()) == (200, BODY)
    conn.request("HEAD", "/a")
    answer = conn.getresponse()
    assert (answer.status, answer.getheader("Content-Length"), answer.read()) == (200, str(len(BODY)), b"")
    conn.close()
    assert [(method, path) for method, path, _ in origin[1]] == [
        ("PUT", "/a"),
        ("GET", "/a"),
        ("GET", "/chunked/a"),
        ("HEAD", "/a"),
    ]
    assert origin[1][0][2] == b"payload"
    assert proxy.counts() == {"requests": 4, **{kind: 0 for kind in KINDS}}


def test_expect_100_continue_is_answered_by_the_proxy(proxy, origin):
    conn = _connect(proxy)
    conn.putrequest("PUT", "/expect")
    conn.putheader("Content-Length", "5")
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    assert conn.sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    conn.send(b"hello")
    assert conn.getresponse().status == 200
    assert origin[1] == [("PUT", "/expect", b"hello")]


@pytest.mark.parametrize("kind", ["500", "503", "429"])
def test_error_kinds_answer_in_the_backends_format_and_never_reach_it(proxy, origin, kind):
    proxy.configure(1.0, (kind,))
    conn = _connect(proxy)
    for _ in range(2):  # the connection stays usable after an error answer
        conn.request("PUT", "/bucket/key", body=b"payload")
        answer = conn.getresponse()
        body = answer.read()
        assert answer.status == int(kind)
        if proxy.flavour == "s3":
            code = {"500": "InternalError", "503": "SlowDown", "429": "TooManyRequests"}[kind]
            assert f"<Code>{code}</Code>".encode() in body
            assert answer.getheader("Content-Type") == "application/xml"
        else:
            error = json.loads(body)["error"]
            assert error["code"] == int(kind)
            assert (
                error["errors"][0]["reason"]
                == {"500": "backendError", "503": "backendError", "429": "rateLimitExceeded"}[kind]
            )
    assert origin[1] == []
    assert proxy.counts()[kind] == 2


def test_truncate_declares_the_whole_body_sends_half_and_closes(proxy, origin):
    proxy.configure(1.0, ("truncate",))
    conn = _connect(proxy)
    conn.request("GET", "/chunked/x")
    answer = conn.getresponse()
    assert answer.getheader("Content-Length") == str(len(BODY))
    with pytest.raises(http.client.IncompleteRead) as cut:
        answer.read()
    assert cut.value.partial == BODY[: len(BODY) // 2]
    # A write's answer is cut too (it has no body, so one byte is promised); the write itself took effect.
    conn = _connect(proxy)
    conn.request("PUT", "/written", body=b"landed")
    answer = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        answer.read()
    assert ("PUT", "/written", b"landed") in origin[1]
    conn = _connect(proxy)
    conn.request("HEAD", "/x")
    with pytest.raises(http.client.RemoteDisconnected):
        conn.getresponse()
    assert proxy.counts()["truncate"] == 3


def test_stall_holds_the_answer_back(proxy, origin):
    proxy.configure(1.0, ("stall",), stall_seconds=1.5)
    impatient = _connect(proxy, timeout=0.5)
    impatient.request("GET", "/slow")
    with pytest.raises(socket.timeout):
        impatient.getresponse()
    patient = _connect(proxy, timeout=10)
    started = time.monotonic()
    patient.request("GET", "/slow")
    answer = patient.getresponse()
    assert answer.read() == BODY
    assert time.monotonic() - started >= 1.4
    assert [path for _, path, _ in origin[1]] == ["/slow", "/slow"]


def test_a_share_of_requests_fails_with_mixed_kinds_and_is_counted(proxy, origin):
    proxy.configure(0.3, KINDS, stall_seconds=0.01, seed=7)
    outcomes = []
    conn = _connect(proxy)
    for i in range(200):
        try:
            conn.request("GET", f"/n{i}")
            answer = conn.getresponse()
            outcomes.append(answer.status if answer.read() == BODY or answer.status != 200 else "short")
        except (http.client.HTTPException, ConnectionError):
            outcomes.append("cut")
            conn = _connect(proxy)
    counts = proxy.counts()
    assert counts["requests"] == 200
    injected = sum(counts[kind] for kind in KINDS)
    assert 35 <= injected <= 85
    assert all(counts[kind] > 0 for kind in KINDS)
    for kind in ("500", "503", "429"):
        assert outcomes.count(int(kind)) == counts[kind]
    assert outcomes.count("cut") == counts["truncate"]
    assert outcomes.count(200) == 200 - counts["500"] - counts["503"] - counts["429"] - counts["truncate"]
    proxy.reset_counts()
    assert proxy.counts()["requests"] == 0


def test_the_choice_is_seeded_and_the_kinds_take_turns():
    settings = FaultSettings(0.25, KINDS)

    def run(seed: int, count: int) -> list[str | None]:
        rng, turn, chosen = random.Random(seed), 0, []
        for _ in range(count):
            chosen.append(choose(rng, settings, turn))
            turn += chosen[-1] is not None
        return chosen

    assert run(42, 500) == run(42, 500) != run(43, 500)
    faults = [kind for kind in run(42, 500) if kind is not None]
    assert 90 <= len(faults) <= 160
    assert faults[: 2 * len(KINDS)] == list(KINDS) * 2
    assert {choose(random.Random(i), FaultSettings(0.0), 0) for i in range(100)} == {None}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"share": 1.5}, "within 0 and 1"),
        ({"share": 0.1, "kinds": ("404",)}, "unknown fault kinds"),
        ({"share": 0.1, "kinds": ()}, "at least one"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        FaultSettings(**settings)


def test_bad_upstream_or_flavour_is_refused():
    with pytest.raises(ValueError, match="flavour"):
        FaultProxy("http://127.0.0.1:1", "azure")
    with pytest.raises(ValueError, match="http://host:port"):
        FaultProxy("https://example.com", "s3")
