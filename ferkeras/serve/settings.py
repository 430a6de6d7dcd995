"""What ``ferkeras serve`` runs with, checked once before anything starts."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from ferkeras.errors import FerKerasError

#: The environment variable a token may come from (keeps it out of ``ps`` and shell history).
TOKEN_ENV = "FERKERAS_TOKEN"
#: Shortest accepted token: a guessable token on an open port is no protection.
MIN_TOKEN_LENGTH = 16


def is_local_host(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine (loopback)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


@dataclass
class ServeSettings:
    """Limits and security of the HTTP service (see docs/serve.md).

    Attributes:
        host, port: where to listen; a non-loopback host needs ``token``.
        token: bearer token required on every request (None: no check, loopback only).
        cors: origins allowed to call the API from a browser page of theirs.
        max_bytes: largest request body or WebSocket message.
        max_pixels: largest image (width x height), checked from its header before decoding.
        max_fps: frames per second one WebSocket connection may send; more are skipped.
        max_sessions: concurrent WebSocket sessions; more are refused.
        engines: models loaded side by side (requests beyond wait for one).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    cors: tuple[str, ...] = ()
    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_fps: float = 30.0
    max_sessions: int = 16
    engines: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))

    def __post_init__(self):
        self.token = self.token or os.environ.get(TOKEN_ENV) or None
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise FerKerasError(
                f"--token must be at least {MIN_TOKEN_LENGTH} characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
            )
        if not is_local_host(self.host) and not self.token:
            raise FerKerasError(
                f"--host {self.host} accepts connections from other machines: give a --token "
                f"(or set {TOKEN_ENV}), or keep the default --host 127.0.0.1"
            )
        if not 0 <= self.port <= 65535:
            raise FerKerasError(f"--port must be between 0 and 65535, got {self.port}")
        for name, value in (
            ("max_bytes", self.max_bytes),
            ("max_pixels", self.max_pixels),
            ("max_sessions", self.max_sessions),
            ("engines", self.engines),
        ):
            if value < 1:
                raise FerKerasError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if not self.max_fps > 0:
            raise FerKerasError(f"--max-fps must be above 0, got {self.max_fps}")
        for origin in self.cors:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise FerKerasError(f"--cors takes origins like https://kiosk.example:8443, got {origin!r}")
        self.cors = tuple(self.cors)
