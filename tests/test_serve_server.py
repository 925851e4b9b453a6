"""The page's server on a real socket: deadlines for headers, body and idle connections, and the connection limit."""
import logging
import socket
import time

import pytest
from fastapi import FastAPI, Request

from mri.serve.background import BackgroundServer
from mri.serve.server import ServerLimits

SHORT = ServerLimits(header_timeout=0.6, body_timeout=0.6, keep_alive=0.3, max_connections=2)


@pytest.fixture(scope="module")
def server():
    """A small app that reads its request body, served with SHORT's limits."""
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.get("/hello")
    def hello() -> dict:
        return {"hello": "world"}

    with BackgroundServer(app, SHORT) as server:
        yield server


def connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)  # 5 s: far beyond any limit of SHORT
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and a body of its Content-Length) on a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_an_idle_connection_is_closed(server):
    start = time.monotonic()
    with connect(server) as sock:
        assert read_all(sock) == b""  # closed without a word: no request was made
    assert time.monotonic() - start < SHORT.header_timeout + 0.5


def test_headers_sent_a_byte_at_a_time_are_cut_off(server, caplog):
    request = b"GET /hello HTTP/1.1\r\nhost: x\r\n" + b"x-slow: " + b"a" * 100 + b"\r\n\r\n"
    start = time.monotonic()
    with caplog.at_level(logging.INFO, logger="mri.serve.server"), connect(server) as sock:
        sent = 0
        try:
            for byte in request:  # one byte every 50 ms: 7 s for the whole request
                sock.send(bytes([byte]))
                sent += 1
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = read_all(sock)
    assert sent < len(request) and time.monotonic() - start < SHORT.header_timeout + 1.0
    assert answer.startswith(b"HTTP/1.1 408 ") and b"headers did not arrive within 0.6 seconds" in answer
    assert [r.levelname for r in caplog.records] == ["INFO"]


def test_a_body_shorter_than_its_length_is_not_waited_for(server):
    start = time.monotonic()
    with connect(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n" + b"x" * 10)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"body did not arrive within 0.6 seconds" in answer
    assert time.monotonic() - start < SHORT.body_timeout + 1.0


def test_kept_alive_connection_answers_then_closes_when_idle(server):
    with connect(server) as sock:
        for _ in range(2):  # two requests on one connection, each within the deadlines
            sock.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
            assert read_response(sock).endswith(b'\r\n\r\n{"bytes":5}')
        start = time.monotonic()
        assert read_all(sock) == b""
    assert SHORT.keep_alive - 0.1 < time.monotonic() - start < SHORT.keep_alive + 0.5


def test_connections_beyond_the_limit_get_503(server):
    first, second = connect(server), connect(server)
    try:
        first.sendall(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")  # both open: the limit is reached
        assert read_response(first).startswith(b"HTTP/1.1 200 ")
        with connect(server) as third:
            third.sendall(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
            assert read_response(third).startswith(b"HTTP/1.1 503 ")
    finally:
        first.close()
        second.close()
    time.sleep(0.1)
    with connect(server) as again:  # room again
        again.sendall(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert read_all(again).startswith(b"HTTP/1.1 200 ")


def test_unfinished_headers_beyond_the_byte_limit_get_400(server):
    with connect(server) as sock:  # no end of headers in sight after max_header_bytes: not buffered further
        sock.sendall(b"GET /hello HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (SHORT.max_header_bytes + 1))
        assert read_all(sock).startswith(b"HTTP/1.1 400 ")


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="server.body_timeout=0: must be a positive number"):
        ServerLimits(body_timeout=0)
