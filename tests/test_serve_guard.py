"""Who the service answers (kronos.serve.guard, applied by the app's gate): the Host allowlist
against DNS rebinding, the refusal of cross-site writes, and the read timeout on bodies; on the
rules alone, on an app with a mounted sub-app (as the MCP endpoint is mounted), and on a real
`kronos serve` through raw sockets."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kronos_server import API_KEY, CAPS

from kronos.serve.guard import HostRules, split_authority

PORT = 8000
CAPS_TIMEOUT = CAPS["read_timeout"]


@pytest.mark.parametrize(
    ("authority", "parts"),
    [
        ("localhost:8000", ("localhost", 8000)),
        ("LocalHost.", ("localhost", None)),
        ("[::1]:8000", ("::1", 8000)),
        ("[::1]", ("::1", None)),
        ("127.0.0.1", ("127.0.0.1", None)),
        ("localhost:0", None),
        ("localhost:99999", None),
        ("localhost:80a", None),
        ("[::1", None),
        ("[::1]x", None),
        (":8000", None),
        ("", None),
    ],
)
def test_split_authority_reads_names_and_ports_and_refuses_malformed_ones(authority, parts):
    assert split_authority(authority) == parts


def test_loopback_names_are_answered_on_the_server_port_only_and_others_when_allowed():
    rules = HostRules()
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "localhost", "LOCALHOST:8000"):
        assert rules.allows(host, PORT), host
    for host in (
        "localhost:8001",
        "evil.example:8000",
        "127.0.0.2:8000",
        "localhost.evil.example",
        "0.0.0.0:8000",
    ):
        assert not rules.allows(host, PORT), host
    named = HostRules(("Forecasts.Desk.Example", "[fd00::5]"))
    assert named.allows("forecasts.desk.example:443", PORT) and named.allows("[fd00::5]:8000", PORT)
    assert not named.allows("desk.example", PORT)
    assert HostRules(("*",)).allows("anything.example:1", PORT)
    with pytest.raises(ValueError, match="must not be empty"):
        HostRules(("",))


@pytest.mark.parametrize(
    ("method", "headers", "status", "message"),
    [
        ("GET", {}, 400, "does not answer to the Host None"),
        ("GET", {"host": "rebound.attacker.example:8000"}, 400, "'rebound.attacker.example:8000'"),
        ("POST", {"host": "localhost:8000", "origin": "http://evil.example"}, 403, "'http://evil.example'"),
        ("POST", {"host": "localhost:8000", "origin": "http://localhost:3000"}, 403, "may not send POST"),
        ("POST", {"host": "localhost:8000", "origin": "null"}, 403, "'null'"),
        ("PUT", {"host": "localhost:8000", "sec-fetch-site": "cross-site"}, 403, "a cross-site page"),
        ("POST", {"host": "localhost:8000", "sec-fetch-site": "same-site"}, 403, "a same-site page"),
        ("POST", {"host": "localhost:8000", "origin": "http://127.0.0.1:8000"}, None, None),
        ("POST", {"host": "localhost:8000", "sec-fetch-site": "same-origin"}, None, None),
        ("POST", {"host": "localhost:8000"}, None, None),  # curl, httpx: no browser headers
        ("GET", {"host": "localhost:8000", "sec-fetch-site": "cross-site"}, None, None),  # a link followed
    ],
)
def test_refusals_name_the_host_or_origin(method, headers, status, message):
    refusal = HostRules().refusal(method, headers, PORT)
    if status is None:
        assert refusal is None
    else:
        assert refusal is not None and refusal[0] == status and message in refusal[1]


@given(
    name=st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}", fullmatch=True), port=st.integers(1, 65535)
)
def test_no_name_outside_loopback_is_answered_unless_allowed(name, port):
    rules = HostRules()
    allowed = name in ("localhost", "127.0.0.1") and port == PORT
    assert rules.allows(f"{name}:{port}", PORT) is allowed
    assert HostRules((name,)).allows(f"{name}:{port}", PORT)


def _mounted_app(tiny_predictor, **config):
    """The service's app with a sub-app mounted at /mcp, as the MCP endpoint is."""
    from kronos.serve.app import ServeConfig, create_app

    app = create_app(tiny_predictor, ServeConfig(**config))
    seen: list[str] = []

    async def sub_app(scope, receive, send) -> None:
        seen.append(scope["path"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"mounted"})

    app.mount("/mcp", sub_app)
    return app, seen


