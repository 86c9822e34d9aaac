"""A webhook receiver: a real HTTP server on 127.0.0.1 (a thread of this process) that checks every delivery
twice, with the ``standardwebhooks`` library and with its own HMAC-SHA256, and answers as it is told (fail
N times, always fail, or take its time)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()
    verified_by_library: bool = False
    verified_by_hand: bool = False
    answered: int = 0

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def verified(self) -> bool:
        return self.verified_by_library and self.verified_by_hand


@dataclass
class Behaviour:
    fail: int = 0  # answer ``status`` to the first ``fail`` requests, then 200
    always_fail: bool = False
    status: int = 500
    delay_s: float = 0.0
    body: bytes = b"failed"  # the answer of a failing request (a successful one says "ok")
    location: str | None = None  # a Location header on failing answers (to offer a redirect)
    seen: int = 0


def verify_by_hand(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks scheme, spelled out: HMAC-SHA256 of ``id.timestamp.body`` with the base64-decoded
    secret, compared with each ``v1,`` signature of the header."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    candidates = [s.split(",", 1)[1] for s in headers["webhook-signature"].split(" ") if s.startswith("v1,")]
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) < 300
    return fresh and any(hmac.compare_digest(expected, c) for c in candidates)


def verify_by_library(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except Exception:
        return False
    return True


class Receiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._behaviours: dict[str, Behaviour] = {}
        self._secrets: dict[str, list[str]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver._handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def behave(self, path: str, **behaviour: Any) -> None:
        with self._lock:
            self._behaviours[path] = Behaviour(**behaviour)

    def trust(self, path: str, *secrets: str) -> None:
        """The secrets a delivery to ``path`` may be signed with."""
        with self._lock:
            self._secrets[path] = list(secrets)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        item = Received(path=handler.path, headers=headers, body=body, at=time.monotonic())
        with self._lock:
            secrets = list(self._secrets.get(handler.path, []))
            behaviour = self._behaviours.setdefault(handler.path, Behaviour())
            behaviour.seen += 1
            failing = behaviour.always_fail or behaviour.seen <= behaviour.fail
            self._received.append(item)
        if secrets and all(k in headers for k in ("webhook-id", "webhook-timestamp", "webhook-signature")):
            item.verified_by_library = any(verify_by_library(s, headers, body) for s in secrets)
            item.verified_by_hand = any(verify_by_hand(s, headers, body) for s in secrets)
        if behaviour.delay_s:
            time.sleep(behaviour.delay_s)
        status = behaviour.status if failing else 200
        answer = behaviour.body if failing else b"ok"
        item.answered = status
        try:
            handler.send_response(status)
            handler.send_header("content-type", "text/plain")
            handler.send_header("content-length", str(len(answer)))
            if failing and behaviour.location:
                handler.send_header("location", behaviour.location)
            handler.end_headers()
            handler.wfile.write(answer)
        except OSError:
            pass  # the sender gave up (timeout) and closed the connection

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        self._thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
