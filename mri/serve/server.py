"""Serving the page with uvicorn, with deadlines no client can stretch: headers, body, idle connections.

uvicorn's own `timeout_keep_alive` only runs between requests and is reset by every byte, and an ASGI
middleware sees a request only once its headers are complete, so the header and body deadlines live in
the HTTP protocol: `BoundedH11Protocol` (uvicorn's h11 protocol with two timers) is given to uvicorn as
its `http` class. A request too slow to arrive gets a 408 and its connection is closed.

    header_timeout  the request line and headers must arrive within this many seconds of the connection
                    opening (or of the previous answer on a kept-alive connection): no byte-at-a-time headers
    body_timeout    the whole body must arrive within this many seconds of the headers: a body shorter than
                    its Content-Length is not waited for beyond it
    keep_alive      an idle connection (none of a request's bytes yet) is closed after this many seconds
    max_connections open connections (and requests in progress) beyond this get 503 (uvicorn's limit_concurrency)
    max_header_bytes unfinished request line and headers are buffered up to this, then 400 (h11's limit)
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    header_timeout: float = 10.0
    body_timeout: float = 120.0  # 20 MB at 1.4 Mbit/s
    keep_alive: float = 5.0
    max_connections: int = 100
    max_header_bytes: int = 16 * 1024  # unfinished request line and headers buffered at most (h11's limit)

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"server.{name}={value}: must be a positive number")


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the headers and one for the body (class attributes, seconds)."""

    header_timeout: float = ServerLimits.header_timeout
    body_timeout: float = ServerLimits.body_timeout
    deadline: asyncio.TimerHandle | None = None  # the running deadline, for the part in waiting_for
    waiting_for: str | None = None  # "headers", "body" or None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        self._arm("headers", self.header_timeout)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is h11.SEND_BODY and self.waiting_for != "body":
            self._arm("body", self.body_timeout)  # headers complete: the body's clock starts
        elif self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # the request has arrived (or the connection is done)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm("headers", self.header_timeout)  # the next request on this connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, part: str, seconds: float) -> None:
        self._disarm()
        self.waiting_for = part
        self.deadline = self.loop.call_later(seconds, self._too_slow, part, seconds)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline, self.waiting_for = None, None

    def _too_slow(self, part: str, seconds: float) -> None:
        """The request's headers or body did not arrive in time: 408 unless an answer has started, then close."""
        self.deadline, self.waiting_for = None, None
        if self.transport.is_closing():
            return
        client = "{}:{}".format(*self.client) if self.client else "a client"
        log.info("%s: the request's %s did not arrive within %g s; connection closed", client, part, seconds)
        cycle = self.cycle if part == "body" else None  # for headers: the previous request's, answered
        if cycle is None or not cycle.response_started:  # (a body may still come after an early answer, a 413)
            message = f"The request's {part} did not arrive within {seconds:g} seconds: send it again.".encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                 b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(message), message))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() gets http.disconnect, its answer goes nowhere
            cycle.message_event.set()
        self.transport.close()


def protocol_class(limits: ServerLimits) -> type[BoundedH11Protocol]:
    """BoundedH11Protocol with these deadlines (uvicorn builds one protocol object per connection)."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,),
                {"header_timeout": limits.header_timeout, "body_timeout": limits.body_timeout})


def uvicorn_config(app: FastAPI, limits: ServerLimits, host: str = "127.0.0.1", port: int = 8000,
                   **options) -> uvicorn.Config:
    """uvicorn's settings for the page: the bounded protocol, keep-alive and connection limits of `limits`."""
    return uvicorn.Config(app, host=host, port=port, http=protocol_class(limits), timeout_keep_alive=limits.keep_alive,
                          limit_concurrency=limits.max_connections + 1,  # uvicorn counts the asking connection too
                          h11_max_incomplete_event_size=limits.max_header_bytes, **options)
