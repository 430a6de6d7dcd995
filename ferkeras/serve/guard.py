"""The service's gate, in front of every HTTP and WebSocket request (see docs/serve.md, "Security").

* **Token**: with ``--token``, every request must carry it as ``Authorization:
  Bearer TOKEN``, as the ``ferkeras_token`` cookie (set by opening
  ``/?token=TOKEN`` once in a browser; HttpOnly, SameSite=Strict) or, for a
  WebSocket from a script that cannot set headers, as the subprotocol
  ``bearer.TOKEN``. Compared in constant time.
* **Host**: without a token the service is loopback-only, and requests naming
  another host are refused (a web page cannot reach it by DNS rebinding).
* **Origin**: a WebSocket opened by a web page of another origin is refused
  unless ``--cors`` lists that origin (browsers do not apply CORS to WebSockets).
* **Size**: request bodies above ``max_bytes`` get 413 before they are read whole.
"""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs

from starlette.datastructures import Headers

from ferkeras.serve.settings import ServeSettings

COOKIE = "ferkeras_token"
SUBPROTOCOL = "ferkeras.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."
LOCAL_HOST_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


class BodyTooLarge(Exception):
    """A request body that passed the size limit while it was being read."""

    def __init__(self, limit: int):
        super().__init__(f"the request body is over the limit of {limit:,} bytes")


def error_detail(status: int, code: str, message: str) -> dict:
    """What every refusal says, HTTP or stream: ``{"status", "code", "message"}`` (under ``"error"``)."""
    return {"status": status, "code": code, "message": message}


def error_body(status: int, code: str, message: str) -> bytes:
    """The JSON body of an HTTP refusal: ``{"error": {"status", "code", "message"}}``."""
    return json.dumps({"error": error_detail(status, code, message)}).encode()


async def send_json_error(send, status: int, code: str, message: str, headers: list | None = None) -> None:
    body = error_body(status, code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _cookies(headers: Headers) -> dict[str, str]:
    found = {}
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        found.setdefault(name, value)
    return found


class Guard:
    """ASGI middleware applying the checks in the module docstring."""

    def __init__(self, app, settings: ServeSettings):
        self.app, self.settings = app, settings

    def _token_matches(self, candidate: str | None) -> bool:
        return candidate is not None and secrets.compare_digest(candidate.encode(), self.settings.token.encode())

    def _authorized(self, scope, headers: Headers) -> bool:
        if not self.settings.token:
            return True
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._token_matches(credentials.strip()):
            return True
        if self._token_matches(_cookies(headers).get(COOKIE)):
            return True
        if scope["type"] == "websocket":
            for protocol in scope.get("subprotocols", []):
                if protocol.startswith(TOKEN_SUBPROTOCOL_PREFIX) and self._token_matches(
                    protocol[len(TOKEN_SUBPROTOCOL_PREFIX) :]
                ):
                    return True
        return False

    def _host_allowed(self, headers: Headers) -> bool:
        if self.settings.token:
            return True
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in LOCAL_HOST_NAMES

    def _origin_allowed(self, scope, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return True  # not a browser page
        own = ("https://" if scope.get("scheme") in ("https", "wss") else "http://") + headers.get("host", "")
        return origin == own or origin in self.settings.cors or "*" in self.settings.cors

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if scope["type"] == "websocket":
            if self._host_allowed(headers) and self._origin_allowed(scope, headers) and self._authorized(scope, headers):
                return await self.app(scope, receive, send)
            await send({"type": "websocket.close", "code": 1008})  # before accepting: the handshake gets 403
            return None
        if not self._host_allowed(headers):
            return await send_json_error(
                send, 421, "wrong_host", f"this service answers to 127.0.0.1 or localhost, not {headers.get('host')!r}"
            )
        if self.settings.token and scope["path"] == "/" and scope.get("query_string"):
            return await self._login(scope, send)
        if not self._authorized(scope, headers):
            return await send_json_error(
                send,
                401,
                "unauthorized",
                "this service needs its token: Authorization: Bearer TOKEN (or open /?token=TOKEN in a browser)",
                [(b"www-authenticate", b"Bearer")],
            )
        declared = headers.get("content-length")
        limit = self.settings.max_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await send_json_error(
                send, 413, "too_large", f"the request body is {int(declared):,} bytes; the limit is {limit:,}"
            )
        return await self._limited(scope, receive, send, limit)

    async def _login(self, scope, send):
        token = parse_qs(scope["query_string"].decode("latin-1")).get("token", [None])[0]
        if not self._token_matches(token):
            return await send_json_error(send, 401, "unauthorized", "wrong token")
        cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if scope.get("scheme") == "https" else "")
        # 303 to the bare page: the token leaves the address bar and history
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _limited(self, scope, receive, send, limit: int):
        """Run the app, stopping it with 413 once the body (e.g. chunked, without a length) passes ``limit``."""
        received, started = 0, False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # raised outside the app's own handler
            if not started:
                await send_json_error(send, 413, "too_large", str(exc))
