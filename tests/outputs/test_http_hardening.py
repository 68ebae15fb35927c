"""The captions port under hostile clients (issue 21, case 2): security headers and no versions on
every answer, Host checked against the bind, Bearer tokens only, half-sent requests closed within
``request_timeout_s``, and a connection cap answered with 503."""

from __future__ import annotations

import socket
import time

import pytest

from agent.outputs.config import HttpConfig
from agent.outputs.http import HttpOutput

STATUS = {"frames": 1, "last_frame_age_s": 0.01, "capture_state": "running", "link_up": 1}


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(**config) -> HttpOutput:
        http = HttpOutput(HttpConfig(enabled=True, port=0, **config), lambda: dict(STATUS), audio_stall_s=5.0)
        http.start()
        servers.append(http)
        return http

    yield start
    for http in servers:
        http.close()


def raw(http: HttpOutput, request: bytes, timeout_s: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", http.port), timeout=timeout_s) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and b"text/event-stream" not in answer:
                head, _, body = answer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)
                if length is not None and len(body) >= length:
                    break
        return answer


def get(http: HttpOutput, path: str = "/", host: str | None = None, headers: str = "") -> tuple[int, dict, bytes]:
    host = host or f"127.0.0.1:{http.port}"
    answer = raw(http, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


def test_every_answer_has_the_security_headers_and_no_versions(serve):
    http = serve()
    for path in ("/", "/healthz", "/metrics", "/nope"):
        status, headers, _ = get(http, path)
        assert status in (200, 404)
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer" and headers["server"] == "parley"
    malformed = raw(http, b"\x16\x03\x01 not http at all\r\n\r\n")
    assert b" 400 Bad Request" in malformed and b"Server: parley" in malformed and b"Python" not in malformed and b"aiohttp" not in malformed


def test_a_foreign_host_is_refused_on_a_loopback_bind(serve):
    http = serve(allowed_hosts=("captions.box.lan",))
    assert get(http, "/healthz", host="attacker.example")[0] == 421  # DNS rebinding
    assert get(http, "/healthz", host=f"localhost:{http.port}")[0] == 200
    assert get(http, "/healthz", host=f"[::1]:{http.port}")[0] == 200
    assert get(http, "/healthz", host="captions.box.lan")[0] == 200


def test_only_a_bearer_token_is_accepted(serve, tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    http = serve(token_file=str(tmp_path / "token"))
    assert get(http, "/healthz", headers="Authorization: s3cret\r\n")[0] == 401
    assert get(http, "/healthz", headers="Authorization: Basic s3cret\r\n")[0] == 401
    assert get(http, "/healthz", headers="Authorization: Bearer s3cret\r\n")[0] == 200
    assert get(http, "/healthz?token=s3cret")[0] == 200


def test_half_sent_and_idle_connections_are_closed_within_the_timeout(serve):
    http = serve(request_timeout_s=1.0)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", http.port), timeout=5) as half, \
            socket.create_connection(("127.0.0.1", http.port), timeout=5) as idle:
        half.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        for _ in range(5):  # a slowloris: a byte now and then does not extend the deadline
            time.sleep(0.15)
            half.sendall(b"a")
        assert half.recv(100) == b"" and idle.recv(100) == b""
    assert time.monotonic() - started < 3.0
    assert http.guard.expired == 2


def test_connections_beyond_the_cap_get_a_503_and_are_closed(serve):
    http = serve(max_connections=4, request_timeout_s=10.0)
    held = [socket.create_connection(("127.0.0.1", http.port), timeout=5) for _ in range(4)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", http.port), timeout=5) as extra:
            assert extra.recv(200).startswith(b"HTTP/1.1 503 Service Unavailable")
            assert extra.recv(200) == b""
        assert http.guard.refused == 1
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert get(http, "/healthz")[0] == 200
