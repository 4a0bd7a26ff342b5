"""Serve the screen's app from inside the agent's event loop, with uvicorn.

The socket is bound here, before uvicorn starts, so that a port in use is an OSError the
agent logs (the kiosk still saves readings without its screen), not uvicorn's sys.exit; and so
that port 0 tells us which port it got. The agent owns the process's signals: uvicorn must
not take SIGTERM away from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)

# Open event streams (a page watching the cuff) are closed after this on shutdown: an agent
# stopping must not wait for a browser.
GRACEFUL_SHUTDOWN_S = 1


class _AgentOwnsSignals(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ScreenServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def app(self) -> FastAPI:
        return self._app

    @property
    def port(self) -> int:
        assert self._socket is not None, "not started"
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        """Raises OSError if the address cannot be bound."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            sock.listen(64)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        config = uvicorn.Config(
            self._app, log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self._server = _AgentOwnsSignals(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="kiosk screen")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise OSError("the kiosk screen's server stopped at start")
            await asyncio.sleep(0.01)
        log.info("kiosk screen at %s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=GRACEFUL_SHUTDOWN_S + 4)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            except Exception:
                log.exception("the kiosk screen's server failed while stopping")
        if self._socket is not None:
            self._socket.close()
