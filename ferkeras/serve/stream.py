"""``WS /v1/stream``: one tracked, smoothed session per connection, never queueing stale frames.

The client sends frames as binary JPEG/PNG/WebP messages; they are numbered 0, 1,
2, ... in the order they arrive. One task receives, another works: the worker
always takes the newest frame received, so a frame that a newer one overtook
while the server was busy is skipped (``"stale"``), and frames above the
connection's rate limit are skipped as they arrive (``"rate"``). Every answer
lists the frames skipped since the previous answer, so a client always knows
which of its frames got no answer.

Server -> client (JSON text):
    {"type": "faces", "frame": 12, "skipped": [{"frame": 11, "reason": "stale"}],
     "image": {"width": 640, "height": 480}, "faces": [...], "server_ms": 9.1}
    {"type": "error", "frame": 13, "error": {"status": 415, "code": ..., "message": ...}}
Client -> server text messages: ``{"type": "reset"}`` forgets the tracks (e.g. at a scene cut).
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from ferkeras.serve.engines import BadImage, EnginePool, decode_upload
from ferkeras.serve.guard import error_detail
from ferkeras.serve.settings import ServeSettings

#: WebSocket close codes (RFC 6455): policy violation, server overloaded.
POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013


class RateLimiter:
    """A token bucket: ``rate`` frames per second with bursts up to one second's worth."""

    def __init__(self, rate: float):
        self.rate, self.tokens, self.last = rate, max(rate, 1.0), time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(max(self.rate, 1.0), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _error(frame: int | None, status: int, code: str, message: str) -> dict:
    return {"type": "error", "frame": frame, "error": error_detail(status, code, message)}


class StreamSession:
    """One connection's state: its tracker, the newest unanswered frame and what was skipped."""

    def __init__(self, websocket: WebSocket, pool: EnginePool, settings: ServeSettings):
        self.websocket, self.pool, self.settings = websocket, pool, settings
        self.tracker = pool.new_tracker()
        self.limiter = RateLimiter(settings.max_fps)
        self.pending: tuple[int, bytes] | None = None
        self.skipped: list[dict] = []
        self.arrived = asyncio.Event()
        self.closed = False
        self.received = 0

    async def run(self) -> None:
        worker = asyncio.create_task(self._work())
        try:
            await self._receive()
        finally:
            self.closed = True
            self.arrived.set()
            await worker

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.websocket.receive()
            except (WebSocketDisconnect, RuntimeError, OSError):
                return
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                frame = self.received
                self.received += 1
                if not self.limiter.allow():
                    self.skipped.append({"frame": frame, "reason": "rate"})
                    continue
                if self.pending is not None:
                    self.skipped.append({"frame": self.pending[0], "reason": "stale"})
                self.pending = (frame, message["bytes"])
                self.arrived.set()
            elif message.get("text") is not None:
                await self._control(message["text"])

    async def _control(self, text: str) -> None:
        try:
            command = json.loads(text)
        except ValueError:
            command = None
        if isinstance(command, dict) and command.get("type") == "reset":
            self.tracker.clear()
            await self._send({"type": "reset"})
        else:
            await self._send(
                _error(None, 400, "bad_message", 'text messages must be {"type": "reset"}; send frames as binary messages')
            )

    async def _send(self, payload: dict) -> None:
        try:
            await self.websocket.send_text(json.dumps(payload))
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closed = True

    async def _work(self) -> None:
        while True:
            await self.arrived.wait()
            self.arrived.clear()
            if self.closed:
                return
            if self.pending is None:
                continue
            (frame, raw), self.pending = self.pending, None
            skipped, self.skipped = self.skipped, []
            start = time.perf_counter()
            try:
                payload = await self.pool.run(self._process, raw)
            except BadImage as exc:
                await self._send({**_error(frame, exc.status, exc.code, str(exc)), "skipped": skipped})
                continue
            payload.update(type="faces", frame=frame, skipped=skipped, server_ms=round(1000 * (time.perf_counter() - start), 2))
            await self._send(payload)

    def _process(self, recognizer, raw: bytes) -> dict:
        image = decode_upload(raw, self.settings.max_pixels)
        faces = recognizer.process(image, self.tracker)
        return {
            "image": {"width": image.shape[1], "height": image.shape[0]},
            "faces": [face.to_dict(self.pool.class_names) for face in faces],
        }
