"""The page's server in a background thread on a free localhost port: for tests, benchmarks and screenshots.

    with BackgroundServer(app) as server:
        requests.post(server.url + "/api/recommend", ...)
"""
from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from mri.serve.server import ServerLimits, uvicorn_config


class BackgroundServer:
    def __init__(self, app: FastAPI, limits: ServerLimits | None = None, host: str = "127.0.0.1",
                 start_timeout: float = 30.0):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind((host, 0))  # the system picks a free port
        self.url = "http://{}:{}".format(*self.socket.getsockname())
        config = uvicorn_config(app, limits or ServerLimits(), log_level="warning", log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.start_timeout = start_timeout

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the page's server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join()
        self.socket.close()
