"""The business's own API behind an agent's HTTP tool, on 127.0.0.1: it answers an order's status and keeps
every call it got (body and Idempotency-Key; the Authorization header apart, in ``authorization``), so that a
test can count them."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ORDER_TOOL = "order_status"


class Shop:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []  # each call's Authorization header, in the order of ``calls``
        calls, authorization = self.calls, self.authorization

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls.append({"body": body, "idempotency_key": self.headers.get("Idempotency-Key")})
                authorization.append(self.headers.get("Authorization"))
                payload = json.dumps({"order": body.get("order"), "status": "shipped", "eta": "Friday"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/orders/status"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def tool(self) -> dict[str, Any]:
        """The agent version's HTTP tool that calls this shop."""
        return {
            "type": "http",
            "name": ORDER_TOOL,
            "description": "Look up the status of an order by its number.",
            "parameters": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
            "url": self.url,
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
