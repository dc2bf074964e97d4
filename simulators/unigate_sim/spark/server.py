"""The Spark simulator's WebSocket server: handshake checks, then one request frame and its
answer frames on each connection (iFlytek closes the connection after the last frame)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from unigate_sim.spark.frames import FrameError, answer_frames, error_frame, parse_request
from unigate_sim.spark.signing import DOMAINS_BY_PATH, Refusal, check_handshake

#: How long a connection may stay silent before its request frame.
REQUEST_WAIT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class SparkApp:
    """An iFlytek app: the three parts of a channel key ``APPID|APISecret|APIKey``."""

    app_id: str
    api_secret: str
    api_key: str

    @property
    def channel_key(self) -> str:
        return f"{self.app_id}|{self.api_secret}|{self.api_key}"


class SparkSimulator:
    """The simulated service: its apps, what it was sent, and the faults to answer with."""

    def __init__(self, apps: Iterable[SparkApp], clock: Callable[[], float] = time.time) -> None:
        self.apps = {app.api_key: app for app in apps}
        self.clock = clock
        self.calls: list[dict[str, Any]] = []
        self.refusals: list[dict[str, Any]] = []
        self.faults: list[tuple[int, str]] = []
        self._sessions: dict[Any, tuple[str, SparkApp]] = {}

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """The handshake: None lets it through, a Response refuses it."""
        secrets = {key: app.api_secret for key, app in self.apps.items()}
        checked = check_handshake(
            request.path, request.headers.get("Host", ""), secrets, self.clock()
        )
        if isinstance(checked, Refusal):
            self.refusals.append({"target": request.path, "status": checked.status})
            response = connection.respond(HTTPStatus(checked.status), "")
            del response.headers["Content-Type"]
            del response.headers["Content-Length"]
            body = orjson.dumps({"message": checked.message}) + b"\n"
            response.headers["Content-Type"] = "application/json; charset=utf-8"
            response.headers["Content-Length"] = str(len(body))
            return Response(response.status_code, response.reason_phrase, response.headers, body)
        path, api_key = checked
        self._sessions[connection.id] = (path, self.apps[api_key])
        return None

    async def handler(self, connection: ServerConnection) -> None:
        """One conversation: a request frame in, answer (or error) frames out, then close."""
        path, app = self._sessions.pop(connection.id)
        try:
            raw = await asyncio.wait_for(connection.recv(), REQUEST_WAIT_SECONDS)
        except (TimeoutError, ConnectionClosed):
            return
        call: dict[str, Any] = {"path": path, "frame": None, "code": 0}
        self.calls.append(call)
        with contextlib.suppress(orjson.JSONDecodeError):
            call["frame"] = orjson.loads(raw)
        try:
            request = parse_request(raw, app.app_id, DOMAINS_BY_PATH[path])
            if self.faults:
                raise FrameError(*self.faults.pop(0))
            frames = answer_frames(request)
            call["usage"] = frames[-1]["payload"]["usage"]["text"]
        except FrameError as exc:
            call["code"] = exc.code
            frames = [error_frame(exc.code, exc.message)]
        try:
            for frame in frames:
                await connection.send(orjson.dumps(frame).decode())
        except ConnectionClosed:
            return


class SparkServer:
    """Serve a :class:`SparkSimulator` on a free local port from a background thread."""

    def __init__(self, simulator: SparkSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host, self.port = host, port
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    @property
    def url(self) -> str:
        """The base URL a channel points at (``ws://``; the relay signs ``host:port``)."""
        return f"ws://{self.host}:{self.port}"

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with serve(
            self.simulator.handler,
            self.host,
            self.port,
            process_request=self.simulator.process_request,
            compression=None,
            ping_interval=None,
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stopping.wait()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("the Spark simulator did not start")

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the command line)."""
        asyncio.run(self._serve())

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)