def test_the_gate_guards_mounted_apps_too(tiny_predictor):
    app, seen = _mounted_app(tiny_predictor, api_key="k")

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as client:
            return [
                await client.post("/mcp/", headers={"Host": "rebound.example:8000"}),
                await client.post("/mcp/", headers={"Origin": "http://evil.example"}),
                await client.post("/mcp/", headers={"Origin": "http://localhost:8000"}),
                await client.get("/healthz", headers={"Host": "rebound.example"}),
            ]

    rebound, cross_site, same_origin, health = asyncio.run(scenario())
    assert (rebound.status_code, cross_site.status_code, same_origin.status_code) == (400, 403, 200)
    assert (
        rebound.json()["error"]["type"] == "bad_request" and cross_site.json()["error"]["type"] == "forbidden"
    )
    assert same_origin.text == "mounted" and seen == ["/mcp/"]  # the refused ones never reached it
    assert health.status_code == 400


def test_a_real_server_refuses_foreign_hosts_and_cross_site_writes(kronos_server):
    port = int(kronos_server.url.rsplit(":", 1)[1])
    body = {"bars": [], "steps": 2}
    with kronos_server.client() as client:
        for path in ("/healthz", "/metrics", "/", "/static/app.js", "/v1/models", "/docs"):
            assert client.get(path, headers={"Host": f"attacker.example:{port}"}).status_code == 400, path
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
        assert client.get("/healthz", headers={"Host": f"localhost:{port + 1}"}).status_code == 400
        # the simple requests a foreign page may send without a preflight, with the key even
        form = client.post("/v1/forecast", content=b"steps=3", headers={"Origin": "http://evil.example",
                           "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        text = client.post("/v1/forecast", content=b"{}", headers={"Sec-Fetch-Site": "cross-site",
                           "Content-Type": "text/plain"})  # fmt: skip
        same = client.post("/v1/forecast", json=body, headers={"Origin": kronos_server.url})
    assert form.status_code == 403 and "http://evil.example" in form.json()["error"]["message"]
    assert text.status_code == 403
    assert same.status_code == 422  # through the gate, to the checks of the bars
    assert kronos_server.metric("kronos_requests_total", route="unmatched", status="400") >= 7


def _raw(port: int, request: bytes, wait: float) -> tuple[bytes, float]:
    """Send `request`, then read until the server closes the connection; the answer and the time it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer, time.monotonic() - started


def test_a_body_shorter_than_its_content_length_gets_a_408_and_the_connection_closes(kronos_server):
    port = int(kronos_server.url.rsplit(":", 1)[1])
    head = (f"POST /v1/forecast HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {API_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 400\r\n\r\n").encode()  # fmt: skip
    answer, seconds = _raw(port, head + b'{"bars": [', wait=CAPS_TIMEOUT + 20)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 5 s (kronos serve --read-timeout)" in answer
    assert CAPS_TIMEOUT - 0.5 <= seconds < CAPS_TIMEOUT + 10  # answered at the deadline, and closed


def test_a_body_dripped_byte_by_byte_past_the_timeout_gets_a_408(kronos_server):
    port = int(kronos_server.url.rsplit(":", 1)[1])
    head = (f"POST /v1/forecast HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {API_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 40\r\n\r\n").encode()  # fmt: skip
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=CAPS_TIMEOUT + 20) as sock:
        sock.sendall(head)
        answer = b""
        for byte in b'{"bars": []                          ':  # one byte a second: never 40 in time
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # closed by the server after its 408
                break
            time.sleep(1)
            sock.setblocking(False)
            try:
                answer += sock.recv(4096)
            except BlockingIOError:
                pass
            sock.setblocking(True)
            if answer:
                break
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < CAPS_TIMEOUT + 10
