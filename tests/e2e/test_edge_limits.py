"""The gateway's own limits, over raw sockets against the real gateway process: bodies refused
by Content-Length before a byte is read (RSS from /proc unmoved) or cut at the route's limit
while streaming, oversize or too many headers, a slow head, /metrics on the ops port only,
and the trailing-slash redirect's Location built without the Host header."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable

import asyncpg
import httpx
import orjson

from tests.e2e.conftest import SIM_KEY, ExtraGateway, Tenant, ThreadedServer
from tests.e2e.provider_support import alias, create_mapped_channel
from tests.e2e.test_openai_surface import wav_bytes
from unigate_cli.devstack import Stack


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def gateway_pid(stack: Stack) -> int:
    return stack.procs["gateway"].pid


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (with Content-Length) off a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def warm(stack: Stack) -> None:
    """A few requests first, so that lazily built state does not count as growth."""
    with httpx.Client(timeout=30) as http:
        for _ in range(3):
            http.post(stack.gateway_url + "/v1/chat/completions", content=b"{}")
            http.post(stack.gateway_url + "/api/user/login", json={"username": "", "password": ""})


def test_declared_10gb_body_is_refused_at_once_and_rss_does_not_move(stack: Stack) -> None:
    warm(stack)
    pid = gateway_pid(stack)
    before = rss_bytes(pid)
    for path, envelope in (("/v1/chat/completions", False), ("/api/user/login", True)):
        with connect(stack.gateway_url) as sock:
            started = time.perf_counter()
            head = (
                f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer sk-whatever\r\nContent-Length: {10 * 1024**3}\r\n\r\n"
            )
            sock.sendall(head.encode() + b"{" * 65536)
            status, headers, body = read_response(sock)
            elapsed = time.perf_counter() - started
            assert status == 413, (status, body)
            assert elapsed < 0.1, elapsed
            assert headers["connection"] == "close"
            answer = orjson.loads(body)
            if envelope:
                assert answer["success"] is False and "too large" in answer["message"]
            else:
                assert answer["error"]["code"] == "request_too_large"
            # The connection is closed: the other 10 GB are never read.
            sock.settimeout(5)
            assert sock.recv(1) == b""
    grown = rss_bytes(pid) - before
    assert grown < 2 * 1024 * 1024, grown


def test_streamed_body_without_length_is_cut_at_the_route_limit(stack: Stack) -> None:
    """/api takes 1 MiB: a chunked 8 MiB login is answered 413 near the first MiB."""
    warm(stack)
    pid = gateway_pid(stack)
    before = rss_bytes(pid)
    chunk = b"x" * 65536
    sent = 0
    with connect(stack.gateway_url) as sock:
        sock.sendall(
            b"POST /api/user/login HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        answered = False
        while sent < 8 * 1024 * 1024:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                break
            sent += len(chunk)
            if select.select([sock], [], [], 0.02)[0]:
                answered = True
                break
        assert answered or sent < 8 * 1024 * 1024
        status, _, body = read_response(sock)
    assert status == 413, (status, body)
    assert orjson.loads(body)["success"] is False
    # Cut at the limit (plus what was in flight), far from the 8 MiB offered.
    assert sent <= 3 * 1024 * 1024, sent
    assert rss_bytes(pid) - before < 8 * 1024 * 1024


def test_oversize_and_too_many_headers_get_431(stack: Stack) -> None:
    for extra in (
        f"X-Big: {'a' * 64 * 1024}\r\n",
        "".join(f"X-H{i}: v\r\n" for i in range(150)),
    ):
        with connect(stack.gateway_url) as sock:
            # Refused while still sending: the answer is already waiting.
            with contextlib.suppress(OSError):
                sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: gw\r\n{extra}\r\n".encode())
            status, headers, body = read_response(sock)
        assert status == 431, (status, body)
        assert headers["connection"] == "close"
        assert "header" in orjson.loads(body)["error"]["message"].lower()
    # The limit leaves ordinary requests alone.
    assert (
        httpx.get(stack.gateway_url + "/healthz", headers={"X-Ok": "a" * 4000}).status_code == 200
    )


def test_a_64kb_bearer_token_is_a_clean_401_on_v1_and_api(stack: Stack) -> None:
    """An 8 KB token fits the header limit and is refused at the edge as no key of ours; a
    64 KB one is refused as a header before that. Neither reaches auth's gRPC."""
    with httpx.Client(timeout=30) as http:
        for token, status in (("t" * 8000, 401), ("t" * 64 * 1024, 431)):
            r = http.post(
                stack.gateway_url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {token}"},
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert r.status_code == status, r.text
            assert "grpc" not in r.text.lower() and "metadata" not in r.text.lower()
            if status == 401:
                assert r.json()["error"]["code"] == "invalid_api_key"
            r = http.get(
                stack.gateway_url + "/api/user/self", headers={"Authorization": f"Bearer {token}"}
            )
            # A token that is no access token of ours is One API's refusal at 200.
            assert r.status_code == (200 if status == 401 else status), r.text
            assert "grpc" not in r.text.lower()
            assert r.json()["success"] is False  # One API's envelope, the 431 too


async def test_each_route_family_has_its_own_body_limit(
    extra_gateway: Callable[..., ExtraGateway],
    pg: asyncpg.Pool,
    secret_key: str,
    simulator: ThreadedServer,
    tenant: Tenant,
) -> None:
    """/v1 JSON small, uploads larger, /api smallest: an upload over the JSON limit but
    under its own goes through to the provider."""
    gw = extra_gateway(
        MAX_REQUEST_BODY_BYTES="8192", MAX_UPLOAD_BODY_BYTES="1048576", MAX_API_BODY_BYTES="2048"
    )
    model = alias("whisper-edge")
    await create_mapped_channel(
        pg,
        secret_key,
        type=1,
        name="uploads",
        key=SIM_KEY,
        base_url=simulator.url,
        models={model: "whisper-1"},
    )
    big_chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 9000}]}
    headers = {"Authorization": f"Bearer {tenant.key}", "x-api-key": tenant.key}
    async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=60) as http:
        r = await http.post("/v1/chat/completions", json=big_chat)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        r = await http.post("/v1/messages", json={**big_chat, "max_tokens": 5})
        assert r.status_code == 413
        assert r.json() == {
            "type": "error",
            "error": {"type": "request_too_large", "message": r.json()["error"]["message"]},
        }
        r = await http.post("/api/user/login", json={"username": "u" * 3000, "password": "p"})
        assert r.status_code == 413 and r.json()["success"] is False
        audio = wav_bytes(1.0)  # 32 KB: nearly four times the JSON limit
        assert len(audio) > 3 * 8192
        r = await http.post(
            "/v1/audio/transcriptions",
            data={"model": model},
            files={"file": ("edge.wav", audio, "audio/wav")},
        )
        assert r.status_code == 200, r.text
        assert "edge.wav" in r.json()["text"]


def test_slow_head_gets_408_and_silent_connection_is_closed(
    extra_gateway: Callable[..., ExtraGateway],
) -> None:
    gw = extra_gateway(HEADER_READ_TIMEOUT="1")
    with connect(gw.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")  # ... and never the end
        started = time.monotonic()
        status, _, _ = read_response(sock)
        assert status == 408
        assert 0.8 < time.monotonic() - started < 5
    with connect(gw.url) as sock:
        sock.settimeout(5)
        assert sock.recv(1) == b""  # closed without a request ever coming
    assert httpx.get(gw.url + "/healthz").status_code == 200


def test_metrics_only_on_the_ops_port(stack: Stack) -> None:
    public = httpx.get(stack.gateway_url + "/metrics")
    assert public.status_code == 404
    ops = httpx.get(f"http://127.0.0.1:{stack.config.ports.gateway_ops}/metrics")
    assert ops.status_code == 200 and "unigate_gateway" in ops.text
    assert httpx.get(stack.gateway_url + "/readyz").status_code == 200


def test_trailing_slash_redirect_location_is_not_built_from_host(stack: Stack) -> None:
    r = httpx.get(stack.gateway_url + "/api/user?p=1", headers={"Host": "evil.example"}, timeout=30)
    assert r.status_code == 307
    assert r.headers["location"] == "/api/user/?p=1"
    # No redirect to another origin by way of a path that starts with "//".
    r = httpx.get(stack.gateway_url + "//evil.example/api/user", timeout=30)
    assert r.status_code == 404
    assert "location" not in r.headers
